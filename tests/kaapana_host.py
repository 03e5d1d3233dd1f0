"""STAND-IN for what a user's browser reaches on a Kaapana host (``https://<host>/…``):
Traefik's websecure entrypoint with Kaapana's login in front. It cannot run here (Traefik,
and the login proxy Kaapana runs before its services); what sits behind it is real where
it can run: Kaapana's dicom-web-filter, SLIM built from its source, Kaapana's own SLIM
config file, the pages radpath published into the project's bucket.

What it does, as the real host does, and what it refuses:

- A browser holds a **session** (a cookie, set at the end of the login: :meth:`KaapanaHost.login_url`
  stands for the login's redirect back). For each request, the session's user's access token
  goes on to the service as ``x-forwarded-access-token``, the header dicom-web-filter's
  ``auth_middleware.py`` reads where no ``Authorization`` comes (Kaapana's viewers send none:
  OHIF's ``kaapana.js`` and SLIM's ``local.js`` name only the URL). **No session, no
  answer**: 401, whatever the path.
- ``/dicom-web-filter/…`` → the filter, the prefix stripped (the chart's
  ``strip-prefix-dicom-web-filter`` middleware, ``dicom-web-filter-chart/templates/ingress.yaml``).
- ``/slim/…`` → SLIM's build; ``/slim/config/local.js`` is **Kaapana's own file**
  (``services/applications/slim-viewer/docker/local.js``, read from the snapshot, unchanged,
  as its Dockerfile copies it); SLIM's routes → ``/slim/index.html`` (Kaapana's nginx
  ``try_files … /slim/index.html``).
- ``/<bucket>/<key>`` → the project bucket's objects (MinIO), where radpath's DAG publishes
  its pages (``staticwebsiteresults/…``).
- ``/ohif/…``: 404 here: Kaapana's OHIF is not part of this stand-in (the pages' OHIF URLs
  are checked as URLs).
"""

from __future__ import annotations

import mimetypes
import secrets
import threading
from collections.abc import Callable, Mapping
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from urllib.parse import parse_qs, quote, urlsplit

import requests
from kaapana_dwf import Tls, make_tls, serve
from kaapana_dwf import _Handler as ServiceHandler  # the stand-ins' shared HTTP handler

#: Kaapana's SLIM settings, as its image carries them.
KAAPANA_SLIM_CONFIG = Path("services/applications/slim-viewer/docker/local.js")
SESSION_COOKIE = "_oauth2_proxy"  # the name Kaapana's login proxy gives its session
HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "content-encoding", "host"}


class KaapanaHost:
    """The host's routes in front of ``filter_url`` (the filter's service root), SLIM's
    build ``slim_www``, Kaapana's source ``kaapana`` and the bucket's objects (``read_object(key)``
    → bytes or None); ``token_of(user)``: the user's access token (the login's)."""

    def __init__(self, filter_url: str, slim_www: Path, kaapana: Path, bucket: str,
                 read_object: Callable[[str], bytes | None], token_of: Callable[[str], str], folder: Path):
        self.filter_url, self.slim_www, self.bucket = filter_url.rstrip("/"), Path(slim_www), bucket
        self.slim_config = (Path(kaapana) / KAAPANA_SLIM_CONFIG).read_bytes()
        self.read_object, self.token_of, self.folder = read_object, token_of, folder
        self._sessions: dict[str, str] = {}  # session cookie → access token
        self._codes: dict[str, str] = {}  # one-time login code → user
        self._lock = threading.Lock()
        self.refused: list[str] = []  # requests refused for want of a session
        self.base_url = ""

    def login_url(self, user: str, then: str) -> str:
        """Where a browser ends its login as ``user`` and is sent on to ``then`` (a path)."""
        code = secrets.token_urlsafe(16)
        with self._lock:
            self._codes[code] = user
        return f"{self.base_url}/oauth2/callback?code={code}&rd={quote(then, safe='')}"

    def page_url(self, key: str) -> str:
        return f"/{self.bucket}/{key}"

    def _session_token(self, cookie_header: str) -> str | None:
        for part in cookie_header.split(";"):
            name, _, value = part.strip().partition("=")
            if name == SESSION_COOKIE:
                with self._lock:
                    return self._sessions.get(value)
        return None

    def handler(self) -> type[BaseHTTPRequestHandler]:
        host = self

        class Host(ServiceHandler):
            def reply(self, status: int, body: bytes = b"", content_type: str = "text/plain",
                      headers: Mapping[str, str] = {}):
                super().reply(status, body, content_type, headers.items(), send_body=self.command != "HEAD")

            def do_GET(self):
                url = urlsplit(self.path)
                if url.path == "/oauth2/callback":
                    query = parse_qs(url.query)
                    with host._lock:
                        user = host._codes.pop((query.get("code") or [""])[0], None)
                    if user is None:
                        return self.reply(403, b"login: unknown or used code")
                    session = secrets.token_urlsafe(24)
                    with host._lock:
                        host._sessions[session] = host.token_of(user)
                    then = (query.get("rd") or ["/"])[0]
                    return self.reply(302, headers={
                        "Location": then if then.startswith("/") else "/",
                        "Set-Cookie": f"{SESSION_COOKIE}={session}; Path=/; Secure; HttpOnly; SameSite=Lax"})
                token = host._session_token(self.headers.get("Cookie", ""))
                if token is None:
                    host.refused.append(url.path)
                    return self.reply(401, b"Unauthorized: sign in to Kaapana")
                if url.path.startswith("/dicom-web-filter/"):
                    return self.to_filter(token)
                if url.path == "/slim/config/local.js":
                    return self.reply(200, host.slim_config, "text/javascript")
                if url.path.startswith("/slim/"):
                    return self.slim_file(url.path[len("/slim/"):])
                if url.path.startswith(f"/{host.bucket}/"):
                    data = host.read_object(url.path[len(host.bucket) + 2:])
                    if data is None:
                        return self.reply(404, b"no such object")
                    return self.reply(200, data, mimetypes.guess_type(url.path)[0] or "application/octet-stream")
                return self.reply(404, b"not on this host")

            do_HEAD = do_GET

            def slim_file(self, relative: str):
                path = (host.slim_www / relative).resolve()
                if host.slim_www.resolve() not in path.parents or not path.is_file():
                    path = host.slim_www / "index.html"  # try_files $uri $uri/ /slim/index.html
                self.reply(200, path.read_bytes(), mimetypes.guess_type(path.name)[0] or "application/octet-stream")

            def to_filter(self, token: str):
                headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP | {"cookie"}}
                headers["x-forwarded-access-token"] = token
                upstream = requests.get(host.filter_url + self.path[len("/dicom-web-filter"):], headers=headers,
                                        timeout=120)
                passed = {k: v for k, v in upstream.headers.items() if k.lower() not in HOP_BY_HOP}
                self.reply(upstream.status_code, upstream.content, passed.pop("Content-Type", "text/plain"), passed)

        return Host


@contextmanager
def kaapana_host(folder: Path, **kwargs):
    """:class:`KaapanaHost` on https://127.0.0.1:<free port> (its own CA and certificate)."""
    host = KaapanaHost(folder=folder, **kwargs)
    tls: Tls = make_tls(folder / "host-tls", ["127.0.0.1", "localhost"])
    server = serve(host.handler(), "127.0.0.1", 0, tls)
    host.base_url = f"https://127.0.0.1:{server.server_port}"
    try:
        yield host
    finally:
        server.shutdown()
        server.server_close()


#: The patient view as a user sees it: its pairs, its status, where its panes point.
PATIENT_VIEW = """() => ({ pairs: document.body.dataset.pairs ?? null,
  status: document.getElementById('status').textContent,
  list: [...document.querySelectorAll('#pairs a')].map(a => a.textContent),
  ohif: document.getElementById('ohif') ? document.getElementById('ohif').getAttribute('src') : null,
  slide: document.getElementById('slide').getAttribute('src') })"""


def look_at_patient_view(host: KaapanaHost, user: str, page: str, slide_series: str, scratch: Path) -> dict:
    """``user`` signs in, opens the published patient view at ``page`` (a path with its query)
    in headless Chromium; what it lists, and, where it lists a pair, what SLIM shows of
    ``slide_series`` (:func:`slide_pane.slim_shows`)."""
    from slide_pane import slim_shows

    from radpath.apps.viewer.look import BrowserSession

    with BrowserSession(scratch, ignore_https_errors=True) as browser:
        browser.goto(host.login_url(user, then=page))
        browser.wait("() => document.body.dataset.pairs !== undefined"
                     " || document.getElementById('status').textContent.startsWith('cannot')", timeout_s=120)
        seen = browser.evaluate(PATIENT_VIEW)
        if seen["pairs"] not in (None, "0"):
            seen["slide_pane"] = slim_shows(browser, slide_series, scratch / "slide.png")
    return seen


def patient_view_check(host: KaapanaHost, page_key: str, study: str, slide_series: str, users: list[str],
                       scratch: Path) -> dict:
    """The published page ``page_key`` on ``study`` as each of ``users`` sees it, and what the
    host answers without a session."""
    page = f"{host.page_url(page_key)}?study={study}"
    unsigned = {path: requests.get(host.base_url + path, verify=False, timeout=30).status_code
                for path in (page, f"/dicom-web-filter/studies/{study}/series", "/slim/config/local.js")}
    return {"page": page, "unsigned": unsigned,
            "users": {user: look_at_patient_view(host, user, page, slide_series, scratch / user) for user in users}}
