"""SLIM, the slide viewer Kaapana hosts at ``/slim``, built from its source once per source.

SLIM is not on the npm registry: its release is a source tag. The build takes that source
(``RADPATH_SLIM_SOURCE``, a folder; else the tag's archive from SLIM's public repository),
installs its locked packages with pnpm 10 (pnpm 11, its ``packageManager``, does not run on
Node 20) and builds it for the path Kaapana serves it under (``PUBLIC_URL=/slim``). The
result lies in radpath's cache under the source's digest, so a second set-up reuses it and
a changed source builds anew.

Like Kaapana's image (``services/applications/slim-viewer/docker/Dockerfile``), the build
loads its settings at run time from ``/slim/config/local.js``, which the host serves: the
local viewer server writes one for its own DICOMweb (:func:`local_config`), Kaapana its own.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import urllib.request
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path

from radpath.adapters.cache import cache_dir
from radpath.apps.viewer.assets import ViewerUnavailable

SLIM_VERSION = "0.46.10"
SLIM_ARCHIVE = f"https://github.com/ImagingDataCommons/slim/archive/refs/tags/v{SLIM_VERSION}.tar.gz"
#: pnpm 10, pinned: SLIM's lockfile is v9, which pnpm 10 reads; pnpm 11 needs Node 22.
PNPM = "pnpm@10.34.9"
#: Where Kaapana serves SLIM (its Dockerfile's PUBLIC_URL, its local.js's ``path``).
SLIM_PATH = "/slim"
#: dicom-microscopy-viewer resolves its frame decoder worker as ``./static/js/`` against
#: ``window.config.path``; Kaapana's path has no trailing slash (``/slim``), so the worker
#: would be asked at ``/static/js/`` (404) and no frame would draw. The build names its own
#: library folder instead (``window.PUBLIC_LIB_URL``, read first), in its ``config/env.js``.
LIBRARY_PATH_FIX = f'window.PUBLIC_LIB_URL = "{SLIM_PATH}/static/js/";\n'
#: The build's record of itself, beside its files.
BUILD_RECORD = "radpath-slim-build.json"
#: Not part of the source: what a build or an editor leaves in a source folder.
_NOT_SOURCE = {"node_modules", "build", ".git", ".cache"}


@dataclass(frozen=True)
class SlimBuild:
    """A finished SLIM build: its files, and what it took."""

    www: Path  # the build's root: index.html, static/, config/
    version: str
    source_digest: str
    seconds: float  # install + build, on the machine that built it
    megabytes: float  # the built files

    @classmethod
    def read(cls, www: Path) -> SlimBuild | None:
        """The build in ``www``, from its record; None where there is none to read."""
        try:
            record = json.loads((www / BUILD_RECORD).read_text())
            return cls(www=www, **{f.name: record[f.name] for f in fields(cls) if f.name != "www"})
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def write(self) -> None:
        """Its record, beside its files."""
        (self.www / BUILD_RECORD).write_text(json.dumps({k: v for k, v in asdict(self).items() if k != "www"}))


def slim_source() -> Path:
    """SLIM's source: ``RADPATH_SLIM_SOURCE``, else the release's archive, fetched once."""
    given = os.environ.get("RADPATH_SLIM_SOURCE")
    if given:
        source = Path(given)
        if not (source / "package.json").is_file():
            raise ViewerUnavailable(f"RADPATH_SLIM_SOURCE={given} holds no SLIM source (no package.json)")
        return source
    target = cache_dir() / f"slim-source-{SLIM_VERSION}"
    if (target / "package.json").is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        archive = Path(tmp) / "slim.tar.gz"
        try:
            with urllib.request.urlopen(SLIM_ARCHIVE, timeout=120) as answer, archive.open("wb") as out:
                shutil.copyfileobj(answer, out)
        except OSError as err:
            raise ViewerUnavailable(f"cannot fetch SLIM's source {SLIM_ARCHIVE}: {err}") from err
        with tarfile.open(archive) as tar:
            tar.extractall(tmp, filter="data")
        (unpacked,) = (p for p in Path(tmp).iterdir() if p.is_dir())
        unpacked.rename(target)
    return target


def source_digest(source: Path) -> str:
    """SHA-256 over the source's files (names and contents) and how radpath builds them."""
    digest = hashlib.sha256(f"{PNPM} PUBLIC_URL={SLIM_PATH}\n{LIBRARY_PATH_FIX}".encode())
    for path in sorted(_source_files(source)):
        digest.update(f"{path.relative_to(source).as_posix()}\0".encode())
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def _source_files(source: Path):
    for folder, folders, files in os.walk(source):
        folders[:] = [f for f in folders if f not in _NOT_SOURCE]
        for name in files:
            yield Path(folder) / name


def built_slim() -> SlimBuild | None:
    """The build set-up made last (:func:`build_slim` records it), or None where SLIM has
    not been built on this machine."""
    try:
        www = Path(json.loads(_current().read_text())["www"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return SlimBuild.read(www)


def _current() -> Path:
    return cache_dir() / f"slim-{SLIM_VERSION}-current.json"


def _make_current(build: SlimBuild) -> SlimBuild:
    """``build`` becomes the one :func:`built_slim` finds."""
    _current().write_text(json.dumps({"www": str(build.www)}))
    return build


def _build_folder(digest: str) -> Path:
    return cache_dir() / f"slim-{SLIM_VERSION}-{digest[:16]}"


def build_slim(source: Path | None = None, log: Path | None = None) -> SlimBuild:
    """SLIM built from ``source`` (default :func:`slim_source`) for ``/slim``; a build of the
    same source is reused. The build's output goes to ``log`` (default: beside the build)."""
    source = slim_source() if source is None else source
    digest = source_digest(source)
    target = _build_folder(digest)
    done = SlimBuild.read(target)
    if done is not None:
        return _make_current(done)
    for tool in ("node", "npx"):
        if shutil.which(tool) is None:
            raise ViewerUnavailable(f"{tool} is not installed: SLIM is built with Node.js 20 and pnpm")
    target.parent.mkdir(parents=True, exist_ok=True)
    log = log or target.parent / f"slim-{SLIM_VERSION}-build.log"
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="slim-build-", dir=target.parent) as tmp:
        work = Path(tmp) / "slim"
        shutil.copytree(source, work, ignore=shutil.ignore_patterns(*_NOT_SOURCE))
        env = {**os.environ,
               # pnpm 10 would otherwise switch itself to SLIM's packageManager (pnpm 11)
               "npm_config_manage_package_manager_versions": "false",
               "PUBLIC_URL": SLIM_PATH, "REACT_APP_CONFIG": "local",
               # CI=true makes the build fail on lint warnings: SLIM's own are not radpath's to fix
               "CI": "false", "GENERATE_SOURCEMAP": "false",
               "REACT_APP_GIT_SHA": f"v{SLIM_VERSION}", "REACT_APP_DMV_GIT_SHA": "",
               "npm_config_cache": str(cache_dir() / "npm"), "npm_config_update_notifier": "false"}
        with log.open("w") as out:
            for step in (["npx", "-y", PNPM, "install", "--frozen-lockfile", "--ignore-scripts"],
                         ["npx", "-y", PNPM, "run", "build"]):
                out.write(f"$ {' '.join(step)}\n")
                out.flush()
                ran = subprocess.run(step, cwd=work, env=env, stdout=out, stderr=subprocess.STDOUT, timeout=1800)
                if ran.returncode != 0:
                    raise ViewerUnavailable(f"building SLIM failed at `{' '.join(step)}` (exit {ran.returncode}): "
                                            f"{_tail(log)}")
        built = work / "build"
        if not (built / "index.html").is_file():
            raise ViewerUnavailable(f"building SLIM left no index.html in {built}: see {log}")
        with (built / "config" / "env.js").open("a") as env_js:
            env_js.write(LIBRARY_PATH_FIX)
        size = sum(p.stat().st_size for p in built.rglob("*") if p.is_file())
        record = SlimBuild(www=built, version=SLIM_VERSION, source_digest=digest,
                           seconds=round(time.monotonic() - started, 1), megabytes=round(size / 1e6, 1))
        record.write()  # before the move: a build folder in the cache always has its record
        shutil.rmtree(target, ignore_errors=True)
        built.rename(target)
    return _make_current(replace(record, www=target))


def _tail(log: Path, lines: int = 15) -> str:
    try:
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return f"(no log at {log})"


def local_config(dicomweb_path: str) -> str:
    """SLIM's ``config/local.js`` for a host serving DICOMweb at ``dicomweb_path`` on the
    page's own origin: Kaapana's settings (``services/applications/slim-viewer/docker/local.js``:
    SLIM at ``/slim``, one server, images rendered in the browser), its server the local one."""
    return f"""// radpath's local viewer: SLIM as Kaapana configures it, reading this host's DICOMweb.
window.config = {{
  path: {json.dumps(SLIM_PATH)},
  servers: [{{ id: "local", url: window.location.origin + {json.dumps(dicomweb_path.rstrip('/'))}, write: false }}],
  renderer: {{ retrieveRendered: false }},
  disableWorklist: false,
  disableAnnotationTools: false,
  annotations: []
}};
"""


def main(argv: list[str] | None = None) -> int:
    """``python -m radpath.apps.viewer.slim build``: build (or find) SLIM; say what it took."""
    args = sys.argv[1:] if argv is None else argv
    if args != ["build"]:
        print("usage: python -m radpath.apps.viewer.slim build", file=sys.stderr)
        return 2
    try:
        build = build_slim()
    except ViewerUnavailable as err:
        print(f"SLIM not built: {err}\nradpath view shows slides in OHIF's microscopy mode instead.", file=sys.stderr)
        return 1
    print(f"SLIM {build.version} ready in {build.www} (built in {build.seconds:.0f} s, {build.megabytes:.0f} MB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
