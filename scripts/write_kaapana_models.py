#!/usr/bin/env python3
"""Writes the model list of radpath's Kaapana model installer from radpath's own weights
table (radpath.adapters.totalseg.weights.official_models), so the installer names exactly the
TotalSegmentator models radpath may run:

- processing-containers/totalsegmentator-models/files/model_lookup.json (the image's lookup);
- processing-containers/totalsegmentator-models/files/models_by_speed.json (which of them a
  run at each speed needs: what the provide-weights task puts onto a project's volume);
- the task_ids of helm/values.yaml's extension_params (what an admin picks at install).

Run it after a TotalSegmentator upgrade or a change of radpath's tasks and speeds;
tests/test_packaging.py fails while either file disagrees with the table.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from radpath.adapters.totalseg.weights import kaapana_model_lookup, kaapana_models_by_speed

REPO = Path(__file__).resolve().parents[1]
LOOKUP = REPO / "processing-containers" / "totalsegmentator-models" / "files" / "model_lookup.json"
BY_SPEED = LOOKUP.with_name("models_by_speed.json")
VALUES = REPO / "helm" / "values.yaml"
#: The generated block of values.yaml, between these two comment lines.
BEGIN, END = "    # models: written by scripts/write_kaapana_models.py", "    # end of models"


def values_block(folders: list[str]) -> str:
    listing = "".join(f"      - {folder}\n" for folder in folders)
    return f"{BEGIN}\n    value:\n{listing}    default:\n{listing}{END}"


def main() -> None:
    lookup = kaapana_model_lookup()
    LOOKUP.write_text(json.dumps(lookup, indent=2) + "\n")
    BY_SPEED.write_text(json.dumps(kaapana_models_by_speed(), indent=2) + "\n")
    text = VALUES.read_text()
    block = re.compile(rf"{re.escape(BEGIN)}.*?{re.escape(END)}", re.S)
    if not block.search(text):
        raise SystemExit(f"{VALUES}: no block between {BEGIN!r} and {END!r}")
    VALUES.write_text(block.sub(lambda _: values_block(list(lookup)), text))
    print(f"{len(lookup)} models: {LOOKUP.relative_to(REPO)} and {VALUES.relative_to(REPO)} written")


if __name__ == "__main__":
    main()
