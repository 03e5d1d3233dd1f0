"""One origin on 127.0.0.1 for the local viewer: OHIF's files, SLIM's (built in set-up,
:mod:`radpath.apps.viewer.slim`) at ``/slim`` with its settings for this host, a proxy to
the DICOMweb server holding the results, and Kaapana's OHIF route, so the links radpath
writes (``/ohif/viewer?…``, ``/slim/studies/<study>/series/<series>``) open here as they
open on a Kaapana host. Where SLIM was not built, its route falls back to OHIF's
microscopy mode. Cross-origin isolation headers let cornerstone use SharedArrayBuffer.
"""

from __future__ import annotations

import http.client
import json
import mimetypes
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

from radpath.adapters.orthanc import free_port
from radpath.apps.viewer.slim import SLIM_PATH, local_config
from radpath.domain.link.site import LOCAL_DICOMWEB_PATH, ViewerSite, local_site

mimetypes.add_type("application/wasm", ".wasm")
mimetypes.add_type("text/javascript", ".js")
mimetypes.add_type("text/javascript", ".mjs")

PROXIED = (f"{LOCAL_DICOMWEB_PATH}/", f"{LOCAL_DICOMWEB_PATH}?", "/wado")
SLIM_ROUTE = re.compile(r"^/slim/studies/(?P<study>[0-9.]+)(/series/(?P<series>[0-9.]+))?/?$")
METADATA = re.compile(rf"^{re.escape(LOCAL_DICOMWEB_PATH)}/studies/[^/]+(/series/[^/]+)?(/instances/[^/]+)?/metadata(\?.*)?$")
HOP_BY_HOP = {"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailers",
              "transfer-encoding", "upgrade", "content-length"}
#: Orthanc 1.10's DICOMweb writes OF/OD/OL/OV values as one number; as bulk data links
#: instead (Orthanc serves them), annotations on slides draw (shared/tools/ohif-check).
BINARY_NUMERIC_VR = {"OF", "OD", "OL", "OV"}


def _binary_values_as_bulk(instances: list, origin: str) -> bool:
    changed = False

    def walk(item: dict, path: list[str], base: str) -> None:
        nonlocal changed
        for tag, element in item.items():
            if element.get("vr") == "SQ":
                for index, child in enumerate(element.get("Value") or [], 1):
                    walk(child, [*path, tag, str(index)], base)
            elif element.get("vr") in BINARY_NUMERIC_VR and "Value" in element:
                item[tag] = {"vr": element["vr"], "BulkDataURI": f"{base}/bulk/{'/'.join([*path, tag])}"}
                changed = True

    for instance in instances:
        try:
            study, series, sop = (instance[t]["Value"][0] for t in ("0020000D", "0020000E", "00080018"))
        except (KeyError, IndexError, TypeError):
            continue
        walk(instance, [], f"{origin}{LOCAL_DICOMWEB_PATH}/studies/{study}/series/{series}/instances/{sop}")
    return changed


class ViewerServer:
    """Serves ``www`` (OHIF's dist), ``slim`` (SLIM's build, if any) at ``/slim``, proxies
    DICOMweb to ``upstream`` (host, port), and serves ``pages`` under ``/radpath/``. Use as
    a context manager."""

    def __init__(self, www: Path, upstream: tuple[str, int], pages: Path | None = None, port: int | None = None,
                 slim: Path | None = None):
        self.www, self.upstream, self.pages = Path(www).resolve(), upstream, pages
        self.slim = Path(slim).resolve() if slim is not None else None
        self.port = port or free_port()
        self._server: ThreadingHTTPServer | None = None

    @property
    def site(self) -> ViewerSite:
        """What this host serves, for the pages written for it."""
        return local_site(slim_built=self.slim is not None)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> ViewerServer:
        handler = type("Handler", (_Handler,), {"viewer": self})
        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    viewer: ViewerServer

    def log_message(self, fmt, *args):  # quiet: the viewer's requests are many
        pass

    def _isolation_headers(self) -> None:
        self.send_header("Cross-Origin-Opener-Policy", "same-origin")
        self.send_header("Cross-Origin-Embedder-Policy", "require-corp")
        self.send_header("Cross-Origin-Resource-Policy", "same-origin")
        self.send_header("Cache-Control", "no-store")

    def _reply(self, status: int, body: bytes = b"", content_type: str | None = None,
               headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        if content_type:
            self.send_header("Content-Type", content_type)
        self._isolation_headers()
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _proxy(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else None
        headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
        headers["Accept-Encoding"] = "identity"
        connection = http.client.HTTPConnection(*self.viewer.upstream, timeout=120)
        try:
            connection.request(self.command, self.path, body=body, headers=headers)
            response = connection.getresponse()
            data = response.read()
        except OSError as err:
            self._reply(502, f"DICOMweb server at {self.viewer.upstream}: {err}".encode(), "text/plain")
            return
        finally:
            connection.close()
        if self.command == "GET" and response.status == 200 and METADATA.match(self.path) and b'"O' in data:
            try:
                instances = json.loads(data)
                if _binary_values_as_bulk(instances, self.viewer.base_url):
                    data = json.dumps(instances).encode()
            except ValueError:
                pass
        passed = {k: v for k, v in response.getheaders() if k.lower() not in HOP_BY_HOP}
        self._reply(response.status, data, headers=passed)

    def _file(self, root: Path, relative: str, spa_fallback: bool) -> None:
        path = (root / relative.lstrip("/")).resolve()
        if root not in path.parents and path != root or not path.is_file():
            last = Path(relative).name
            if not spa_fallback or "." in last:
                self._reply(404, b"not found", "text/plain")
                return
            path = root / "index.html"  # OHIF's routes (/viewer, /microscopy) are the app's
        content_type = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        self._reply(200, path.read_bytes(), content_type)

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        path = unquote(url.path)
        if self.path.startswith(PROXIED):
            self._proxy()
        elif path == "/ohif/viewer":  # Kaapana's OHIF route → OHIF at this root
            self._reply(302, headers={"Location": f"/viewer?{url.query}"})
        elif self.viewer.slim is not None and (path == SLIM_PATH or path.startswith(SLIM_PATH + "/")):
            self._slim(path[len(SLIM_PATH):])
        elif (slim := SLIM_ROUTE.match(path)) is not None:  # no SLIM built: OHIF's microscopy mode
            # The series too: a study may hold several slides, and OHIF shows its first otherwise.
            series = f"&SeriesInstanceUIDs={slim['series']}" if slim["series"] else ""
            self._reply(302, headers={"Location": f"/microscopy?StudyInstanceUIDs={slim['study']}{series}"})
        elif path.startswith("/radpath/") and self.viewer.pages is not None:
            self._file(Path(self.viewer.pages).resolve(), path[len("/radpath/"):], spa_fallback=False)
        else:
            self._file(self.viewer.www, path, spa_fallback=True)

    do_HEAD = do_GET

    def _slim(self, relative: str) -> None:
        if relative == "/config/local.js":  # SLIM's settings for this host (Kaapana's shape)
            self._reply(200, local_config(LOCAL_DICOMWEB_PATH).encode(), "text/javascript")
        elif relative in ("", "/") or relative.startswith("/studies/"):  # SLIM's routes are the app's
            self._file(self.viewer.slim, "index.html", spa_fallback=False)
        else:
            self._file(self.viewer.slim, relative, spa_fallback=False)

    def do_POST(self) -> None:
        if self.path.startswith(PROXIED):
            self._proxy()
        else:
            self._reply(405, b"", "text/plain")
