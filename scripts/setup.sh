#!/usr/bin/env bash
# Sets up everything radpath needs on a fresh Debian machine, idempotently:
#   1. Debian packages: Orthanc + DICOMweb plugin (test PACS), dicom3tools (dciodvfy),
#      dcmtk, libturbojpeg0 (opentile's JPEG tile access for SVS/NDPI), time (GNU time:
#      per-process peak memory in the benchmarks), chromium (headless: the viewer pages
#      radpath writes, opened in the tests), and Node.js with npm (OHIF's built viewer and
#      playwright-core come from npm on first use of `radpath view` and the viewer tests);
#   2. a virtual environment in .venv (or $RADPATH_VENV) with radpath and all extras,
#      every pip install pinned through constraints.txt (torch 2.13.0 CPU build).
# A second run does nothing unless setup.py, setup.cfg or constraints.txt changed.
set -euo pipefail

cd "$(dirname "$0")/.."
VENV="${RADPATH_VENV:-.venv}"
PYTHON="${PYTHON:-python3}"
EXTRAS="${RADPATH_EXTRAS:-all,test}"
APT_PACKAGES=(orthanc orthanc-dicomweb dicom3tools dcmtk libturbojpeg0 time chromium nodejs)
# Debian's nodejs comes without npm (a package of its own); NodeSource's nodejs has it.
command -v npm >/dev/null 2>&1 || APT_PACKAGES+=(npm)

say() { printf '[setup] %s\n' "$*"; }

missing=()
for pkg in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if ((${#missing[@]})); then
  say "installing Debian packages: ${missing[*]}"
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
  say "Debian packages present"
fi

if [ ! -x "$VENV/bin/python" ]; then
  say "creating virtual environment $VENV ($("$PYTHON" --version))"
  "$PYTHON" -m venv "$VENV"
fi

stamp="$VENV/.radpath-setup"
wanted="$(cat setup.py setup.cfg constraints.txt | sha256sum | cut -d' ' -f1) $EXTRAS"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$wanted" ]; then
  say "Python packages up to date ($VENV)"
else
  say "installing Python packages into $VENV (about 90 s on a fresh machine)"
  export PIP_DISABLE_PIP_VERSION_CHECK=1
  # torch first, from its pin, so nothing later can choose a CUDA build.
  "$VENV/bin/pip" install -q -c constraints.txt "torch==2.13.0" 2>&1 | grep -v "^WARNING: Location" || true
  "$VENV/bin/pip" install -q -c constraints.txt -e ".[$EXTRAS]" 2>&1 | grep -v "^WARNING: Location" || true
  "$VENV/bin/python" -c "import radpath, torch; assert torch.__version__.startswith('2.13.0'), torch.__version__"
  echo "$wanted" > "$stamp"
fi
say "ready: $VENV/bin/radpath"
