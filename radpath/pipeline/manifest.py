"""The per-element manifest: the facts that travel between stages, and each stage's outcome.

One small JSON file per batch element (``<element>/radpath-manifest.json``): under
``facts`` each stage's decisions (organ, laterality, chosen series, UIDs written …), one
section per stage (:mod:`radpath.pipeline.sections`), under ``stages`` each stage's outcome.
This module is the only one that reads or writes the file, and only the runner
(:mod:`radpath.pipeline.batch`) calls it: stages get the sections they need and return theirs.

The file is replaced atomically (write to a temporary file, then rename), so a stage
killed half-way never leaves a manifest that the next stage cannot parse.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from enum import Enum
from pathlib import Path
from typing import Any

from radpath.domain.records import RecordError
from radpath.pipeline.sections import Section, section_class

MANIFEST_NAME = "radpath-manifest.json"
#: 2: every section a typed record (:mod:`radpath.pipeline.sections`), keyed by its stage's name.
SCHEMA_VERSION = 2


class Status(str, Enum):
    """How a stage (or a whole element) ended."""

    DONE = "done"
    SKIPPED = "skipped"
    FAILED = "failed"


@dataclass
class StageRecord:
    """One stage's outcome for one element."""

    status: Status
    reason: str | None = None  # why it was skipped, in words a person understands
    error: str | None = None  # what failed, when it failed
    started: str | None = None
    seconds: float | None = None
    carried: str | None = None  # the earlier run that did it, where a resumed run carried it over

    def to_json(self) -> dict[str, Any]:
        data = {"status": self.status.value}
        for key in ("reason", "error", "started", "seconds", "carried"):
            value = getattr(self, key)
            if value is not None:
                data[key] = value
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> StageRecord:
        return cls(
            status=Status(data["status"]),
            reason=data.get("reason"),
            error=data.get("error"),
            started=data.get("started"),
            seconds=data.get("seconds"),
            carried=data.get("carried"),
        )


class ManifestError(RuntimeError):
    """The manifest file exists but cannot be used."""


@dataclass
class Manifest:
    """Sections and stage outcomes of one batch element."""

    path: Path
    sections: dict[str, Section] = field(default_factory=dict)
    stages: dict[str, StageRecord] = field(default_factory=dict)

    @classmethod
    def load(cls, element_dir: Path) -> Manifest:
        """The element's manifest; an empty one if no stage has written it yet."""
        path = Path(element_dir) / MANIFEST_NAME
        if not path.exists():
            return cls(path=path)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            if data.get("schema") != SCHEMA_VERSION:
                # An element an earlier radpath began (untyped sections) is not carried on:
                # its sections would be read as guesses. Start it again.
                raise ManifestError(f"{path}: written by another version of radpath (manifest schema "
                                    f"{data.get('schema')!r}, this one reads {SCHEMA_VERSION}): run the element "
                                    "again from its input")
            stages = {name: StageRecord.from_json(rec) for name, rec in data.get("stages", {}).items()}
            return cls(path=path, sections=_sections(data.get("facts", {})), stages=stages)
        except (OSError, ValueError, KeyError, AttributeError, TypeError) as err:
            raise ManifestError(f"{path}: unreadable manifest ({err})") from None

    def save(self) -> None:
        data = {
            "schema": SCHEMA_VERSION,
            "status": self.status.value if self.status else None,
            "facts": self.facts,
            "stages": {name: rec.to_json() for name, rec in self.stages.items()},
        }
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".manifest-", suffix=".tmp")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                json.dump(data, handle, indent=2)  # stages stay in run order
                handle.write("\n")
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    @property
    def facts(self) -> dict[str, Any]:
        """The sections in their JSON form, by stage name."""
        return {name: section.to_json() for name, section in self.sections.items()}

    def put(self, section: Section) -> None:
        """``section`` as its stage's decisions (replacing an earlier run's)."""
        self.sections[section.stage] = section

    def record(self, stage: str, record: StageRecord) -> None:
        self.stages[stage] = record

    @property
    def status(self) -> Status | None:
        """The element's status so far: failed or skipped if any stage ended so, else done."""
        if not self.stages:
            return None
        statuses = {rec.status for rec in self.stages.values()}
        for terminal in (Status.FAILED, Status.SKIPPED):
            if terminal in statuses:
                return terminal
        return Status.DONE

    def ended_at(self) -> tuple[str, StageRecord] | None:
        """The stage at which the element stopped (failed or skipped), if it did."""
        for name, rec in self.stages.items():
            if rec.status in (Status.FAILED, Status.SKIPPED):
                return name, rec
        return None


def _sections(facts: Mapping[str, Any]) -> dict[str, Section]:
    sections = {}
    for name, data in facts.items():
        kind = section_class(name)
        if kind is None:
            raise ValueError(f"unknown section {name!r}")
        try:
            sections[name] = kind.from_json(data)
        except RecordError as err:
            raise ValueError(f"section {name!r}: {err}") from None
    return sections


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")
