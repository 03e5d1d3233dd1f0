"""STAND-INS for the Kaapana services a radpath run talks to that cannot run here, each on the
address and port its Kaapana service name resolves to inside the box
(tests/kaapana_box_driver.py), speaking the interface Kaapana's code uses as the snapshot
shows it. Tokens are the realm's signed JWTs (tests/kaapana_dwf.py, the Keycloak stand-in);
a request without a valid one is refused.

- OpenSearch (``opensearch-service.<services>.svc:9200``, HTTPS, gzip bodies): the ``ids``
  search of kaapanapy's HelperOpensearch.get_dcm_uid_objects, answered from Orthanc's series
  (tests/kaapana_ctp.py has the strict one the incoming pipeline fills).
- MinIO's STS (``minio-service.<services>.svc:9000``): AssumeRoleWithWebIdentity, as
  kaapanapy's get_minio_client asks it; every other request goes to moto's S3 server (a
  stand-in of its own) behind it.

Kaapana's dicom-web-filter itself runs (tests/kaapana_dwf.py).
"""

from __future__ import annotations

import gzip
import json
import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import requests

#: How the services check a bearer token: the realm's own signature check, which the box sets
#: (tests/kaapana_dwf.py, OpenIdStandIn.verify); unset, no token is taken.
VERIFY = None


def valid_token(token: str) -> bool:
    if VERIFY is None:
        return False
    try:
        VERIFY(token)
        return True
    except Exception:  # jwt.InvalidTokenError and its kin: not a token of the realm
        return False


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
        return valid_token(self.headers.get("Authorization", "").removeprefix("Bearer "))


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
                if not valid_token(query.get("WebIdentityToken", [""])[0]):
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
