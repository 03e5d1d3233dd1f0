"""STAND-INS for the Kaapana services a radpath run talks to, each on the address and port
its Kaapana service name resolves to inside the box (tests/kaapana_box_driver.py), speaking
the interface Kaapana's code uses as the snapshot shows it:

- Keycloak (``keycloak-external-service.<admin>.svc:80``): the password grant of kaapanapy's
  ``get_project_user_access_token`` (``/auth/realms/<realm>/protocol/openid-connect/token``);
  only the project users and client secret of the box get a token.
- dicom-web-filter (``dicom-web-filter-service.<services>.svc:8080``): DICOMweb at the root,
  as kaapanapy's HelperDcmWeb calls it, passed on to Orthanc's DICOMweb (the PACS is real);
  a request without a token the Keycloak stand-in issued gets 401.
- OpenSearch (``opensearch-service.<services>.svc:9200``, HTTPS, gzip bodies): the ``ids``
  search of kaapanapy's HelperOpensearch.get_dcm_uid_objects, answered from Orthanc's series.
- MinIO's STS (``minio-service.<services>.svc:9000``): AssumeRoleWithWebIdentity, as
  kaapanapy's get_minio_client asks it; every other request goes to moto's S3 server (a
  stand-in of its own) behind it.
"""

from __future__ import annotations

import gzip
import json
import secrets
import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import requests

ISSUED: set[str] = set()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):  # the box's log is the runs', not the services'
        pass

    def body(self) -> bytes:
        data = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        return gzip.decompress(data) if self.headers.get("Content-Encoding") == "gzip" else data

    def reply(self, status: int, payload: bytes, content_type: str = "application/json", headers=()):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(payload)))
        for key, value in headers:
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(payload)

    def token_ok(self) -> bool:
        return self.headers.get("Authorization", "").removeprefix("Bearer ") in ISSUED


def keycloak(users: dict[str, str], client_secret: str):
    class Keycloak(Handler):
        def do_POST(self):
            form = {k: v[0] for k, v in parse_qs(self.body().decode()).items()}
            if not self.path.endswith("/protocol/openid-connect/token"):
                return self.reply(404, b"{}")
            user_ok = form.get("grant_type") == "password" and users.get(form.get("username")) == form.get("password")
            if not user_ok or form.get("client_secret") != client_secret:
                return self.reply(401, json.dumps({"error": "invalid_grant"}).encode())
            token = secrets.token_hex(16)
            ISSUED.add(token)
            return self.reply(200, json.dumps({"access_token": token, "refresh_token": token, "expires_in": 300}).encode())
    return Keycloak


def forward(handler: Handler, target: str, method: str):
    data = handler.body() if method in ("POST", "PUT") else None
    headers = {k: v for k, v in handler.headers.items() if k.lower() not in ("host", "authorization", "content-length",
                                                                              "x-forwarded-access-token")}
    upstream = requests.request(method, target, data=data, headers=headers, timeout=300)
    payload = upstream.content
    passed = [(k, v) for k, v in upstream.headers.items()
              if k.lower() not in ("content-length", "transfer-encoding", "connection", "content-type",
                                   "content-encoding")]
    handler.reply(upstream.status_code, payload, upstream.headers.get("Content-Type", "application/octet-stream"),
                  passed)


def dicom_web_filter(orthanc_dicomweb: str):
    class DicomWebFilter(Handler):
        def handle_any(self, method):
            if not self.token_ok():
                return self.reply(401, b'{"detail": "not authenticated"}')
            forward(self, orthanc_dicomweb.rstrip("/") + self.path, method)

        def do_GET(self):
            self.handle_any("GET")

        def do_POST(self):
            self.handle_any("POST")
    return DicomWebFilter


def opensearch(orthanc_dicomweb: str):
    series_tags = {"0020000D": "0020000D StudyInstanceUID_keyword", "0020000E": "0020000E SeriesInstanceUID_keyword",
                   "00080060": "00080060 Modality_keyword"}

    def document(uid: str) -> dict | None:
        rows = requests.get(f"{orthanc_dicomweb}/series", params={"SeriesInstanceUID": uid}, timeout=30).json()
        if not rows:
            return None
        source = {name: rows[0][tag]["Value"][0] for tag, name in series_tags.items()}
        source["00000000 CuratedModality_keyword"] = source["00080060 Modality_keyword"]
        return source

    class OpenSearch(Handler):
        def do_POST(self):
            if not self.token_ok():
                return self.reply(401, b"{}")
            query = json.loads(self.body() or b"{}")
            if not self.path.split("?")[0].endswith("/_search"):
                return self.reply(404, b"{}")
            hits = []
            if "search_after" not in query:
                must = query.get("query", {}).get("bool", {}).get("must", [])
                ids = [uid for clause in must for uid in clause.get("ids", {}).get("values", [])]
                for uid in sorted(set(ids), reverse=True):
                    source = document(uid)
                    if source is not None:
                        hits.append({"_id": uid, "_source": source, "sort": [uid]})
            return self.reply(200, json.dumps({"hits": {"total": {"value": len(hits)}, "hits": hits}}).encode())

        def do_GET(self):
            if not self.token_ok():
                return self.reply(401, b"{}")
            uid = urlsplit(self.path).path.rstrip("/").rsplit("/", 1)[-1]
            source = document(uid)
            if source is None:
                return self.reply(404, json.dumps({"found": False}).encode())
            return self.reply(200, json.dumps({"_id": uid, "found": True, "_source": source}).encode())
    return OpenSearch


def minio(s3_url: str):
    credentials = ("<AssumeRoleWithWebIdentityResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\">"
                   "<AssumeRoleWithWebIdentityResult><Credentials><AccessKeyId>BOXACCESSKEY</AccessKeyId>"
                   "<SecretAccessKey>box-secret-key</SecretAccessKey><SessionToken>box-session</SessionToken>"
                   "<Expiration>2099-01-01T00:00:00Z</Expiration></Credentials></AssumeRoleWithWebIdentityResult>"
                   "</AssumeRoleWithWebIdentityResponse>").encode()

    class MinIO(Handler):
        def handle_any(self, method):
            query = parse_qs(urlsplit(self.path).query)
            if query.get("Action") == ["AssumeRoleWithWebIdentity"]:
                if query.get("WebIdentityToken", [""])[0] not in ISSUED:
                    return self.reply(403, b"<Error><Code>AccessDenied</Code></Error>", "application/xml")
                return self.reply(200, credentials, "application/xml")
            forward(self, s3_url.rstrip("/") + self.path, method)

        def do_GET(self):
            self.handle_any("GET")

        def do_HEAD(self):
            self.handle_any("HEAD")

        def do_PUT(self):
            self.handle_any("PUT")

        def do_POST(self):
            self.handle_any("POST")
    return MinIO


def serve(handler, address: str, port: int, certificate: tuple[str, str] | None = None) -> ThreadingHTTPServer:
    server = ThreadingHTTPServer((address, port), handler)
    if certificate:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(*certificate)
        server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server
