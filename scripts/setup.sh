#!/usr/bin/env bash
# Sets up everything radpath needs on a fresh Debian machine, idempotently:
#   1. Debian packages: Orthanc + DICOMweb plugin (test PACS), dicom3tools (dciodvfy),
#      dcmtk, libturbojpeg0 (opentile's JPEG tile access for SVS/NDPI), time (GNU time:
#      per-process peak memory in the benchmarks), chromium (headless: the viewer pages
#      radpath writes, opened in the tests), and Node.js with npm (OHIF's built viewer and
#      playwright-core come from npm on first use of `radpath view` and the viewer tests;
#      SLIM, the slide viewer, is built from its source, in the background);
#   2. a virtual environment in .venv (or $RADPATH_VENV) with radpath and all extras,
#      every pip install pinned through constraints.txt (torch 2.13.0 CPU build);
#   3. with RADPATH_KAAPANA_BOX=1 (make test), for the tests against Kaapana's own plugin
#      (../shared/kaapana-0.6.0), a second one in
#      .venv-kaapana (or $RADPATH_KAAPANA_VENV) on Python 3.12, which Kaapana's code needs:
#      Airflow 2.11 with the plugin's dependencies (extra kaapana-box), and Debian's
#      postgresql for its Airflow database. Skipped, with a message, where no Python 3.12
#      is found ($PYTHON312, python3.12, pyenv's). Beside it, .venv-dwf (or $RADPATH_DWF_VENV)
#      with Kaapana's dicom-web-filter's own pinned requirements (tests/kaapana_dwf.py), and
#      .venv-images (or $RADPATH_IMAGE_VENVS): each image's Python environment, built by its
#      Dockerfiles' install commands on its base's Python (tests/kaapana_pods/kaapana_images.py),
#      in which the box runs the image's pods.
# A second run does nothing unless setup.py, setup.cfg or constraints.txt changed.
set -euo pipefail

cd "$(dirname "$0")/.."
VENV="${RADPATH_VENV:-.venv}"
PYTHON="${PYTHON:-python3}"
EXTRAS="${RADPATH_EXTRAS:-all,test}"
APT_PACKAGES=(orthanc orthanc-dicomweb dicom3tools dcmtk libturbojpeg0 time chromium nodejs)
# Debian's nodejs comes without npm (a package of its own); NodeSource's nodejs has it.
command -v npm >/dev/null 2>&1 || APT_PACKAGES+=(npm)
# The Kaapana box's Airflow database (PostgreSQL, as on Kaapana; started by the tests)
[ "${RADPATH_KAAPANA_BOX:-0}" != 1 ] || APT_PACKAGES+=(postgresql)

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

export PIP_DISABLE_PIP_VERSION_CHECK=1
pinned_pip() { "$1/bin/pip" install -q -c constraints.txt "${@:2}" 2>&1 | grep -v "^WARNING: Location" || true; }
# up_to_date VENV EXTRAS: true when VENV was last installed from these files with EXTRAS
up_to_date() { [ -f "$1/.radpath-setup" ] && [ "$(cat "$1/.radpath-setup")" = "$(setup_hash) $2" ]; }
setup_hash() { cat setup.py setup.cfg constraints.txt | sha256sum | cut -d' ' -f1; }
mark_installed() { echo "$(setup_hash) $2" > "$1/.radpath-setup"; }

if up_to_date "$VENV" "$EXTRAS"; then
  say "Python packages up to date ($VENV)"
else
  say "installing Python packages into $VENV (about 90 s on a fresh machine)"
  # torch first, from its pin, so nothing later can choose a CUDA build.
  pinned_pip "$VENV" "torch==2.13.0"
  # pyradiomics (extra quantify): an sdist whose build needs numpy without declaring it, so
  # it is built without pip's build isolation, before the extras would try it with.
  pinned_pip "$VENV" numpy setuptools wheel versioneer
  pinned_pip "$VENV" --no-build-isolation pyradiomics
  pinned_pip "$VENV" -e ".[$EXTRAS]"
  "$VENV/bin/python" -c "import radpath, torch; assert torch.__version__.startswith('2.13.0'), torch.__version__"
  mark_installed "$VENV" "$EXTRAS"
fi

# SLIM, the slide viewer Kaapana hosts (radpath view and the tests open slides in it): built
# from its source tag once per source (radpath/apps/viewer/slim.py), in the background while
# the rest installs. Its source: $RADPATH_SLIM_SOURCE, else ../shared's copy of the tag where
# there is one (it stands in for the download), else the tag's archive from GitHub.
SLIM_VERSION="$("$VENV/bin/python" -c 'from radpath.apps.viewer.slim import SLIM_VERSION; print(SLIM_VERSION)')"
if [ -z "${RADPATH_SLIM_SOURCE:-}" ] && [ -f "../shared/slim-$SLIM_VERSION/package.json" ]; then
  export RADPATH_SLIM_SOURCE="../shared/slim-$SLIM_VERSION"
fi
SLIM_LOG="$(mktemp -t radpath-slim-XXXXXX.log)"
say "building SLIM $SLIM_VERSION in the background (about 2.5 min and 25 MB the first time; log: $SLIM_LOG)"
"$VENV/bin/python" -m radpath.apps.viewer.slim build > "$SLIM_LOG" 2>&1 &
SLIM_PID=$!
slim_ready() {
  if wait "$SLIM_PID"; then
    say "$(tail -1 "$SLIM_LOG")"
  else
    say "SLIM could not be built (radpath view opens slides in OHIF's microscopy mode instead):"
    sed 's/^/[setup]   /' "$SLIM_LOG" | tail -20
  fi
}

KAAPANA_VENV="${RADPATH_KAAPANA_VENV:-.venv-kaapana}"
if [ "${RADPATH_KAAPANA_BOX:-0}" != 1 ]; then
  slim_ready
  say "ready: $VENV/bin/radpath"
  exit 0
fi
is_python312() { [ -n "$1" ] && "$1" -c 'import sys; assert sys.version_info[:2] == (3, 12)' 2>/dev/null; }
if ! is_python312 "${PYTHON312:-}"; then
  PYTHON312=""
  # pyenv's shim for python3.12 exists but fails unless 3.12 is selected: try each for real
  for candidate in $(command -v python3.12) "${PYENV_ROOT:-$HOME/.pyenv}"/versions/3.12*/bin/python3.12; do
    if is_python312 "$candidate"; then PYTHON312="$candidate"; fi
  done
fi
if [ -z "$PYTHON312" ]; then
  say "no Python 3.12 found: the tests against Kaapana's own plugin will be skipped (set PYTHON312)"
else
  [ -x "$KAAPANA_VENV/bin/python" ] || "$PYTHON312" -m venv "$KAAPANA_VENV"
  if up_to_date "$KAAPANA_VENV" "airflow,kaapana-box"; then
    say "Kaapana test environment up to date ($KAAPANA_VENV)"
  else
    say "installing the Kaapana test environment into $KAAPANA_VENV (Python 3.12, about 2 minutes)"
    pinned_pip "$KAAPANA_VENV" -e ".[airflow,kaapana-box]"
    "$KAAPANA_VENV/bin/python" -c "import airflow, kubernetes, flask_admin, opensearchpy, minio, pydantic_settings, psycopg2"
    mark_installed "$KAAPANA_VENV" "airflow,kaapana-box"
  fi
  # Kaapana's Airflow image has pydicom 2.3 (its dicom_parser pins it), which the incoming
  # pipeline's operators call as such (pydicom.read_file): the box's scheduler puts this
  # folder first on its path (tests/kaapana_ctp.py)
  [ -d "$KAAPANA_VENV/airflow-image/pydicom" ] || \
    "$KAAPANA_VENV/bin/pip" install -q --no-deps --target "$KAAPANA_VENV/airflow-image" pydicom==2.3.1 2>&1 \
      | grep -v "^WARNING: Location" || true
fi
# Kaapana's real dicom-web-filter (tests/kaapana_dwf.py runs it from the snapshot): a venv of
# its own in .venv-dwf (or $RADPATH_DWF_VENV) on the same Python 3.12, with exactly the
# service's pinned requirements.txt (not radpath's constraints: the service pins its own),
# plus what its image takes from its base image (base-python-cpu's pins): cryptography,
# without which PyJWT cannot check RS256 tokens, and requests, which a migration imports.
DWF_VENV="${RADPATH_DWF_VENV:-.venv-dwf}"
DWF_REQUIREMENTS="../shared/kaapana-0.6.0/services/data-separation/dicom-web-filter/docker/files/requirements.txt"
DWF_BASE_REQUIREMENTS="../shared/kaapana-0.6.0/data-processing/base-images/base-python-cpu/files/requirements.txt"
if [ -z "$PYTHON312" ]; then
  say "no Python 3.12 found: the tests against Kaapana's dicom-web-filter will be skipped"
elif [ ! -f "$DWF_REQUIREMENTS" ]; then
  say "$DWF_REQUIREMENTS not found (no ../shared): the tests against Kaapana's dicom-web-filter will be skipped"
else
  dwf_stamp="$(cat "$DWF_REQUIREMENTS" "$DWF_BASE_REQUIREMENTS" | sha256sum | cut -d' ' -f1) dicom-web-filter"
  if [ -f "$DWF_VENV/.radpath-setup" ] && [ "$(cat "$DWF_VENV/.radpath-setup")" = "$dwf_stamp" ]; then
    say "dicom-web-filter environment up to date ($DWF_VENV)"
  else
    say "installing dicom-web-filter's requirements into $DWF_VENV (Python 3.12, about 15 s)"
    [ -x "$DWF_VENV/bin/python" ] || "$PYTHON312" -m venv "$DWF_VENV"
    # shellcheck disable=SC2046  # one argument per pin
    "$DWF_VENV/bin/pip" install -q -r "$DWF_REQUIREMENTS" $(grep -E '^(cryptography|requests)==' "$DWF_BASE_REQUIREMENTS") \
      2>&1 | grep -v "^WARNING: Location" || true
    "$DWF_VENV/bin/python" -c "import fastapi, asyncpg, sqlalchemy, psycopg2, uvicorn, httpx, alembic, jwt, cryptography, requests"
    echo "$dwf_stamp" > "$DWF_VENV/.radpath-setup"
  fi
fi
# The images' own environments: the box runs each pod in its image's (the development .venv
# is on no pod's path). Built once; a venv is rebuilt when what it was built from changes.
if [ -z "$PYTHON312" ]; then
  say "no Python 3.12 found: the images' environments (Kaapana's bases' Python) are not built"
elif [ ! -d ../shared/kaapana-0.6.0 ]; then
  say "../shared/kaapana-0.6.0 not found: the images' environments (Kaapana's bases) are not built"
else
  say "building the images' Python environments into ${RADPATH_IMAGE_VENVS:-.venv-images} (about 5 min on a fresh machine)"
  start=$(date +%s)
  "$VENV/bin/python" tests/kaapana_pods/kaapana_images.py build
  say "images' environments ready in $(( $(date +%s) - start )) s"
fi
slim_ready
say "ready: $VENV/bin/radpath"
