"""The images the box's pods run, as their Dockerfiles build them: which Dockerfiles make an
image (its own, then each ``local-only`` base it names in FROM), which files it COPYs, its
command, and its Python environment. One place for all of it: the box's pod runner
(tests/kaapana_pods/task_api/runners/KubernetesRunner.py) reads it, and set-up
(scripts/setup.sh, ``make setup-test``) builds the environments with it.

Docker is not available here, so an image's Python environment is built the image's way
without it: a venv made with the Python of the image's Kaapana base (the ``python3.X`` its
Dockerfile installs: 3.12 in Kaapana 0.6.0's base-python-cpu, whose child base-python-gpu
is) and, in it, exactly the commands of the image's Dockerfiles that install Python
packages, in their order (:func:`python_installs`):

- ``pip-install-radpath [EXTRAS]``: radpath's own install script, run as the image runs it
  (``RADPATH_SOURCE`` is this checkout, where the image has its COPY of it);
- ``pip``/``pip3``/``python -m pip``/``python3 -m pip install ...``: as written, with paths
  the image COPYs mapped to the files beside its Dockerfile, and two things this machine
  cannot reach left out, each recorded: Kaapana's constraints file (``-c https://codebase.
  helmholtz.cloud/...``; the requirements it constrains pin their versions themselves) and
  PyTorch's CUDA 11.8 index (``--index-url``; the same versions come from PyPI, as CUDA 12
  builds); ``--no-cache-dir`` is kept;
- ``python3 -m build`` then ``pip install dist/<name>.tar.gz``: the built folder installed;
- every other RUN line (apt-get, downloads, scripts) installs no Python package: not run,
  and listed in the environment's record (the machine's own packages stand for apt's).

The Kaapana base's own installs (torch, its requirements.txt, kaapana_federated, kaapanapy)
make one venv that every image on that base shares; an image's further installs go into a
venv of their own that sees the base's through a ``.pth`` file, as an image's layer sees the
layer below it. Images whose further installs are the same share one venv. Each venv is
built once and kept until what it was built from changes (its commands and the files they
read); radpath's own source changing only reinstalls radpath itself (``--no-deps``).

Usage: ``python tests/kaapana_pods/kaapana_images.py build [IMAGE ...]`` builds the environments of the
box's images (all of :func:`box_images` without arguments) into ``.venv-images`` (or
``$RADPATH_IMAGE_VENVS``) and writes ``images.json`` there: per image its venv, Python
(``sys.executable``, ``sys.version``), and, where its build failed, the failing command's
output, which the pod runner prints as the pod's own log instead of running it.
"""

from __future__ import annotations

import functools
import glob
import hashlib
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
KAAPANA_SOURCE = Path(os.environ.get("RADPATH_KAAPANA_SOURCE", REPO.parent / "shared" / "kaapana-0.6.0"))
ENVIRONMENTS = Path(os.environ.get("RADPATH_IMAGE_VENVS", REPO / ".venv-images"))
RECORD = "images.json"
#: Kaapana's own images whose pods the box starts (beside radpath's): get-input (every
#: radpath-map run), minio-operator (its pages and research table into the project's bucket),
#: workflow-cleaner (every run's end), and the incoming pipeline's validator and thumbnail
#: pods (tests/kaapana_ctp.py).
KAAPANA_POD_IMAGES = ("get-input", "minio-operator", "workflow-cleaner", "dicom-validator", "thumbnail-generator")
#: What radpath's checkout holds of what the radpath images COPY and install (the rest of
#: the checkout is not in any image): a change here reinstalls radpath in the environments.
#: Where radpath's images have its source (pip-install-radpath's RADPATH_SOURCE default).
RADPATH_IN_IMAGE = "/opt/radpath"
RADPATH_INSTALLER = "/usr/local/bin/pip-install-radpath"
RADPATH_SOURCE = ("radpath", "operators", "anatomy", "setup.py", "setup.cfg", "pyproject.toml", "README.md")
#: What pip-install-radpath's dependencies are read from: a change here rebuilds the environment.
RADPATH_DEPENDENCIES = ("setup.py", "setup.cfg", "pyproject.toml", "constraints.txt",
                        "processing-containers/pip-install-radpath")


# --- the Dockerfiles ----------------------------------------------------------------------------------


@functools.cache
def dockerfiles_by_image(roots: tuple[Path, ...] = (REPO, KAAPANA_SOURCE)) -> dict[str, Path]:
    """LABEL IMAGE → its Dockerfile, in radpath's checkout and Kaapana's snapshot (radpath's first)."""
    found: dict[str, Path] = {}
    for root in roots:
        for path in sorted(root.rglob("Dockerfile*")):
            if any(part.startswith(".venv") or part == "node_modules" for part in path.parts):
                continue
            label = re.search(r'^LABEL IMAGE="([^"]+)"', path.read_text(errors="replace"), re.M)
            if label:
                found.setdefault(label[1], path)
    return found


def image_name(image: str) -> str:
    """``registry/radpath-segment:0.1`` → ``radpath-segment``."""
    return image.rsplit("/", 1)[-1].split(":", 1)[0]


def image_layers(image: str, roots: tuple[Path, ...] = (REPO, KAAPANA_SOURCE)) -> list[Path]:
    """The Dockerfiles an image is built from: its own, then each ``local-only`` base it
    names in its last FROM (radpath's or Kaapana's, found by LABEL IMAGE), nearest first."""
    by_label = dockerfiles_by_image(roots)
    layers, name = [], image_name(image)
    while name in by_label:
        path = by_label[name]
        layers.append(path)
        bases = re.findall(r"^FROM\s+(\S+)(?:\s+AS\s+\S+)?\s*$", path.read_text(errors="replace"), re.M | re.I)
        name = image_name(bases[-1]) if bases and bases[-1].startswith("local-only/") else None
    if not layers:
        raise RuntimeError(f"no Dockerfile builds {image} (LABEL IMAGE)")
    return layers


def copies(path: Path) -> dict[str, Path]:
    """What one Dockerfile COPYs: each file or folder's path in the image → the file beside
    the Dockerfile (a relative destination taken from the WORKDIR then, as Docker takes it).
    ``COPY --from=<stage>`` takes the named stage's files (``FROM local-only/<image> AS
    <stage>``); a stage that is no image built here has no files to give."""
    text = path.read_text(errors="replace")
    stages = {alias: image_name(base) for base, alias in re.findall(r"^FROM\s+(\S+)\s+AS\s+(\S+)\s*$", text, re.M | re.I)}
    files: dict[str, Path] = {}
    workdir = "/"
    for keyword, line in re.findall(r"^(WORKDIR|COPY)\s+(.+)$", text, re.M):
        if keyword == "WORKDIR":
            workdir = line.strip()
            continue
        words = shlex.split(line)
        stage = next((w.split("=", 1)[1] for w in words if w.startswith("--from=")), None)
        *sources, destination = [word for word in words if not word.startswith("--")]
        if not destination.startswith("/"):
            destination = f"{workdir.rstrip('/')}/{destination}"
        if stage is not None:
            if stage in stages and stages[stage] in dockerfiles_by_image():
                theirs = image_files(image_layers(stages[stage]))
                for source in (s.rstrip("/") for s in sources):
                    for inside, local in theirs.items():
                        if inside == source or inside.startswith(source + "/"):  # what the stage has there
                            files[destination.rstrip("/") + inside[len(source):]] = local
                        elif source.startswith(inside + "/") and local.is_dir():  # a part of a folder it has
                            files[destination.rstrip("/")] = local / source[len(inside) + 1:]
            continue
        for source in sources:
            matches = sorted(path.parent.glob(source)) if any(c in source for c in "*?[") else [path.parent / source]
            for local in matches:
                if local.is_dir():  # as Docker copies a folder: its contents into the destination
                    files[os.path.normpath(destination)] = local
                elif local.exists():  # a file, into the destination folder or as the destination
                    into = destination.endswith("/") or len(matches) > 1 or len(sources) > 1
                    files[os.path.normpath(destination).rstrip("/") + "/" + local.name if into
                          else os.path.normpath(destination)] = local
    return files


def image_files(layers: list[Path]) -> dict[str, Path]:
    """Where each file or folder the image COPYs lies in the image; a nearer layer wins."""
    files: dict[str, Path] = {}
    for path in reversed(layers):
        files.update(copies(path))
    return files


def image_cmd(layers: list[Path]) -> list[str]:
    """The image's CMD (its nearest layer's), as written."""
    for path in layers:
        found = re.search(r"^CMD (.+)$", path.read_text(errors="replace"), re.M)
        if found:
            return json.loads(found[1])
    raise RuntimeError(f"{layers[0]} and its bases have no CMD")


def local_path(inside: str, files: dict[str, Path]) -> Path | None:
    """The file beside a Dockerfile that the image has at ``inside`` (None: not a COPY'd file)."""
    for destination in sorted(files, key=len, reverse=True):
        if inside == destination or inside.startswith(destination.rstrip("/") + "/"):
            return files[destination] / inside[len(destination):].lstrip("/") if inside != destination \
                else files[destination]
    return None


# --- an image's Python installs -----------------------------------------------------------------------


@dataclass(frozen=True)
class Install:
    """One command that installs Python packages, as it runs in the image's venv here."""

    argv: tuple[str, ...]  # the program first: "pip" or "pip-install-radpath", run with the venv's bin first on PATH
    written: str  # the Dockerfile's command, for the record
    dockerfile: Path
    left_out: tuple[str, ...] = ()  # what of it cannot run here, and why
    reads: tuple[Path, ...] = ()  # local files it installs from (their content decides the venv)
    #: pip-install-radpath: what the image has at RADPATH_IN_IMAGE (path there, file here)
    copied: tuple[tuple[str, Path], ...] = ()

    @property
    def radpath(self) -> bool:
        return self.argv[0] == "pip-install-radpath"


@dataclass
class Plan:
    """How an image's environment is made: its Python, its Kaapana base's installs (a shared
    venv), its own further installs (a venv above it; none: the base's venv is the image's)."""

    image: str
    python: str  # "3.12"
    base: list[Install]
    own: list[Install]
    skipped: list[str] = field(default_factory=list)  # RUN lines that install no Python package


_PIP = re.compile(r"^(?:\S*/)?(?:pip3?|python3?\s+-m\s+pip)\s+install\b")
_UNREACHABLE = {"-c": "Kaapana's constraints server (not reachable here; the requirements pin their own versions)",
                "--constraint": "Kaapana's constraints server (not reachable here)",
                "--index-url": "PyTorch's CUDA 11.8 index (not reachable here; the same versions from PyPI)",
                "--extra-index-url": "an index not reachable here"}


def run_commands(path: Path) -> list[tuple[str, str]]:
    """(WORKDIR, command) of each simple command of each RUN line, continuation lines joined
    and ``&&`` chains split, in order."""
    text = re.sub(r"\\\n", " ", path.read_text(errors="replace"))
    workdir, commands = "/", []
    for keyword, rest in re.findall(r"^(WORKDIR|RUN)\s+(.+)$", text, re.M):
        if keyword == "WORKDIR":
            workdir = rest.strip()
        else:
            commands += [(workdir, command.strip()) for command in rest.split("&&") if command.strip()]
    return commands


def python_installs(path: Path, files: dict[str, Path]) -> tuple[list[Install], list[str]]:
    """The commands of one Dockerfile that install Python packages, as they run here (see the
    module's doc), and the RUN commands that install none."""
    installs, skipped, built = [], [], {}
    for workdir, command in run_commands(path):
        words = shlex.split(command)
        if words and words[0] == "pip-install-radpath":
            source = {inside: local for inside, local in files.items()
                      if inside.startswith(RADPATH_IN_IMAGE + "/") or inside == RADPATH_INSTALLER}
            installs.append(Install(tuple(words), command, path, reads=tuple(REPO / p for p in RADPATH_DEPENDENCIES),
                                    copied=tuple(sorted(source.items()))))
        elif re.fullmatch(r"python3?\s+-m\s+build\b.*", command):
            built[workdir] = local_path(workdir, files)
        elif _PIP.match(command):
            args = words[words.index("install") + 1:]
            argv, left_out, reads = ["pip", "install"], [], []
            while args:
                word = args.pop(0)
                if word in _UNREACHABLE and args:
                    left_out.append(f"{word} {args.pop(0)}: {_UNREACHABLE[word]}")
                elif word in ("-r", "--requirement") and args:
                    inside = args.pop(0)
                    local = local_path(inside if inside.startswith("/") else f"{workdir}/{inside}", files)
                    if local is None:
                        raise RuntimeError(f"{path}: {command}: {inside} is not a file the image COPYs")
                    argv += ["-r", str(local)]
                    reads.append(local)
                elif re.fullmatch(r"dist/[^/]+\.(tar\.gz|whl)", word) and built.get(workdir):
                    argv.append(str(built[workdir]))  # python -m build's output: the folder it built
                    reads.append(built[workdir])
                elif word.startswith("/") and local_path(word, files) is not None:
                    argv.append(str(local_path(word, files)))
                    reads.append(local_path(word, files))
                else:
                    argv.append(word)
            installs.append(Install(tuple(argv), command, path, tuple(left_out), tuple(reads)))
        else:
            skipped.append(f"{path.parent.name}: {command[:120]}")
    return installs, skipped


def python_version(layers: list[Path]) -> str | None:
    """The Python the image's base installs (``python3.12`` in its apt-get line), or None."""
    for path in reversed(layers):
        found = re.search(r"\bpython(3\.\d+)\b", " ".join(cmd for _, cmd in run_commands(path) if "apt-get" in cmd))
        if found:
            return found[1]
    return None


def plan(image: str, roots: tuple[Path, ...] = (REPO, KAAPANA_SOURCE)) -> Plan | None:
    """How ``image``'s environment is made (None: its base installs no Python); ``roots``:
    where its Dockerfiles are looked up, first found first."""
    layers = image_layers(image, roots)
    python = python_version(layers)
    if python is None:
        return None
    files = image_files(layers)
    result = Plan(image_name(image), python, [], [])
    for path in reversed(layers):
        installs, skipped = python_installs(path, files)
        # the bottom Dockerfile (Kaapana's base-python-cpu, FROM ubuntu) is the shared layer
        (result.base if path == layers[-1] else result.own).extend(installs)
        result.skipped += skipped
    return result


# --- building the environments --------------------------------------------------------------------


def interpreter(version: str) -> str:
    """A Python ``version`` of this machine (on PATH, or pyenv's), tried for real."""
    candidates = [shutil.which(f"python{version}") or "",
                  *sorted(glob.glob(os.path.expanduser(f"~/.pyenv/versions/{version}*/bin/python{version}")))]
    for candidate in candidates:
        check = f"import sys; assert sys.version_info[:2] == {tuple(map(int, version.split('.')))}"
        if candidate and subprocess.run([candidate, "-c", check], capture_output=True).returncode == 0:
            return candidate
    raise RuntimeError(f"no Python {version} on this machine: the images' environments need it")


def _digest(*parts) -> str:
    sha = hashlib.sha256()
    for part in parts:
        if isinstance(part, Path):
            paths = sorted(p for p in part.rglob("*") if p.is_file() and "__pycache__" not in p.parts) \
                if part.is_dir() else [part]
            for path in paths:
                sha.update(str(path.relative_to(part.parent)).encode() + path.read_bytes())
        else:
            sha.update(str(part).encode())
    return sha.hexdigest()[:16]


def _key(python: str, installs: list[Install], below: str | None) -> str:
    return _digest(python, below or "", *[(i.argv, i.left_out) for i in installs],
                   *[path for i in installs for path in i.reads])


def radpath_source_digest() -> str:
    return _digest(*[REPO / part for part in RADPATH_SOURCE])


def _site_packages(venv: Path) -> Path:
    (found,) = venv.glob("lib/python3.*/site-packages")
    return found


def _image_copy(entries, into: Path) -> Path:
    """A folder as the image has it: ``entries`` (path in the image, file here) copied under
    ``into``, without what builds leave beside sources."""
    ignore = shutil.ignore_patterns("__pycache__", "build", "*.egg-info")
    for inside, local in entries:
        target = into / inside.lstrip("/")
        if local.is_dir():
            shutil.copytree(local, target, ignore=ignore, dirs_exist_ok=True)
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(local, target)
    return into


def _run_install(install: Install, venv: Path, log) -> None:
    """Run one install in ``venv`` on copies of the local sources it names, as an image
    installs from its own COPY (pip builds a folder in place, and ../shared stays as it is)."""
    env = {**os.environ, "PATH": f"{venv / 'bin'}:/usr/local/bin:/usr/bin:/bin", "VIRTUAL_ENV": str(venv),
           "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    for name in ("PYTHONPATH", "PYTHONHOME"):
        env.pop(name, None)
    log.write(f"\n$ {install.written}\n" + "".join(f"  (left out: {why})\n" for why in install.left_out))
    log.flush()
    with tempfile.TemporaryDirectory(prefix="image-copy-") as scratch:
        image = _image_copy(install.copied, Path(scratch) / "image")
        if install.radpath:
            env["RADPATH_SOURCE"] = str(image / RADPATH_IN_IMAGE.lstrip("/"))
            argv = [str(image / RADPATH_INSTALLER.lstrip("/")), *install.argv[1:]]
        else:
            argv = [str(venv / "bin" / "pip")]
            for n, word in enumerate(install.argv[1:]):
                if install.copied and word.startswith(RADPATH_IN_IMAGE):
                    argv.append(str(image / word.lstrip("/")))
                elif word.startswith("/") and Path(word).is_dir():
                    argv.append(str(_image_copy([(f"/source-{n}", Path(word))], Path(scratch)) / f"source-{n}"))
                else:
                    argv.append(word)
        done = subprocess.run(argv, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=scratch)
    if done.returncode != 0:
        raise RuntimeError(f"{install.dockerfile.relative_to(install.dockerfile.parents[2])}: "
                           f"`{install.written}` failed (exit {done.returncode})")


def build_venv(python: str, installs: list[Install], below: Path | None, root: Path) -> Path:
    """The venv of ``installs`` above ``below``'s (None: the bottom one), built unless it was
    built already from the same; a failed build raises with the failing command, its output
    in the venv's ``build.log``."""
    key = _key(python, installs, below.name if below else None)
    venv = root / f"py{python}-{key}"
    done = venv / ".built"
    log_path = root / f"py{python}-{key}.log"
    if done.is_file():
        _refresh_radpath(venv, installs, log_path)
        return venv
    if venv.exists():
        shutil.rmtree(venv)
    started = time.time()
    with open(log_path, "w") as log:
        subprocess.run([interpreter(python), "-m", "venv", str(venv)], check=True, stdout=log, stderr=subprocess.STDOUT)
        if below is not None:  # the layer below, as a Docker image's layer sees it
            (_site_packages(venv) / "_image_layer_below.pth").write_text(f"{_site_packages(below)}\n")
        for install in installs:
            _run_install(install, venv, log)
        log.write(f"\nbuilt in {time.time() - started:.0f} s\n")
    done.write_text(radpath_source_digest() if any(i.radpath for i in installs) else "")
    return venv


def _refresh_radpath(venv: Path, installs: list[Install], log_path: Path) -> None:
    """radpath's source changed since the venv was built: reinstall radpath alone, as a
    rebuild from the changed COPY would, keeping every dependency."""
    if not any(i.radpath for i in installs):
        return
    stamp, digest = venv / ".built", radpath_source_digest()
    if stamp.read_text() == digest:
        return
    with open(log_path, "a") as log:
        radpath = next(i for i in installs if i.radpath)
        install = Install(("pip", "install", "--no-deps", "--force-reinstall", RADPATH_IN_IMAGE),
                          "radpath's changed source, reinstalled without its dependencies", radpath.dockerfile,
                          copied=radpath.copied)
        _run_install(install, venv, log)
    stamp.write_text(digest)


@functools.cache  # images sharing a venv share its interpreter
def python_facts(venv: Path) -> dict:
    out = subprocess.run([str(venv / "bin" / "python"), "-c",
                          "import json, sys; print(json.dumps({'executable': sys.executable, 'version': sys.version}))"],
                         capture_output=True, text=True, check=True, env={"PATH": "/usr/bin:/bin"})
    return json.loads(out.stdout)


def build(image: str, root: Path = ENVIRONMENTS, roots: tuple[Path, ...] = (REPO, KAAPANA_SOURCE)) -> dict:
    """Build ``image``'s environment (see the module's doc); its record for images.json."""
    the_plan = plan(image, roots)
    if the_plan is None:
        return {"venv": None, "why": "its base installs no Python"}
    record = {"python_version": the_plan.python, "skipped": the_plan.skipped,
              "installs": [{"written": i.written, "left_out": list(i.left_out)} for i in the_plan.base + the_plan.own]}
    root.mkdir(parents=True, exist_ok=True)
    started = time.time()
    try:
        venv = build_venv(the_plan.python, the_plan.base, None, root)
        if the_plan.own:
            venv = build_venv(the_plan.python, the_plan.own, venv, root)
    except RuntimeError as failed:
        logs = sorted(root.glob(f"py{the_plan.python}-*.log"), key=lambda p: p.stat().st_mtime)
        record.update(venv=None, error=str(failed), log=logs[-1].read_text(errors="replace")[-6000:] if logs else "")
        return record
    record.update(venv=str(venv), python=python_facts(venv), seconds=round(time.time() - started))
    return record


def box_images() -> list[str]:
    """radpath's pod images (processing-containers/: not its base, not its DAG image, whose
    installer job the box does not run) and Kaapana's whose pods the box starts."""
    own = [name for name, path in dockerfiles_by_image().items() if REPO / "processing-containers" in path.parents]
    return sorted(own) + list(KAAPANA_POD_IMAGES)


def read_record(root: Path = ENVIRONMENTS) -> dict:
    path = root / RECORD
    return json.loads(path.read_text()) if path.is_file() else {}


def build_all(images: list[str] | None = None, say=lambda line: None) -> dict:
    """Build the environments of ``images`` (all of :func:`box_images` by default), each
    built once and then only refreshed (:func:`build_venv`), and record them in images.json."""
    images = images or box_images()
    record = read_record()
    started = time.time()
    for image in images:
        record[image] = build(image)
        state = f"Python {record[image]['python']['version'].split()[0]}" if record[image].get("python") \
            else record[image].get("error") or record[image].get("why")
        say(f"  {image}: {state}")
        ENVIRONMENTS.mkdir(parents=True, exist_ok=True)
        (ENVIRONMENTS / RECORD).write_text(json.dumps(record, indent=1))
    failed = [image for image in images if record[image].get("error")]
    say(f"image environments: {len(images) - len(failed)} of {len(images)} built in {time.time() - started:.0f} s"
        + (f"; failed: {', '.join(failed)}" if failed else ""))
    return record


def main(argv: list[str]) -> int:
    if not argv or argv[0] != "build":
        print(__doc__)
        return 2
    build_all(argv[1:] or None, say=lambda line: print(line, flush=True))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
