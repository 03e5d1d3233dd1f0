"""Kaapana's REAL dicom-web-filter, run from ``../shared/kaapana-0.6.0`` (never copied), and
what it needs around it, for the tests and for Kaapana in a box (tests/kaapana_box*.py):

- :class:`DicomWebFilter`: the filter's own code
  (``services/data-separation/dicom-web-filter/docker/files/``) started as its ``boot.sh``
  starts it: ``alembic/migrate.py``, then ``uvicorn app.main:app --root-path
  /dicom-web-filter``, with its working folder as cwd and PYTHONPATH, in ``.venv-dwf``
  (its pinned requirements on Python 3.12: ``scripts/setup.sh``), on a PostgreSQL database
  ``dicom_web_filter`` of its own (:func:`postgres`, :func:`create_database`), inside a
  private mount namespace (``unshare --mount``, as root) where the platform's CA lies at
  ``/etc/certs/kaapana.pem``, the fixed path its ``auth_middleware.py`` reads (as the
  chart's ``kaapana-cert`` secret is mounted there). Where ``/etc/certs`` is missing on the
  machine, an empty folder is made there as the mount point (as the box makes ``/kaapana``).
- :class:`OpenIdStandIn`: a STAND-IN for Keycloak's realm ``kaapana``.
- :func:`aii_stand_in`: a STAND-IN for the access-information-interface's project routes.
- :func:`dcm4chee_answers`: a STAND-IN adapter that has Orthanc answer the filter as
  dcm4chee-arc (Kaapana's PACS) does.
- :func:`map_series_to_project`: a series into a project the way Kaapana's incoming
  pipeline files it (LocalAssignDataToProjectOperator), through the filter's own routes.

What a pod needs to reach the filter: ``DICOM_WEB_FILTER_URL`` = :attr:`DicomWebFilter.url`,
the service root, as Kaapana's charts give it (``http://dicom-web-filter-service.<services>.svc:8080``):
kaapanapy's HelperDcmWeb asks ``/studies`` there. The root path ``/dicom-web-filter`` is
the ingress's, which strips it (the chart's ``strip-prefix-dicom-web-filter`` middleware)
before the request reaches uvicorn ``--root-path``: at the service itself a path starting
with ``/dicom-web-filter`` is 404. And a bearer token from the stand-in's password grant
(``KEYCLOAK_URL`` = its plain-HTTP base, ``KAAPANA_PROJECT_USER_NAME`` /
``KAAPANA_PROJECT_USER_PASSWORD``, ``KAAPANA_CLIENT_SECRET``), sent as ``Authorization:
Bearer`` (radpath and kaapanapy also send ``x-forwarded-access-token``). A request without
a valid token is answered 500: the middleware raises its HTTPException(403) outside
FastAPI's exception handlers (its log says why).
"""

from __future__ import annotations

import datetime
import gzip
import ipaddress
import json
import os
import re
import secrets
import shutil
import signal
import ssl
import subprocess
import threading
import time
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, parse_qsl, quote, urlencode, urlsplit

import requests

REPO = Path(__file__).resolve().parents[1]
KAAPANA_SOURCE = REPO.parent / "shared" / "kaapana-0.6.0"
DWF_VENV = Path(os.environ.get("RADPATH_DWF_VENV", REPO / ".venv-dwf"))
#: The filter's image content (its Dockerfile copies files/ to /app and runs boot.sh there).
DWF_FILES = "services/data-separation/dicom-web-filter/docker/files"
#: The root path boot.sh gives uvicorn (APPLICATION_ROOT); the ingress serves the filter
#: under it and strips it before the request reaches the service.
ROOT_PATH = "/dicom-web-filter"
#: Where auth_middleware.py reads the platform's CA (fixed in its code).
CA_PATH = "/etc/certs/kaapana.pem"
#: The path of dcm4chee-arc's DICOMweb root that the filter's chart names (DICOMWEB_BASE_URL).
DCM4CHEE_RS_PATH = "/dcm4chee-arc/aets/KAAPANA/rs"
REALM = "kaapana"
CLIENT_ID = "kaapana"


def free_port() -> int:
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def dwf_python(venv: Path = DWF_VENV) -> Path | None:
    """``.venv-dwf``'s interpreter, or None where scripts/setup.sh did not make it."""
    python = venv / "bin" / "python"
    return python if python.is_file() else None


# --- HTTP servers of the stand-ins ---------------------------------------------------------------------------


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            data = bytearray()
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    break
                data += self.rfile.read(size)
                self.rfile.readline()
            data = bytes(data)
        else:
            data = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        return gzip.decompress(data) if self.headers.get("Content-Encoding") == "gzip" else data

    def reply(self, status: int, payload: bytes = b"", content_type: str | None = "application/json",
              headers: Iterable[tuple[str, str]] = (), send_body: bool = True):
        self.send_response(status)
        if content_type:
            self.send_header("Content-Type", content_type)
        if status != 204:
            self.send_header("Content-Length", str(len(payload)))
        for key, value in headers:
            self.send_header(key, value)
        self.end_headers()
        if send_body and status != 204:
            self.wfile.write(payload)

    def reply_json(self, status: int, document) -> None:
        self.reply(status, json.dumps(document).encode())


def serve(handler: type[BaseHTTPRequestHandler], address: str = "127.0.0.1", port: int = 0,
          tls: Tls | None = None) -> ThreadingHTTPServer:
    """Serve ``handler`` on ``address:port`` (0: a free one; ``server.server_port`` says
    which) in a thread, over TLS with ``tls``'s certificate where given."""
    server = ThreadingHTTPServer((address, port), handler)
    server.daemon_threads = True
    if tls is not None:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(str(tls.cert), str(tls.key))
        server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


# --- TLS: the platform's CA and a server certificate -------------------------------------------------------------


@dataclass(frozen=True)
class Tls:
    """PEM files: the CA (what /etc/certs/kaapana.pem holds on Kaapana) and a server
    certificate it signed, with its key."""

    ca: Path
    cert: Path
    key: Path


def make_tls(folder: Path, names: Sequence[str]) -> Tls:
    """A CA and a server certificate for ``names`` (host names or IP addresses), in ``folder``."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import NameOID

    folder.mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.UTC)

    def certificate(subject: str, key, issuer_name, issuer_key, *, ca: bool, sans=()):
        builder = (x509.CertificateBuilder()
                   .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
                   .issuer_name(issuer_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
                   .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=2))
                   .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
        if ca:
            builder = builder.add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                                          content_commitment=False, key_encipherment=False,
                                                          data_encipherment=False, key_agreement=False,
                                                          encipher_only=False, decipher_only=False), critical=True)
        if sans:
            builder = builder.add_extension(x509.SubjectAlternativeName(list(sans)), critical=False)
        return builder.sign(issuer_key, hashes.SHA256())

    ca_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "radpath test CA (Kaapana's kaapana.pem)")])
    ca_cert = certificate("radpath test CA (Kaapana's kaapana.pem)", ca_key, ca_name, ca_key, ca=True)
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    sans = []
    for name in names:
        try:
            sans.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            sans.append(x509.DNSName(name))
    cert = certificate(names[0], key, ca_name, ca_key, ca=False, sans=sans)
    tls = Tls(folder / "ca.pem", folder / "server.pem", folder / "server.key")
    tls.ca.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    tls.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    tls.key.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                                          serialization.NoEncryption()))
    return tls


# --- Keycloak: STAND-IN ----------------------------------------------------------------------------------------


class OpenIdStandIn:
    """STAND-IN for Keycloak's realm ``kaapana`` (Keycloak itself is not in the snapshot), with
    the interface Kaapana's code uses:

    - ``GET /auth/realms/kaapana/.well-known/openid-configuration`` and the JWKS it names,
      which dicom-web-filter's ``auth_middleware.py`` loads (issuer, ``jwks_uri``) to check
      tokens: RS256, audience = the client id, issuer = the configuration's;
    - ``POST /auth/realms/kaapana/protocol/openid-connect/token``, the password grant (and
      refresh) of kaapanapy's ``get_project_user_access_token``
      (``data-processing/base-images/base-python-cpu/files/kaapana_python/kaapanapy/helper/__init__.py``:
      realm = client id = ``KAAPANA_CLIENT_ID`` (``kaapana``), ``client_secret`` from
      ``KAAPANA_CLIENT_SECRET``, ``kaapanapy/settings.py``): a wrong password, user, client
      or secret gets 401.

    Tokens are real RS256 JWTs signed with a key made here: ``iss``, ``aud`` (the client id),
    ``exp``, ``realm_access.roles`` (``admin`` for ``admins``: the filter's admin) and
    ``projects``, the user's projects as the access-information-interface describes them
    (``id``, ``name``, ``description``, ``role_id``, ``role_name``: its AiiProjectResponse),
    which the filter reads (``utils.get_user_project_ids``).

    ``users``: user → password and ``client_secret``, as tests/kaapana_box_services.py's
    ``keycloak(users, client_secret)`` takes them; ``projects``: user → that user's projects
    (each a mapping with at least ``id`` and ``name``); ``public_url``: where the realm is
    published (the issuer and the JWKS URL are under it; the filter fetches the JWKS from
    there with the CA of /etc/certs/kaapana.pem, so an https URL whose certificate that CA
    signed).
    """

    def __init__(self, users: Mapping[str, str], client_secret: str, public_url: str, *,
                 projects: Mapping[str, Sequence[Mapping]] | None = None, admins: Iterable[str] = (),
                 client_id: str = CLIENT_ID, realm: str = REALM, lifetime_s: int = 300):
        from cryptography.hazmat.primitives.asymmetric import rsa

        self.users = dict(users)
        self.client_secret = client_secret
        self.public_url = public_url.rstrip("/")
        self.projects = {user: [dict(p) for p in found] for user, found in (projects or {}).items()}
        self.admins = set(admins)
        self.client_id = client_id
        self.realm = realm
        self.lifetime_s = lifetime_s
        self.private_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.kid = secrets.token_hex(8)
        self._refresh: dict[str, str] = {}
        self._lock = threading.Lock()

    @property
    def issuer(self) -> str:
        return f"{self.public_url}/auth/realms/{self.realm}"

    @property
    def configuration_url(self) -> str:
        """DWF_IDENTITY_OPENID_CONFIG_URL, at the published address."""
        return f"{self.issuer}/.well-known/openid-configuration"

    def configuration(self) -> dict:
        base = f"{self.issuer}/protocol/openid-connect"
        return {"issuer": self.issuer, "jwks_uri": f"{base}/certs", "token_endpoint": f"{base}/token",
                "authorization_endpoint": f"{base}/auth", "userinfo_endpoint": f"{base}/userinfo",
                "grant_types_supported": ["password", "refresh_token"],
                "id_token_signing_alg_values_supported": ["RS256"], "response_types_supported": ["code"],
                "subject_types_supported": ["public"]}

    def jwks(self) -> dict:
        from jwt.algorithms import RSAAlgorithm

        key = RSAAlgorithm.to_jwk(self.private_key.public_key(), as_dict=True)
        return {"keys": [{**key, "kid": self.kid, "use": "sig", "alg": "RS256"}]}

    def claims(self, username: str) -> dict:
        now = int(time.time())
        roles = ["user", "offline_access", f"default-roles-{self.realm}"]
        if username in self.admins:
            roles.append("admin")
        return {"exp": now + self.lifetime_s, "iat": now, "jti": str(uuid.uuid4()), "iss": self.issuer,
                "aud": self.client_id, "sub": str(uuid.uuid5(uuid.NAMESPACE_URL, f"{self.issuer}/{username}")),
                "typ": "Bearer", "azp": self.client_id, "preferred_username": username,
                "realm_access": {"roles": roles},
                "projects": [{"id": str(p["id"]), "name": p["name"], "description": p.get("description", ""),
                              "role_id": p.get("role_id", 1), "role_name": p.get("role_name", "admin")}
                             for p in self.projects.get(username, [])]}

    def token(self, username: str) -> str:
        """An access token for ``username``, as the password grant issues it."""
        import jwt

        return jwt.encode(self.claims(username), self.private_key, algorithm="RS256", headers={"kid": self.kid})

    def verify(self, token: str) -> dict:
        """The claims of a token this realm signed (not expired, for its client), else
        ``jwt.InvalidTokenError``: what a resource server checks."""
        import jwt

        return jwt.decode(token, self.private_key.public_key(), algorithms=["RS256"], audience=self.client_id,
                          issuer=self.issuer)

    def grant(self, form: Mapping[str, str]) -> tuple[int, dict]:
        """The token endpoint's answer (status, JSON) to a form."""
        if form.get("client_id") != self.client_id or form.get("client_secret") != self.client_secret:
            return 401, {"error": "unauthorized_client", "error_description": "Invalid client or Invalid client credentials"}
        grant_type = form.get("grant_type")
        with self._lock:
            if grant_type == "password":
                user = form.get("username")
                if user not in self.users or self.users[user] != form.get("password"):
                    return 401, {"error": "invalid_grant", "error_description": "Invalid user credentials"}
            elif grant_type == "refresh_token":
                user = self._refresh.pop(form.get("refresh_token", ""), None)
                if user is None:
                    return 400, {"error": "invalid_grant", "error_description": "Invalid refresh token"}
            else:
                return 400, {"error": "unsupported_grant_type"}
            refresh = secrets.token_urlsafe(32)
            self._refresh[refresh] = user
        return 200, {"access_token": self.token(user), "expires_in": self.lifetime_s, "refresh_expires_in": 1800,
                     "refresh_token": refresh, "token_type": "Bearer", "not-before-policy": 0,
                     "session_state": str(uuid.uuid4()), "scope": "profile email"}

    def handler(self) -> type[BaseHTTPRequestHandler]:
        """The HTTP handler (serve it with :func:`serve`, over TLS where it is published)."""
        idp = self
        prefix = f"/auth/realms/{self.realm}"

        class Keycloak(_Handler):
            def do_GET(self):
                path = urlsplit(self.path).path
                if path == f"{prefix}/.well-known/openid-configuration":
                    return self.reply_json(200, idp.configuration())
                if path == f"{prefix}/protocol/openid-connect/certs":
                    return self.reply_json(200, idp.jwks())
                return self.reply_json(404, {"error": "Unable to find matching target resource method"})

            def do_POST(self):
                if urlsplit(self.path).path != f"{prefix}/protocol/openid-connect/token":
                    return self.reply_json(404, {"error": "Unable to find matching target resource method"})
                form = {key: values[0] for key, values in parse_qs(self.body().decode()).items()}
                return self.reply_json(*idp.grant(form))

        return Keycloak


# --- access-information-interface: STAND-IN ----------------------------------------------------------------------


def aii_stand_in(projects: Sequence[Mapping], admin: Mapping) -> type[BaseHTTPRequestHandler]:
    """STAND-IN for the access-information-interface's project routes
    (``services/data-separation/access-information-interface/docker/backend/files/app/projects/routes.py``,
    schema ``Project`` of ``app/projects/schemas.py``): ``GET /projects`` (every project),
    ``GET /projects/admin`` (the admin project, which dicom-web-filter's STOW files into:
    ``utils.get_default_project_id``), ``GET /projects/{name or id}`` (404 ``Project not
    found``), each project as ``{id, external_id, name, int_id, description,
    kubernetes_namespace, s3_bucket, opensearch_index}`` (dicom-web-filter's 0.5.0 migration
    reads ``int_id`` of ``GET /projects``). The real service needs OpenSearch, MinIO and kube-helm to
    create a project (POST /projects) and reads its configuration from a fixed /app/config."""

    def described(project: Mapping) -> dict:
        name = project["name"]
        return {"id": str(project["id"]), "external_id": project.get("external_id"), "name": name,
                "int_id": project.get("int_id"), "description": project.get("description", f"Project {name}"),
                "kubernetes_namespace": project.get("kubernetes_namespace", f"project-{name}"),
                "s3_bucket": project.get("s3_bucket", f"project-{name}"),
                "opensearch_index": project.get("opensearch_index", f"project_{name}")}

    known = [described(admin)] + [described(p) for p in projects if str(p["id"]) != str(admin["id"])]

    class AccessInformationInterface(_Handler):
        def do_GET(self):
            path = urlsplit(self.path).path.rstrip("/")
            if path.startswith("/aii/"):  # its FastAPI root path, where a request carries it
                path = path[len("/aii"):]
            if path == "/projects":
                return self.reply_json(200, known)
            if path == "/projects/admin":
                return self.reply_json(200, known[0])
            match = re.fullmatch(r"/projects/([^/]+)", path)
            if match:
                wanted = match.group(1)
                for project in known:
                    if wanted in (project["id"], project["name"]):
                        return self.reply_json(200, project)
                return self.reply_json(404, {"detail": "Project not found"})
            return self.reply_json(404, {"detail": "Not Found"})

    return AccessInformationInterface


# --- the PACS: Orthanc answering as dcm4chee-arc -----------------------------------------------------------------

_QIDO = re.compile(r"/(studies|series|instances)|/studies/[^/]+/(series|instances)|/studies/[^/]+/series/[^/]+/instances")
_HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "content-encoding", "host",
               "proxy-authorization", "te", "trailer", "upgrade", "accept-encoding", "authorization",
               "x-forwarded-access-token"}


def dcm4chee_answers(orthanc_dicomweb: str) -> type[BaseHTTPRequestHandler]:
    """STAND-IN adapter between dicom-web-filter and Orthanc: Orthanc's DICOMweb, served under
    dcm4chee-arc's path (:data:`DCM4CHEE_RS_PATH`, as the filter's chart names
    DICOMWEB_BASE_URL), answering the filter where Orthanc 1.10 and dcm4chee-arc differ and the
    filter's code counts on dcm4chee's way:

    - ``HEAD`` of a QIDO-RS search (``QIDO_RS/routes.py`` ``head_request`` asks it first and
      raises on an error): Orthanc answers 404; here it is the search's status without a body;
    - an empty QIDO-RS result is ``204 No Content`` (the filter returns 204 when its HEAD says
      so), where Orthanc answers ``200 []``;
    - a repeated query key (the filter passes the UIDs a user may see as
      ``StudyInstanceUID=a&StudyInstanceUID=b``) matches any of its values: Orthanc keeps one,
      so they go to it as one comma-separated list (UID list matching, PS3.18 8.3.4.1).

    - WADO-RS metadata names bulk data (``BulkDataURI``) at dcm4chee's own base URL (the
      address the filter called, under :data:`DCM4CHEE_RS_PATH`), which the filter rewrites
      (``metadata_replace_stream``); Orthanc names its own.

    Everything else goes to Orthanc as it came (WADO-RS, STOW-RS), without the caller's token.
    """
    upstream_root = orthanc_dicomweb.rstrip("/")

    class Dcm4cheeAnswers(_Handler):
        def upstream(self, method: str, data: bytes | None = None) -> tuple[requests.Response, bool]:
            parts = urlsplit(self.path)
            path = parts.path
            if not path.startswith(DCM4CHEE_RS_PATH):
                raise LookupError(path)
            path = path[len(DCM4CHEE_RS_PATH):] or "/"
            qido = _QIDO.fullmatch(path.rstrip("/")) is not None and method in ("GET", "HEAD")
            query = parts.query
            if qido:
                merged: dict[str, list[str]] = {}
                for key, value in parse_qsl(query, keep_blank_values=True):
                    merged.setdefault(key, []).append(value)
                query = urlencode({key: ",".join(v for v in values if v) for key, values in merged.items()})
            headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP}
            url = upstream_root + quote(path, safe="/:@%") + (f"?{query}" if query else "")
            response = requests.request("GET" if method == "HEAD" else method, url, data=data, headers=headers,
                                        stream=not qido, timeout=600)
            return response, qido

        def relay(self, method: str, data: bytes | None = None):
            try:
                response, qido = self.upstream(method, data)
            except LookupError:
                return self.reply_json(404, {"errorMessage": "not under " + DCM4CHEE_RS_PATH})
            send_body = method != "HEAD"
            content_type = response.headers.get("Content-Type")
            if qido:
                payload = response.content
                if response.status_code == 200 and payload.strip() in (b"", b"[]"):
                    return self.reply(204, content_type=None, send_body=False)
                return self.reply(response.status_code, payload, content_type, send_body=send_body)
            if urlsplit(self.path).path.endswith("/metadata") and response.status_code == 200:
                own_base = f"http://{self.headers.get('Host', '')}{DCM4CHEE_RS_PATH}".encode()
                with response:
                    payload = response.content.replace(upstream_root.encode(), own_base)
                return self.reply(200, payload, content_type, send_body=send_body)
            with response:
                self.send_response(response.status_code)
                if content_type:
                    self.send_header("Content-Type", content_type)
                length = response.headers.get("Content-Length") if not response.headers.get("Content-Encoding") else None
                if length is not None:
                    self.send_header("Content-Length", length)
                elif send_body:
                    self.send_header("Transfer-Encoding", "chunked")
                else:
                    self.send_header("Content-Length", "0")
                self.end_headers()
                if not send_body:
                    return None
                for chunk in response.iter_content(1 << 20):
                    if length is not None:
                        self.wfile.write(chunk)
                    elif chunk:
                        self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                if length is None:
                    self.wfile.write(b"0\r\n\r\n")
            return None

        def do_GET(self):
            self.relay("GET")

        def do_HEAD(self):
            self.relay("HEAD")

        def do_POST(self):
            self.relay("POST", self.body())

        def do_DELETE(self):
            self.relay("DELETE")

    return Dcm4cheeAnswers


# --- PostgreSQL ---------------------------------------------------------------------------------------------------


def _postgres_binaries() -> Path:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin"))
    if not found:
        raise RuntimeError("PostgreSQL not found under /usr/lib/postgresql (scripts/setup.sh installs it with "
                           "RADPATH_KAAPANA_BOX=1)")
    return found[-1]


@contextmanager
def postgres(folder: Path, user: str = "airflow") -> Iterator[Path]:
    """A PostgreSQL server on a Unix socket in ``folder`` (a new folder the ``postgres`` user
    can reach: PostgreSQL will not run as root), superuser ``user``, trust authentication,
    no TCP, started as tests/kaapana_box_driver.py's ``postgres()`` starts Airflow's; yields
    the socket folder."""
    binaries = _postgres_binaries()
    folder.mkdir(parents=True)
    shutil.chown(folder, "postgres")
    as_postgres = ["runuser", "-u", "postgres", "--"]
    subprocess.run([*as_postgres, str(binaries / "initdb"), "-D", str(folder / "data"), "-U", user, "--auth=trust",
                    "--no-sync", "-E", "UTF8"], check=True, capture_output=True)
    server = subprocess.Popen([*as_postgres, str(binaries / "postgres"), "-D", str(folder / "data"), "-k", str(folder),
                               "-c", "listen_addresses=", "-c", "fsync=off", "-c", "max_connections=300"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(300):
            if subprocess.run([str(binaries / "pg_isready"), "-q", "-h", str(folder)]).returncode == 0:
                break
            if server.poll() is not None:
                raise RuntimeError(f"PostgreSQL in {folder} exited with {server.returncode}")
            time.sleep(0.1)
        yield folder
    finally:
        server.terminate()
        server.wait(timeout=60)


def create_database(socket_dir: Path, user: str = "airflow", name: str = "dicom_web_filter") -> str:
    """Database ``name`` on the server whose socket is in ``socket_dir`` (kept if it is
    there); returns the filter's DATABASE_URL for it (``postgresql+asyncpg``, Unix socket)."""
    done = subprocess.run([str(_postgres_binaries() / "createdb"), "-h", str(socket_dir), "-U", user, name],
                          capture_output=True, text=True)
    if done.returncode != 0 and "already exists" not in done.stderr:
        raise RuntimeError(f"createdb {name}: {done.stderr.strip()}")
    return f"postgresql+asyncpg://{user}@/{name}?host={socket_dir}"


# --- dicom-web-filter ---------------------------------------------------------------------------------------------

_LAUNCH = r"""set -e
# auth_middleware.py reads the platform's CA from this fixed path: the chart mounts the
# certificate secret there; here a folder holding it is bound over /etc/certs, in this
# process's own mount namespace only.
mkdir -p /etc/certs
mount --bind "$RADPATH_DWF_CERTS" /etc/certs
cd "$RADPATH_DWF_APP"
export PYTHONPATH="$PWD"
# boot.sh: migrations, then uvicorn under the root path
"$RADPATH_DWF_PYTHON" alembic/migrate.py
exec "$RADPATH_DWF_PYTHON" -m uvicorn app.main:app --workers 1 --host "$RADPATH_DWF_HOST" --port "$RADPATH_DWF_PORT" \
    --root-path /dicom-web-filter --access-log
"""


class DicomWebFilter:
    """Kaapana's dicom-web-filter, its own code from the snapshot, as a process.

    ``database_url``: from :func:`create_database`; ``dicomweb_base_url``: the PACS behind it
    (DICOMWEB_BASE_URL: :func:`dcm4chee_answers` in front of Orthanc, whose path must not be
    empty, for the filter rewrites that path in every QIDO and metadata answer);
    ``wado_uri_url``: DICOMWEB_BASE_URL_WADO_URI; ``aii_url``: ACCESS_INFORMATION_INTERFACE_URL;
    ``openid_config_url``: DWF_IDENTITY_OPENID_CONFIG_URL; ``ca``: the CA that signed the
    identity provider's certificate, put at /etc/certs/kaapana.pem; ``workdir``: its log
    (``dicom-web-filter.log``) and the certificate folder. Start with :meth:`start` or
    ``with``; it listens on ``host:port`` (a free loopback port by default).
    """

    def __init__(self, *, database_url: str, dicomweb_base_url: str, wado_uri_url: str, aii_url: str,
                 openid_config_url: str, ca: Path, workdir: Path, host: str = "127.0.0.1", port: int | None = None,
                 client_id: str = CLIENT_ID, kaapana: Path = KAAPANA_SOURCE, venv: Path = DWF_VENV):
        self.env = {"DICOMWEB_BASE_URL": dicomweb_base_url, "DICOMWEB_BASE_URL_WADO_URI": wado_uri_url,
                    "DATABASE_URL": database_url, "ACCESS_INFORMATION_INTERFACE_URL": aii_url,
                    "DWF_IDENTITY_OPENID_CONFIG_URL": openid_config_url, "DWF_IDENTITY_OPENID_CLIENT_ID": client_id}
        self.ca = Path(ca)
        self.workdir = Path(workdir)
        self.host = host
        self.port = port or free_port()
        self.app_dir = Path(kaapana) / DWF_FILES
        self.python = venv / "bin" / "python"
        self.process: subprocess.Popen | None = None
        self.log_path = self.workdir / "dicom-web-filter.log"

    @property
    def url(self) -> str:
        """The service root, as Kaapana gives pods DICOM_WEB_FILTER_URL (no root path: the
        ingress strips it)."""
        return f"http://{self.host}:{self.port}"

    def log(self, last: int = 4000) -> str:
        return self.log_path.read_text(errors="replace")[-last:] if self.log_path.exists() else ""

    def start(self, timeout: float = 90) -> DicomWebFilter:
        if not self.python.is_file():
            raise RuntimeError(f"{self.python} not found: scripts/setup.sh (RADPATH_KAAPANA_BOX=1) makes .venv-dwf")
        if not (self.app_dir / "app" / "main.py").is_file():
            raise RuntimeError(f"dicom-web-filter's code not found at {self.app_dir}")
        certs = self.workdir / "certs"
        certs.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(self.ca, certs / "kaapana.pem")
        env = {"PATH": "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin", "HOME": str(self.workdir), "LANG": "C.UTF-8",
               "PYTHONUNBUFFERED": "1", **self.env,
               "RADPATH_DWF_CERTS": str(certs), "RADPATH_DWF_APP": str(self.app_dir),
               "RADPATH_DWF_PYTHON": str(self.python), "RADPATH_DWF_HOST": self.host,
               "RADPATH_DWF_PORT": str(self.port)}
        log = open(self.log_path, "ab")
        self.process = subprocess.Popen(["unshare", "--mount", "--propagation", "private", "sh", "-c", _LAUNCH],
                                        env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        deadline = time.time() + timeout
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"dicom-web-filter exited with {self.process.returncode}:\n{self.log()}")
            try:
                requests.get(f"{self.url}/openapi.json", timeout=2)  # any answer: it is up
                return self
            except requests.ConnectionError:
                pass
            if time.time() > deadline:
                self.stop()
                raise RuntimeError(f"dicom-web-filter did not answer within {timeout} s:\n{self.log()}")
            time.sleep(0.2)

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=20)

    def __enter__(self) -> DicomWebFilter:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


# --- what Kaapana's incoming pipeline does with a series ----------------------------------------------------------


def map_series_to_project(filter_url: str, token: str, aii_url: str, series_instance_uid: str,
                          study_instance_uid: str, project_name: str | None) -> list[str]:
    """Map a series into the admin project and into ``project_name`` through the filter's own
    routes, as Kaapana's incoming pipeline does (``LocalAssignDataToProjectOperator.
    assign_data_to_projects``, ``data-processing/kaapana-plugin/extension/docker/files/plugin/
    kaapana/operators/``): ``PUT /data/{series}?study_uid=&description=Dicom data`` (the
    dicom_data row: the series' study), the admin project from the access-information-
    interface's ``/projects/admin``, ``PUT /projects/{id}/data/{series}``, then the same for the
    project the series' ClinicalTrialProtocolID names (``/projects/{name}``). ``token``: the
    caller's (HelperDcmWeb's session sends it as ``Authorization`` and
    ``x-forwarded-access-token``). Returns the project ids mapped."""
    session = requests.Session()
    session.headers.update({"Authorization": f"Bearer {token}", "x-forwarded-access-token": token})
    base = filter_url.rstrip("/")
    response = session.put(f"{base}/data/{series_instance_uid}",
                           params={"study_uid": study_instance_uid, "description": "Dicom data"}, timeout=30)
    response.raise_for_status()
    admin = requests.get(f"{aii_url.rstrip('/')}/projects/admin", timeout=30)
    admin.raise_for_status()
    mapped = [admin.json()["id"]]
    if project_name:
        project = requests.get(f"{aii_url.rstrip('/')}/projects/{project_name}", timeout=30)
        project.raise_for_status()
        mapped.append(project.json()["id"])
    for project_id in dict.fromkeys(mapped):
        session.put(f"{base}/projects/{project_id}/data/{series_instance_uid}", timeout=30).raise_for_status()
    return list(dict.fromkeys(mapped))


# --- all of it at once ------------------------------------------------------------------------------------------


@dataclass
class DataSeparation:
    """What :func:`data_separation` started: the filter, the identity provider stand-in (its
    plain-HTTP base for the password grant, as ``KEYCLOAK_URL``; its TLS base, where the
    realm is published), the access-information-interface stand-in, and the PACS adapter."""

    filter: DicomWebFilter
    idp: OpenIdStandIn
    keycloak_url: str
    keycloak_tls_url: str
    aii_url: str
    pacs_url: str

    def token(self, user: str) -> str:
        return self.idp.token(user)

    def map_series(self, series_instance_uid: str, study_instance_uid: str, project_name: str | None,
                   as_user: str) -> list[str]:
        """:func:`map_series_to_project` with ``as_user``'s token."""
        return map_series_to_project(self.filter.url, self.token(as_user), self.aii_url, series_instance_uid,
                                     study_instance_uid, project_name)


#: The services :func:`data_separation` starts, by the name its ``at`` argument takes.
SERVICES = ("dicom-web-filter", "keycloak", "keycloak-tls", "aii", "pacs")


@contextmanager
def data_separation(root: Path, orthanc_dicomweb: str, socket_dir: Path, *, users: Mapping[str, str],
                    client_secret: str, projects: Sequence[Mapping], admin_project: Mapping,
                    memberships: Mapping[str, Sequence[str]], admins: Iterable[str] = (),
                    db_user: str = "airflow", at: Mapping[str, tuple[str, int | None]] | None = None,
                    realm_url: str | None = None, tls_names: Sequence[str] = (),
                    openid_config_url: str | None = None) -> Iterator[DataSeparation]:
    """Kaapana's data separation in front of Orthanc: the real dicom-web-filter (database
    ``dicom_web_filter`` on the PostgreSQL whose socket is in ``socket_dir``, superuser
    ``db_user``), the Keycloak stand-in (plain HTTP for the password grant, as Kaapana's
    keycloak-external-service; TLS where the realm is published, its CA at the filter's
    /etc/certs/kaapana.pem), the access-information-interface stand-in (``projects`` plus
    ``admin_project``) and Orthanc answering as dcm4chee.

    ``memberships``: user → names of the projects in the user's token; ``admins``: users with
    the realm role ``admin``. ``at``: (address, port) per service of :data:`SERVICES` (a
    port of None: a free one; default 127.0.0.1 and free ports), e.g. in a box
    ``{"dicom-web-filter": ("127.0.10.1", 8080), "keycloak": ("127.0.10.5", 80)}``;
    ``realm_url``: where the realm is published (the tokens' issuer; default
    ``https://<keycloak-tls address>:<port>``), its host among ``tls_names`` (the names the
    certificate is for, besides every address of ``at``); ``openid_config_url``: where the
    filter reads the realm's configuration (DWF_IDENTITY_OPENID_CONFIG_URL; default the
    published one)."""
    root.mkdir(parents=True, exist_ok=True)
    places = {name: ("127.0.0.1", None) for name in SERVICES}
    places.update(at or {})
    unknown = set(places) - set(SERVICES)
    if unknown:
        raise ValueError(f"data_separation: unknown services {sorted(unknown)}; known: {SERVICES}")
    ports = {name: port or free_port() for name, (_, port) in places.items()}
    address = {name: host for name, (host, _) in places.items()}
    by_name = {p["name"]: p for p in [admin_project, *projects]}
    tls = make_tls(root / "tls", list(dict.fromkeys([*tls_names, *address.values(), "localhost"])))
    idp = OpenIdStandIn(users, client_secret,
                        realm_url or f"https://{address['keycloak-tls']}:{ports['keycloak-tls']}",
                        projects={user: [by_name[name] for name in names] for user, names in memberships.items()},
                        admins=admins)
    servers = []
    try:
        servers.append(serve(idp.handler(), address["keycloak-tls"], ports["keycloak-tls"], tls))
        servers.append(serve(idp.handler(), address["keycloak"], ports["keycloak"]))
        servers.append(serve(aii_stand_in(projects, admin_project), address["aii"], ports["aii"]))
        servers.append(serve(dcm4chee_answers(orthanc_dicomweb), address["pacs"], ports["pacs"]))
        keycloak_url = f"http://{address['keycloak']}:{ports['keycloak']}"
        aii_url = f"http://{address['aii']}:{ports['aii']}"
        pacs_url = f"http://{address['pacs']}:{ports['pacs']}{DCM4CHEE_RS_PATH}"
        database = create_database(socket_dir, db_user)
        orthanc_root = orthanc_dicomweb.rstrip("/").rsplit("/", 1)[0]
        with DicomWebFilter(database_url=database, dicomweb_base_url=pacs_url, wado_uri_url=f"{orthanc_root}/wado",
                            aii_url=aii_url, openid_config_url=openid_config_url or idp.configuration_url, ca=tls.ca,
                            workdir=root / "dicom-web-filter", host=address["dicom-web-filter"],
                            port=ports["dicom-web-filter"]) as dwf:
            yield DataSeparation(dwf, idp, keycloak_url, idp.public_url, aii_url, pacs_url)
    finally:
        for server in servers:
            server.shutdown()
            server.server_close()
