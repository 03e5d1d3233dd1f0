"""Shared fixtures: a real Orthanc (plain and authenticated), the public sample data."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from radpath.adapters.orthanc import Credentials, LocalOrthanc, OrthancUnavailable, find_orthanc
from radpath.adapters.settings import DicomWebSettings

# wsidicomizer switches pydicom to "future" behaviour when first imported, breaking
# Dataset.pixel_array process-wide; load it once through radpath's guard so later plain
# imports in tests find it cached.
from radpath.adapters.slides.convert import load_wsidicomizer  # noqa: E402

load_wsidicomizer()

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("RADPATH_SHARED_DATA", REPO.parent / "shared" / "data"))
#: Kaapana's own code at tag 0.6.0 (a partial export), the oracle of the Kaapana tests.
KAAPANA_SOURCE = REPO.parent / "shared" / "kaapana-0.6.0"
REQUIRE_SHARED_DATA = os.environ.get("RADPATH_REQUIRE_SHARED_DATA") == "1"


def skip_unless_ci(message: str) -> None:
    """Skip the test for what a user's machine may lack; under .ci/run, which sets
    RADPATH_REQUIRE_SHARED_DATA, the same lack fails it."""
    if REQUIRE_SHARED_DATA:
        pytest.fail(message + "; .ci/run requires it")
    pytest.skip(message)


def require_shared(path: Path, what: str) -> Path:
    """``path`` under ``../shared`` (absent in a user's clone)."""
    if not path.is_dir():
        skip_unless_ci(f"{what} not found at {path} (it sits beside the repo, not in it)")
    return path


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``../shared/data`` (public sample files)."""
    return require_shared(SHARED_DATA, "public sample data")


@pytest.fixture(scope="session")
def kaapana_source() -> Path:
    """``../shared/kaapana-0.6.0``: Kaapana's source, read by the packaging and DAG tests."""
    return require_shared(KAAPANA_SOURCE, "Kaapana 0.6.0's source")


@pytest.fixture(scope="session")
def demo_run(tmp_path_factory) -> tuple[Path, subprocess.CompletedProcess]:
    """``radpath demo`` once for the session (the whole pipeline under a local Airflow):
    its output folder and the finished command."""
    output = tmp_path_factory.mktemp("demo")
    run = subprocess.run([sys.executable, "-m", "radpath", "demo", "--output", str(output)],
                         capture_output=True, text=True, timeout=600)
    return output, run


def _start(credentials: Credentials | None, tmp: Path) -> LocalOrthanc:
    if find_orthanc() is None:
        pytest.fail("Orthanc is not installed: run `make setup` (Debian packages orthanc, orthanc-dicomweb)")
    try:
        return LocalOrthanc(storage=tmp, credentials=credentials).start()
    except OrthancUnavailable as err:
        pytest.fail(str(err))


@pytest.fixture(scope="session")
def orthanc(tmp_path_factory):
    """A real Orthanc with DICOMweb on a free loopback port, for the whole session."""
    pacs = _start(None, tmp_path_factory.mktemp("orthanc"))
    yield pacs
    pacs.stop()


@pytest.fixture(scope="session")
def orthanc_auth(tmp_path_factory):
    """The same, with HTTP basic authentication on (user ``radpath``)."""
    pacs = _start(Credentials("radpath", "s3cret-pw"), tmp_path_factory.mktemp("orthanc-auth"))
    yield pacs
    pacs.stop()


def dicomweb_settings(url: str, **env: str) -> DicomWebSettings:
    """DICOMweb settings as the environment would give them (quick retries for tests)."""
    from radpath.adapters.settings import Settings

    base = {"DICOMWEB_URL": url, "DICOMWEB_RETRIES": "2", "DICOMWEB_BACKOFF": "0.05", "DICOMWEB_TIMEOUT": "10"}
    base.update(env)
    return Settings.from_env(base).dicomweb


class _Recording(BaseHTTPRequestHandler):
    """Answers every request from ``answer(method, path)`` and records what it got."""

    def _handle(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        self.server.requests.append((self.command, self.path, dict(self.headers), body))
        status, content_type, payload = self.server.answer(self.command, self.path)
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    do_GET = do_POST = _handle

    def log_message(self, *args):
        pass


@pytest.fixture
def stub_server():
    """A loopback HTTP server (a stand-in for a PACS error or for Keycloak) that records requests."""
    servers = []

    def start(answer) -> tuple[str, list]:
        server = ThreadingHTTPServer(("127.0.0.1", 0), _Recording)
        server.answer, server.requests = answer, []
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_port}", server.requests

    yield start
    for server in servers:
        server.shutdown()
