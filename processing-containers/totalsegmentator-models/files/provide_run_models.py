"""The command of radpath's model image (its CMD), for its two uses:

- The model installer job of the workflow chart (Kaapana's model_installer_chart, in the
  services namespace, with TASK_IDS and MODEL_DIR): Kaapana's own installer runs, exactly
  as the base-model-installer image's CMD runs it (``provide_models.py -e``).
- radpath's provide-weights task, a pod of each pairing run before segment
  (``PROVIDE_FOR_RUN=true``): a project's pods mount their project's own models volume,
  which the installer job never fills (Kaapana's total-segmentator-v2 workflow provides its
  weights inside each run for the same reason). It unpacks the models a run at the form's
  speed may load (/models_by_speed.json, written by radpath's
  scripts/write_kaapana_models.py) that are not yet on the volume ($MODEL_DIR, the segment
  pod's TOTALSEG_WEIGHTS_PATH) from the archives this image was built with
  (include_model_weights=true puts them into the installer's download folder). It downloads
  nothing: a project pod has no route out of the cluster. Each model is unpacked into a
  hidden folder beside its place and renamed there whole, one pod at a time per volume (a
  lock file), so parallel runs of a project never see half a model. Exit 0 when every model
  of the speed is on the volume; 1 naming those that are not.
"""

import fcntl
import json
import os
import runpy
import shutil
import sys
import zipfile
from pathlib import Path

LOOKUP = Path("/model_lookup.json")
BY_SPEED = Path("/models_by_speed.json")
INSTALLER = Path("/kaapana/app/provide_models.py")
ARCHIVES = Path("/kaapana/app/models")  # the installer's download folder: the baked archives


def missing(models, lookup, model_dir):
    return [name for name in models if not (model_dir / name / lookup[name]["check_file"]).is_file()]


def unpack(name, model_dir):
    """One model's archive (its folder at the top, as TotalSegmentator's releases pack it) into
    ``model_dir``, whole or not at all."""
    scratch = model_dir / f".unpacking-{name}"
    shutil.rmtree(scratch, ignore_errors=True)
    with zipfile.ZipFile(ARCHIVES / f"{name}.zip") as archive:
        archive.extractall(scratch)
    shutil.rmtree(model_dir / name, ignore_errors=True)  # a model left half there before
    (scratch / name).rename(model_dir / name)
    shutil.rmtree(scratch)


def provide_for_run():
    model_dir = Path(os.environ.get("MODEL_DIR", "/models"))
    speed = (os.environ.get("TOTALSEG_SPEED") or "fast").lower()
    lookup = json.loads(LOOKUP.read_text())
    by_speed = json.loads(BY_SPEED.read_text())
    if speed not in by_speed:
        print(f"provide-weights: TOTALSEG_SPEED={speed!r} is not one of {sorted(by_speed)}", flush=True)
        return 2
    model_dir.mkdir(parents=True, exist_ok=True)
    with open(model_dir / ".provide-weights.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # a parallel run of the project waits here
        for name in missing(by_speed[speed], lookup, model_dir):
            if (ARCHIVES / f"{name}.zip").is_file():
                print(f"provide-weights: unpacking {name} into {model_dir}", flush=True)
                unpack(name, model_dir)
        still = missing(by_speed[speed], lookup, model_dir)
    if still:
        print(f"provide-weights: not on the project's volume {model_dir}: {', '.join(still)}. This image holds no "
              "archive of them (it was built without include_model_weights=true) and a project pod downloads "
              "nothing; rebuild the radpath-totalsegmentator-models image with include_model_weights=true.",
              flush=True)
        return 1
    print(f"provide-weights: the {speed} models are on the project's volume ({model_dir})", flush=True)
    return 0


if __name__ == "__main__":
    if os.environ.get("PROVIDE_FOR_RUN", "").lower() != "true":
        sys.argv = [str(INSTALLER), "-e"]
        runpy.run_path(str(INSTALLER), run_name="__main__")
        sys.exit(0)
    sys.exit(provide_for_run())
