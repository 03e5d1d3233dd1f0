"""What the local viewer needs from npm, fetched once into radpath's cache: OHIF's built
viewer (``@ohif/app`` ships ``dist/``) and ``playwright-core`` (no browser download:
Debian's Chromium is driven)."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

from radpath.adapters.cache import cache_dir

OHIF_VERSION = "3.13.2"
PLAYWRIGHT_VERSION = "1.65.1"
CHROMIUM = Path("/usr/bin/chromium")
APP_CONFIG = Path(__file__).with_name("app-config.js")


class ViewerUnavailable(RuntimeError):
    """npm, Node or Chromium is missing, or the download failed; the message says which."""




def _npm(args: list[str], cwd: Path) -> None:
    if shutil.which("npm") is None:
        raise ViewerUnavailable("npm is not installed (Debian: apt-get install npm)")
    done = subprocess.run(["npm", *args, "--silent", "--no-audit", "--no-fund"], cwd=cwd, capture_output=True,
                          text=True, timeout=600)
    if done.returncode != 0:
        raise ViewerUnavailable(f"npm {' '.join(args)} failed: {done.stderr.strip()[-800:]}")


def ohif_dist() -> Path:
    """OHIF's built viewer (``dist/``), fetched on first use, with radpath's app-config."""
    target = cache_dir() / f"ohif-app-{OHIF_VERSION}"
    if not (target / "index.html").is_file():
        target.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
            _npm(["pack", f"@ohif/app@{OHIF_VERSION}"], Path(tmp))
            (tarball,) = Path(tmp).glob("*.tgz")
            shutil.unpack_archive(tarball, tmp)
            shutil.rmtree(target, ignore_errors=True)
            (Path(tmp) / "package" / "dist").rename(target)
    shutil.copyfile(APP_CONFIG, target / "app-config.js")
    return target


def node_modules() -> Path:
    """A node_modules folder holding playwright-core."""
    folder = cache_dir() / f"node-playwright-{PLAYWRIGHT_VERSION}"
    if not (folder / "node_modules" / "playwright-core" / "package.json").is_file():
        folder.mkdir(parents=True, exist_ok=True)
        _npm(["install", f"playwright-core@{PLAYWRIGHT_VERSION}"], folder)
    if not CHROMIUM.exists():
        raise ViewerUnavailable(f"{CHROMIUM} is missing (Debian: apt-get install chromium)")
    return folder / "node_modules"
