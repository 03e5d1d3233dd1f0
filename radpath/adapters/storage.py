"""Where results go: the PACS over DICOMweb, Kaapana's CTP over DIMSE, or a folder.

One interface for the store and link stages (:class:`StoreTarget`): which of some
instances the target already holds, and send the others. :func:`store_new` does both,
so a re-run sends nothing twice: radpath's UIDs are derived from what each object was
made from, and whatever the target already holds is skipped.

Instances are sent in the order given, one kind at a time: what is referenced before what
refers to it (source and slide series, then the SEG; the link stage's KOS last), and a
refusal stops the rest, so nothing in the PACS refers to an instance that is missing.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import socket
import subprocess
import tempfile
import time
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from itertools import groupby
from pathlib import Path
from typing import Protocol

from radpath.adapters.dicomweb import TAG_SOP_UID, DicomWeb, DicomWebError, StoreError
from radpath.adapters.headers import read_header
from radpath.adapters.settings import STOW_ON_KAAPANA, Settings, SettingsError
from radpath.domain import vocabulary

log = logging.getLogger(__name__)


class StoreFailed(RuntimeError):
    """The target refused instances or could not be reached; the message names them."""


@dataclass(frozen=True)
class Instance:
    """One Part-10 file to store, with the UIDs that place it (StudyInstanceUID (0020,000D),
    SeriesInstanceUID (0020,000E), SOPInstanceUID (0008,0018))."""

    path: Path
    study_instance_uid: str
    series_instance_uid: str
    sop_instance_uid: str
    what: str  # for people: "slide", "SEG", "source", "KOS"

    @classmethod
    def read(cls, path: Path, what: str) -> Instance:
        ds = read_header(path)
        uids = [str(ds.get(name) or "") for name in ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID")]
        if not all(uids):
            raise StoreFailed(f"{Path(path).name} ({what}) lacks a Study, Series or SOP Instance UID: cannot store it")
        return cls(Path(path), *uids, what)


class StoreTarget(Protocol):
    #: Where instances go, for logs and the manifest (no credentials).
    description: str
    #: Whether :meth:`held` answers from the target itself (DIMSE peers may not).
    can_check: bool

    def held(self, instances: Sequence[Instance]) -> set[str]:
        """SOP Instance UIDs of ``instances`` the target already holds."""

    def settled(self, instances: Sequence[Instance]) -> set[str]:
        """:meth:`held`, once what was just sent can show: at once where a store answers
        only when it is done; a DIMSE peer that files asynchronously is given its time."""

    def send(self, instances: Sequence[Instance]) -> None:
        """Store ``instances`` in order; :class:`StoreFailed` names what was refused."""


@dataclass(frozen=True)
class StoreReport:
    sent: list[Instance]
    present: list[Instance]

    def counts(self) -> dict[str, dict[str, int]]:
        """Per kind of object: how many were sent and how many the target already held."""
        table: dict[str, dict[str, int]] = defaultdict(lambda: {"sent": 0, "present": 0})
        for key, instances in (("sent", self.sent), ("present", self.present)):
            for instance in instances:
                table[instance.what][key] += 1
        return dict(table)


def store_new(target: StoreTarget, instances: Sequence[Instance]) -> StoreReport:
    """Send the instances ``target`` does not hold yet; report both sets.

    One kind after the other, in the order given, stopping at the first refusal: a SEG
    is never sent when its source series could not be stored.
    """
    held = target.held(instances)
    new = [i for i in instances if i.sop_instance_uid not in held]
    for _, group in groupby(new, key=lambda i: i.what):
        try:
            target.send(list(group))
        except StoreFailed as err:
            raise StoreFailed(f"{err}{_how_far(target, instances)}") from None
    return StoreReport(new, [i for i in instances if i.sop_instance_uid in held])


def _how_far(target: StoreTarget, instances: Sequence[Instance]) -> str:
    """' (stored: source 43 of 60, SEG 0 of 1 …)': what the target holds after a failure,
    by kind, where it can say (a PACS that is down cannot)."""
    if not target.can_check:
        return ""
    try:
        held = target.held(instances)
    except StoreFailed:
        return ""
    kinds: dict[str, list[int]] = {}
    for instance in instances:
        counts = kinds.setdefault(instance.what, [0, 0])
        counts[0] += instance.sop_instance_uid in held
        counts[1] += 1
    return " (stored: " + ", ".join(f"{what} {n} of {total}" for what, (n, total) in kinds.items()) + ")"


def _listing(failures: list[str], shown: int = 5) -> str:
    """The first few failures in full, then how many more (a CT can fail 500 times over)."""
    more = len(failures) - shown
    return "; ".join(failures[:shown]) + (f"; and {more} more" if more > 0 else "")


def _by_series(instances: Iterable[Instance]) -> dict[tuple[str, str], list[Instance]]:
    groups: dict[tuple[str, str], list[Instance]] = defaultdict(list)
    for instance in instances:
        groups[(instance.study_instance_uid, instance.series_instance_uid)].append(instance)
    return groups


class DicomWebTarget:
    """STOW-RS, with one QIDO instance query per series to find what is already there."""

    can_check = True

    def __init__(self, pacs: DicomWeb):
        self.pacs = pacs
        self.description = f"DICOMweb {pacs.endpoint}"

    def held(self, instances: Sequence[Instance]) -> set[str]:
        found: set[str] = set()
        for (study, series), _ in _by_series(instances).items():
            try:
                rows = self.pacs.find_instances(study, series)
            except DicomWebError as err:
                raise StoreFailed(str(err)) from None
            found.update(row[TAG_SOP_UID]["Value"][0] for row in rows if TAG_SOP_UID in row)
        return found

    def settled(self, instances: Sequence[Instance]) -> set[str]:
        return self.held(instances)  # a store here answers only once it is done

    def send(self, instances: Sequence[Instance]) -> None:
        kinds = {i.sop_instance_uid: i.what for i in instances}
        try:
            self.pacs.store([i.path for i in instances])
        except StoreError as err:
            listing = _listing(
                [f"{kinds.get(f.sop_instance_uid, 'instance')} {f.sop_instance_uid}: {f.reason}" for f in err.failed]
            )
            raise StoreFailed(f"the PACS at {self.pacs.endpoint} refused {len(err.failed)} instance(s): "
                              f"{listing}") from None
        except DicomWebError as err:
            raise StoreFailed(str(err)) from None
        # A PACS may confirm what a filter then drops (Orthanc's ReceivedInstanceFilter does):
        # only what a query finds counts as stored.
        held = self.held(instances)
        lost = [i for i in instances if i.sop_instance_uid not in held]
        if lost:
            listing = _listing([f"{i.what} {i.sop_instance_uid}: confirmed by STOW-RS but not found by QIDO-RS "
                                "(refused after the response, e.g. by a filter)" for i in lost])
            raise StoreFailed(f"the PACS at {self.pacs.endpoint} did not keep {len(lost)} instance(s): {listing}")


class DimseTarget:
    """DIMSE C-STORE with dcmtk's ``dcmsend`` (as Kaapana's DcmSendOperator), to CTP in
    Kaapana. What is already there is asked of the DICOMweb endpoint when one is set
    (CTP itself answers no queries); otherwise everything is sent, which the PACS
    absorbs because the UIDs are the same."""

    def __init__(self, host: str, port: int, called_ae: str, calling_ae: str, query: DicomWeb | None = None,
                 settle_s: float = 600, poll_s: float = 2):
        self.host, self.port, self.called_ae, self.calling_ae, self.query = host, port, called_ae, calling_ae, query
        self.description = f"DIMSE {calling_ae} → {called_ae}@{host}:{port}"
        self.can_check = query is not None
        self.settle_s, self.poll_s = settle_s, poll_s

    def held(self, instances: Sequence[Instance]) -> set[str]:
        return DicomWebTarget(self.query).held(instances) if self.query is not None else set()

    def settled(self, instances: Sequence[Instance]) -> set[str]:
        """What the PACS shows of ``instances`` once they had time to arrive: Kaapana's CTP
        answers the C-STORE at once and files what it received later (its incoming pipeline
        sends it on to the PACS and maps it to the called AE's project), so a query right
        after the store may not see it yet; asked again until all show or ``settle_s`` passed."""
        deadline = time.monotonic() + self.settle_s
        while True:
            held = self.held(instances)
            if len(held) == len(instances) or time.monotonic() >= deadline:
                return held
            log.info("%d of %d instances not yet in the PACS through %s: asking again in %g s",
                     len(instances) - len(held), len(instances), self.called_ae, self.poll_s)
            time.sleep(self.poll_s)

    def send(self, instances: Sequence[Instance]) -> None:
        binary = shutil.which("dcmsend")
        if binary is None:
            raise StoreFailed("dcmtk's dcmsend is not installed (Debian: dcmtk; make setup)")
        try:
            socket.getaddrinfo(self.host, self.port)
        except OSError as err:
            raise StoreFailed(
                f"cannot reach the C-STORE peer {self.host}:{self.port}: its name does not resolve here ({err}); "
                "on Kaapana a pod reaches CTP only with the label network-access-ctp"
            ) from None
        with tempfile.TemporaryDirectory(prefix="radpath-dcmsend-") as scratch:
            report = Path(scratch) / "report.txt"
            command = [binary, "-aet", self.calling_ae, "-aec", self.called_ae, "--no-halt",
                       "--create-report-file", str(report), self.host, str(self.port),
                       *(str(i.path) for i in instances)]
            done = subprocess.run(command, capture_output=True, text=True)
            text = report.read_text(errors="replace") if report.exists() else ""
        refused = _dcmsend_refused(text, instances)
        if refused or done.returncode != 0:
            detail = _listing(refused) or (done.stderr.strip().splitlines() or [f"exit code {done.returncode}"])[-1]
            raise StoreFailed(f"C-STORE to {self.called_ae}@{self.host}:{self.port} failed: {detail}")


def _dcmsend_refused(report: str, instances: Sequence[Instance]) -> list[str]:
    """'<what> <SOP UID>: <why>' for every instance dcmsend's report does not show stored.

    The report has one block per file ("Filename : …", "DIMSE Status : 0x0000 (Success)");
    a file dcmsend could not read has no block at all, and dcmsend still exits 0.
    """
    statuses: dict[str, str] = {}
    for block in report.split("\n\n"):
        fields = dict(
            (key.strip(), value.strip()) for key, sep, value in (line.partition(":") for line in block.splitlines()) if sep
        )
        if "Filename" in fields:
            statuses[fields["Filename"]] = fields.get("DIMSE Status", "no status")
    refused = []
    for instance in instances:
        status = statuses.get(str(instance.path))
        if status is None:
            refused.append(f"{instance.what} {instance.sop_instance_uid}: not sent (dcmsend could not use the file)")
        elif not re.search(r"\((Success|Warning)", status):
            refused.append(f"{instance.what} {instance.sop_instance_uid}: {status}")
    return refused


class FolderTarget:
    """A file store: ``<root>/<study>/<series>/<SOP Instance UID>.dcm`` (the embedded
    default of ``radpath run``). A file appears only once it is complete."""

    can_check = True

    def __init__(self, root: Path):
        self.root = Path(root)
        self.description = f"folder {self.root}"

    def path_of(self, instance: Instance) -> Path:
        return self.root / instance.study_instance_uid / instance.series_instance_uid / f"{instance.sop_instance_uid}.dcm"

    def held(self, instances: Sequence[Instance]) -> set[str]:
        return {i.sop_instance_uid for i in instances if self.path_of(i).is_file()}

    def settled(self, instances: Sequence[Instance]) -> set[str]:
        return self.held(instances)  # a store here answers only once it is done

    def send(self, instances: Sequence[Instance]) -> None:
        for instance in instances:
            target = self.path_of(instance)
            target.parent.mkdir(parents=True, exist_ok=True)
            partial = target.with_name(f".{target.name}.partial")
            try:
                shutil.copyfile(instance.path, partial)
                os.replace(partial, target)
            except OSError as err:
                partial.unlink(missing_ok=True)  # frees what it took: the run can still record why
                cause = (err.strerror or str(err)).lower()
                raise StoreFailed(f"{cause}: cannot write {instance.what} {instance.sop_instance_uid} to "
                                  f"{self.root}") from None


def store_target(settings: Settings) -> StoreTarget:
    """The target STORE_TARGET names, configured from the settings (and the run conf's
    forms for Kaapana's AE titles)."""
    choice = settings.options.store_target
    if choice == vocabulary.StoreTarget.FOLDER:
        if settings.options.store_folder is None:
            raise SettingsError("STORE_FOLDER", "is required when STORE_TARGET=folder")
        return FolderTarget(settings.options.store_folder)
    if choice == vocabulary.StoreTarget.DICOMWEB and settings.on_kaapana:
        # the default, where an operator did not say dimse (a chosen dicomweb stops Settings.from_env)
        raise SettingsError("STORE_TARGET", STOW_ON_KAAPANA)
    query = DicomWeb(settings.dicomweb) if settings.dicomweb.url else None
    if choice == vocabulary.StoreTarget.DICOMWEB:
        if query is None:
            raise SettingsError("DICOMWEB_URL", "is required when STORE_TARGET=dicomweb")
        return DicomWebTarget(query)
    dimse = settings.dimse
    if not dimse.host:
        raise SettingsError("DIMSE_HOST", "is required when STORE_TARGET=dimse")
    project = (settings.conf.get("project_form") or {}).get("name")
    dataset = (settings.conf.get("data_form") or {}).get("dataset_name")
    called = dimse.called_ae or (kaapana_ae_title(project) if project else None)
    if not called:
        raise SettingsError("DIMSE_CALLED_AE", "is required when STORE_TARGET=dimse and the run names no project")
    # Kaapana's CTP files what arrives into the project of the called AE and the dataset of the
    # calling AE, each only when it carries the kp- prefix (its dcmsend container adds it too).
    calling = dimse.calling_ae or (kaapana_ae_title(dataset or "radpath") if project else dataset or "radpath")
    return DimseTarget(dimse.host, dimse.port, called, calling, query, settle_s=dimse.settle_s)


def kaapana_ae_title(name: str) -> str:
    """A project's or dataset's AE title as Kaapana's CTP reads it: ``kp-<name>``."""
    return name if name.startswith("kp-") else f"kp-{name}"
