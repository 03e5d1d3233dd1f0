"""A local Orthanc with DICOMweb on loopback: the test PACS, and a local PACS for one machine.

Orthanc does not start by itself here (no systemd); :class:`LocalOrthanc` writes its own
configuration (HTTP on a free loopback port, remote access off, DICOM port off unless
asked for, storage in a folder of its own, the DICOMweb plugin at ``/dicom-web/``), starts
the server, waits until it answers and stops it again.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import requests

ORTHANC_BINARIES = ("Orthanc", "/usr/sbin/Orthanc")
PLUGIN_DIR = Path("/usr/share/orthanc/plugins")


class OrthancUnavailable(RuntimeError):
    """Orthanc is not installed or did not start."""


def find_orthanc() -> str | None:
    for candidate in ORTHANC_BINARIES:
        found = shutil.which(candidate)
        if found:
            return found
    return None


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass(frozen=True)
class Credentials:
    username: str
    password: str


class LocalOrthanc:
    """Start with :meth:`start` (or ``with LocalOrthanc() as pacs``), stop with :meth:`stop`."""

    def __init__(
        self,
        storage: Path | None = None,
        credentials: Credentials | None = None,
        port: int | None = None,
        name: str = "radpath",
        dicom_port: int | None = None,
        lua_script: str | None = None,
        extra_config: dict | None = None,
    ):
        """``dicom_port`` turns on Orthanc's DIMSE server (AE title ``ORTHANC``, any caller);
        ``lua_script`` is loaded as Orthanc Lua (e.g. a ``ReceivedInstanceFilter`` that
        refuses instances, to see how a refusal surfaces); ``extra_config`` is merged into
        the configuration last (e.g. a storage quota)."""
        self._own_storage = storage is None
        self.storage = Path(storage) if storage else Path(tempfile.mkdtemp(prefix="radpath-orthanc-"))
        self.credentials = credentials
        self.port = port or free_port()
        self.name = name
        self.dicom_port = dicom_port
        self.lua_script = lua_script
        self.extra_config = extra_config or {}
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        """Orthanc's REST root."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def dicomweb_url(self) -> str:
        return f"{self.url}/dicom-web"

    @property
    def auth(self) -> tuple[str, str] | None:
        return (self.credentials.username, self.credentials.password) if self.credentials else None

    def config(self) -> dict:
        config = {
            "Name": self.name,
            "StorageDirectory": str(self.storage / "db"),
            "IndexDirectory": str(self.storage / "db"),
            "HttpPort": self.port,
            "RemoteAccessAllowed": False,
            "DicomServerEnabled": False,
            "AuthenticationEnabled": self.credentials is not None,
            "Plugins": [str(PLUGIN_DIR)],
            "DicomWeb": {"Enable": True, "Root": "/dicom-web/", "StudiesMetadata": "Full"},
            "StableAge": 1,
        }
        if self.credentials:
            config["RegisteredUsers"] = {self.credentials.username: self.credentials.password}
        if self.dicom_port:
            config.update({"DicomServerEnabled": True, "DicomPort": self.dicom_port, "DicomAet": "ORTHANC",
                           "DicomCheckCalledAet": False})
        if self.lua_script:
            config["LuaScripts"] = [str(self.storage / "filter.lua")]
        config.update(self.extra_config)
        return config

    def start(self, timeout_s: float = 20.0) -> LocalOrthanc:
        binary = find_orthanc()
        if binary is None:
            raise OrthancUnavailable("Orthanc is not installed (Debian: orthanc orthanc-dicomweb; make setup)")
        self.storage.mkdir(parents=True, exist_ok=True)
        if self.lua_script:
            (self.storage / "filter.lua").write_text(self.lua_script)
        config_path = self.storage / "orthanc.json"
        config_path.write_text(json.dumps(self.config(), indent=2))
        log_path = self.storage / "orthanc.log"
        with open(log_path, "wb") as log:
            self.process = subprocess.Popen(
                [binary, str(config_path)], stdout=log, stderr=subprocess.STDOUT, cwd=self.storage
            )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                tail = log_path.read_text(errors="replace")[-2000:]
                raise OrthancUnavailable(f"Orthanc exited with {self.process.returncode}:\n{tail}")
            try:
                # /dicom-web/studies answers only once the plugin is loaded.
                r = requests.get(f"{self.dicomweb_url}/studies", auth=self.auth, timeout=1)
                if r.status_code in (200, 204):
                    return self
            except requests.ConnectionError:
                pass
            time.sleep(0.1)
        self.stop()
        raise OrthancUnavailable(f"Orthanc did not answer on {self.url} within {timeout_s:g} s")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def close(self) -> None:
        """Stop and remove the storage folder if this object made it."""
        self.stop()
        if self._own_storage:
            shutil.rmtree(self.storage, ignore_errors=True)

    def __enter__(self) -> LocalOrthanc:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()
