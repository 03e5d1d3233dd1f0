"""The PACS over DICOMweb: one factory for a session, and the few queries the pipeline needs.

Everything goes through ``dicomweb-client`` (no hand-built multipart). The session has
one retry policy: bounded retries with exponential backoff on connection errors and HTTP
5xx, never on 4xx (a wrong password must not turn into a retry storm). Every failure
surfaces as :class:`DicomWebError` naming the endpoint and, where there was one, the
HTTP status. Credentials never appear in messages or logs.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pydicom
import requests
from dicomweb_client.api import DICOMwebClient
from pydicom.dataset import Dataset
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from radpath.adapters.settings import DicomWebSettings, SettingsError

log = logging.getLogger(__name__)

# DICOM JSON tags (PS3.18 F.2) of what the pipeline reads from QIDO results.
TAG_STUDY_UID = "0020000D"
TAG_SERIES_UID = "0020000E"
TAG_SOP_UID = "00080018"
TAG_MODALITY = "00080060"
TAG_FAILED_SOP_SEQUENCE = "00081198"
TAG_REFERENCED_SOP_UID = "00081155"
TAG_FAILURE_REASON = "00081197"
TAG_PATIENT_ID = "00100020"
#: Study-level attributes (StudyInstanceUID, PatientID, StudyDate, AccessionNumber) copied
#: from a study's row into its series' rows where the PACS left them out.
STUDY_FIELDS = (TAG_STUDY_UID, TAG_PATIENT_ID, "00080020", "00080050")

#: STOW-RS requests are split so that one request stays below this many bytes.
STOW_CHUNK_BYTES = 64 * 1024 * 1024

# PS3.4 C.4.2.1.4 / PS3.18 failure reasons worth saying in words.
_FAILURE_REASONS = {
    0x0110: "processing failure",
    0x0112: "no such object instance",
    0x0119: "class-instance conflict",
    0x0122: "SOP class not supported",
    0x0124: "refused: not authorized",
    0xA700: "out of resources",
    0xA900: "data set does not match SOP class",
    0xC000: "cannot understand",
}


class DicomWebError(RuntimeError):
    """A DICOMweb request failed; the message names the endpoint and the HTTP status."""

    def __init__(self, message: str, status: int | None = None):
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class FailedInstance:
    sop_instance_uid: str
    reason: str


class StoreError(DicomWebError):
    """The PACS refused some instances of a STOW-RS request."""

    def __init__(self, endpoint: str, failed: Sequence[FailedInstance], status: int | None):
        listing = "; ".join(f"{f.sop_instance_uid}: {f.reason}" for f in failed)
        super().__init__(f"STOW-RS to {endpoint} refused {len(failed)} instance(s): {listing}", status)
        self.failed = list(failed)


def first_value(item: dict[str, Any], tag: str) -> Any:
    """The first value of ``tag`` in a DICOM JSON object (QIDO-RS row), or None."""
    values = item.get(tag, {}).get("Value") or [None]
    return values[0]


def redact_url(url: str) -> str:
    """``url`` without user:password, for messages and logs."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, parts.query, parts.fragment))


def _session(settings: DicomWebSettings) -> requests.Session:
    session = requests.Session()
    retry = Retry(
        total=settings.retries,
        connect=settings.retries,
        read=settings.retries,
        status=settings.retries,
        other=0,
        backoff_factor=settings.backoff_s,
        status_forcelist=tuple(range(500, 600)),
        allowed_methods=None,  # STOW is safe to repeat: the PACS keys instances by SOP UID
        raise_on_status=False,
        respect_retry_after_header=False,
    )
    adapter = HTTPAdapter(max_retries=retry)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    session.verify = settings.verify_tls
    if settings.auth_mode == "bearer":
        session.headers["Authorization"] = f"Bearer {settings.token}"
    elif settings.auth_mode == "basic":
        session.auth = (settings.username, settings.password)
    elif settings.auth_mode == "keycloak":
        token = keycloak_token(settings)
        session.headers["Authorization"] = f"Bearer {token}"
        # Kaapana's dicom-web-filter reads the user's token from this header too (kaapanapy's
        # HelperDcmWeb sends both).
        session.headers["x-forwarded-access-token"] = token
    # requests' default (None) waits forever on a stalled server.
    _send = session.send

    def send_with_timeout(request, **kwargs):
        kwargs["timeout"] = kwargs.get("timeout") or settings.timeout_s
        return _send(request, **kwargs)

    session.send = send_with_timeout  # type: ignore[method-assign]
    return session


def keycloak_token(settings: DicomWebSettings) -> str:
    """Exchange Kaapana's project user for a bearer token (password grant), as Kaapana does."""
    assert settings.keycloak_url is not None
    realm = settings.keycloak_client_id
    url = f"{settings.keycloak_url}/auth/realms/{realm}/protocol/openid-connect/token"
    data = {
        "grant_type": "password",
        "client_id": settings.keycloak_client_id,
        "username": settings.project_user,
        "password": settings.project_password,
    }
    if settings.keycloak_client_secret:
        data["client_secret"] = settings.keycloak_client_secret
    try:
        response = requests.post(url, data=data, timeout=settings.timeout_s, verify=settings.verify_tls)
    except requests.RequestException as err:
        raise DicomWebError(f"Keycloak token request to {url} failed: {type(err).__name__}") from None
    if response.status_code != 200:
        raise DicomWebError(
            f"Keycloak at {url} refused the project user: HTTP {response.status_code}", response.status_code
        )
    try:
        return response.json()["access_token"]
    except (ValueError, KeyError):
        raise DicomWebError(f"Keycloak at {url} answered without an access_token") from None


class DicomWeb:
    """A DICOMweb endpoint with the queries radpath needs.

    Build it with :meth:`from_settings`; every method raises :class:`DicomWebError`
    with the endpoint named when the PACS cannot be reached or refuses the request.
    """

    def __init__(self, settings: DicomWebSettings):
        if settings.url is None:
            raise SettingsError("DICOMWEB_URL", "is required to talk to the PACS but not set")
        self.settings = settings
        self.endpoint = redact_url(settings.url)
        self.client = DICOMwebClient(url=settings.url, session=_session(settings))
        # One retry policy (the session's), not two stacked ones.
        self.client.set_http_retry_params(retry=False)

    @classmethod
    def from_settings(cls, settings: DicomWebSettings) -> DicomWeb:
        return cls(settings)

    # -- error translation -------------------------------------------------------------

    def _call(self, what: str, function, *args, **kwargs):
        try:
            return function(*args, **kwargs)
        except requests.HTTPError as err:
            status = err.response.status_code if err.response is not None else None
            hint = {
                401: " (authentication required or wrong credentials)",
                403: " (not allowed for these credentials)",
            }.get(status or 0, "")
            raise DicomWebError(f"{what} at {self.endpoint} failed: HTTP {status}{hint}", status) from None
        except requests.exceptions.RetryError as err:
            raise DicomWebError(
                f"{what} at {self.endpoint} failed after {self.settings.retries} retries: {_root_cause(err)}"
            ) from None
        except requests.ConnectionError as err:
            raise DicomWebError(
                f"{what} at {self.endpoint}: cannot connect after {self.settings.retries} retries "
                f"({_root_cause(err)})"
            ) from None
        except requests.Timeout:
            raise DicomWebError(
                f"{what} at {self.endpoint}: no answer within {self.settings.timeout_s:g} s"
            ) from None
        except ValueError as err:  # a 200 whose body is no DICOMweb (an HTML login page, a proxy's notice)
            raise DicomWebError(
                f"{what} at {self.endpoint}: the answer is not DICOMweb ({type(err).__name__}: {str(err)[:120]}); "
                "is the URL the DICOMweb root, reached without a login page or proxy in between?"
            ) from None

    # -- QIDO-RS ---------------------------------------------------------------------

    # Every search goes through the three QIDO-RS resources Kaapana's dicom-web-filter
    # serves (its QIDO_RS/routes.py): /studies, /studies/{study}/series and
    # /studies/{study}/series/{series}/instances. Its GET /series (CUSTOM_RS/routes.py)
    # answers 400 without a StudyInstanceUID, so a search across studies asks for the
    # studies first and then each study's series. An empty answer may be 204 without a body
    # (the filter's and dcm4chee's way of saying "none"): read as no rows.

    def find_studies(self, patient_id: str | None = None, **filters: str) -> list[dict[str, Any]]:
        """Studies (DICOM JSON) matching PatientID and any other QIDO attribute filters."""
        search = dict(filters)
        if patient_id is not None:
            search["PatientID"] = patient_id
        return self._call(
            "QIDO-RS study search",
            self.client.search_for_studies,
            search_filters=search,
            fields=["ModalitiesInStudy", "StudyDescription", "AccessionNumber", "StudyDate", "PatientID"],
            get_remaining=True,
        )

    def find_series(
        self,
        patient_id: str | None = None,
        study_instance_uid: str | None = None,
        modality: str | None = None,
        **filters: str,
    ) -> list[dict[str, Any]]:
        """Series (DICOM JSON) of a study, or of a patient, or of the whole archive,
        optionally of one modality; ``filters`` are series-level attributes.

        Within a study: ``/studies/{study}/series``. Without one, study by study: the
        patient's studies (:meth:`find_patient_series`), or for a SeriesInstanceUID the
        studies that hold it (:meth:`find_series_by_uid`), or every study
        (:meth:`find_all_series`). Never ``/series`` across studies, which Kaapana's
        dicom-web-filter refuses."""
        if study_instance_uid is not None:
            rows = self._series_in_study(study_instance_uid, modality, filters)
            if patient_id is not None:
                rows = [row for row in rows if first_value(row, TAG_PATIENT_ID) in (None, patient_id)]
            return rows
        if patient_id is not None:
            return self.find_patient_series(patient_id, modality, **filters)
        if "SeriesInstanceUID" in filters:
            return self.find_series_by_uid(str(filters.pop("SeriesInstanceUID")), modality, **filters)
        return self.find_all_series(modality, **filters)

    def find_patient_series(self, patient_id: str, modality: str | None = None, **filters: str) -> list[dict[str, Any]]:
        """The patient's series, study by study: ``/studies?PatientID=``, then each
        study's ``/studies/{study}/series?Modality=``."""
        return self._series_of_studies(self.find_studies(patient_id=patient_id), modality, filters)

    def find_all_series(self, modality: str | None = None, **filters: str) -> list[dict[str, Any]]:
        """Every series the caller may see (of one modality), study by study. The study
        search names no modality: Orthanc 1.10 ignores ``offset`` in a ModalitiesInStudy
        search, so paging through its answer would never end."""
        return self._series_of_studies(self.find_studies(), modality, filters)

    def find_series_by_uid(self, series_instance_uid: str, modality: str | None = None,
                           **filters: str) -> list[dict[str, Any]]:
        """The series with this UID (one row, or none) of this modality and ``filters``,
        found without knowing its study (:meth:`locate_series`)."""
        row = self.locate_series([series_instance_uid]).get(series_instance_uid)
        if row is None or (modality is not None and first_value(row, TAG_MODALITY) != modality):
            return []
        if filters:  # anything else asked of it: the PACS matches, within the study now known
            return self._series_in_study(first_value(row, TAG_STUDY_UID), modality,
                                         {**filters, "SeriesInstanceUID": series_instance_uid})
        return [row]

    def locate_series(self, series_instance_uids: Iterable[str]) -> dict[str, dict[str, Any]]:
        """Each of these series the PACS has, by UID (its series row), without knowing their
        studies: for each, the studies a relational search names
        (``/studies?SeriesInstanceUID=``, which Kaapana's filter passes on to dcm4chee),
        asked for the series; those still unknown (Orthanc ignores series keys in a study
        search) in one pass over every study the caller may see."""
        wanted = list(dict.fromkeys(series_instance_uids))
        found: dict[str, dict[str, Any]] = {}
        for uid in wanted:
            rows = self._series_of_studies(self.find_studies(SeriesInstanceUID=uid), None, {"SeriesInstanceUID": uid})
            if rows:
                found[uid] = rows[0]
        missing = set(wanted) - found.keys()
        if missing:
            for row in self.find_all_series():
                uid = first_value(row, TAG_SERIES_UID)
                if uid in missing:
                    found.setdefault(uid, row)
        return found

    def _series_of_studies(self, studies: list[dict[str, Any]], modality: str | None,
                           filters: dict[str, str]) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = []
        seen: set[str] = set()
        for study in studies:
            study_uid = first_value(study, TAG_STUDY_UID)
            if not study_uid or study_uid in seen:
                continue
            seen.add(study_uid)
            for row in self._series_in_study(study_uid, modality, filters):
                # The study's own attributes, where the PACS leaves them out of series rows.
                for tag in STUDY_FIELDS:
                    if tag in study and not first_value(row, tag):
                        row[tag] = study[tag]
                rows.append(row)
        return rows

    def _series_in_study(self, study_instance_uid: str, modality: str | None,
                         filters: dict[str, str]) -> list[dict[str, Any]]:
        search = dict(filters)
        if modality is not None:
            search["Modality"] = str(modality)
        return self._call(
            "QIDO-RS series search",
            self.client.search_for_series,
            study_instance_uid=study_instance_uid,
            search_filters=search,
            fields=["PatientID", "StudyDate", "AccessionNumber", "SeriesDescription",
                    "NumberOfSeriesRelatedInstances", "SeriesNumber"],
            get_remaining=True,
        )

    def find_instances(self, study_instance_uid: str, series_instance_uid: str) -> list[dict[str, Any]]:
        return self._call(
            "QIDO-RS instance search",
            self.client.search_for_instances,
            study_instance_uid=study_instance_uid,
            series_instance_uid=series_instance_uid,
            get_remaining=True,
        )

    # -- WADO-RS ---------------------------------------------------------------------

    def series_metadata(self, study_instance_uid: str, series_instance_uid: str) -> list[dict[str, Any]]:
        """Every instance's metadata (DICOM JSON, bulk data as BulkDataURI)."""
        return self._call(
            "WADO-RS series metadata",
            self.client.retrieve_series_metadata,
            study_instance_uid=study_instance_uid,
            series_instance_uid=series_instance_uid,
        )

    def instance_metadata(self, study_instance_uid: str, series_instance_uid: str, sop_instance_uid: str) -> dict[str, Any]:
        """One instance's metadata (DICOM JSON): what series selection reads of a series."""
        result = self._call(
            "WADO-RS instance metadata",
            self.client.retrieve_instance_metadata,
            study_instance_uid=study_instance_uid,
            series_instance_uid=series_instance_uid,
            sop_instance_uid=sop_instance_uid,
        )
        return result[0] if isinstance(result, list) else result

    def retrieve_series(self, study_instance_uid: str, series_instance_uid: str, folder: Path) -> list[Path]:
        """Every instance of a series as a Part-10 file ``<SOPInstanceUID>.dcm`` in ``folder``."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        datasets: Iterator[Dataset] = self._call(
            "WADO-RS series retrieval",
            self.client.iter_series,
            study_instance_uid=study_instance_uid,
            series_instance_uid=series_instance_uid,
        )
        paths = []
        while True:
            ds = self._call("WADO-RS series retrieval", next, datasets, None)
            if ds is None:
                break
            path = folder / f"{ds.SOPInstanceUID}.dcm"
            ds.save_as(path, enforce_file_format=True)
            paths.append(path)
        if not paths:
            raise DicomWebError(
                f"WADO-RS series retrieval at {self.endpoint}: series {series_instance_uid} has no instances"
            )
        return paths

    # -- STOW-RS ---------------------------------------------------------------------

    def store(self, paths: Iterable[Path]) -> list[str]:
        """STOW-RS the Part-10 files; returns the stored SOP Instance UIDs.

        Raises :class:`StoreError` listing every instance the PACS refused.
        """
        stored: list[str] = []
        for chunk in _chunks_by_size([Path(p) for p in paths], STOW_CHUNK_BYTES):
            datasets = [pydicom.dcmread(p) for p in chunk]
            stored.extend(self._store_datasets(datasets))
        return stored

    def _store_datasets(self, datasets: list[Dataset]) -> list[str]:
        response = self._call("STOW-RS", self._store_raw, datasets)
        failed = _failed_instances(response)
        # What the response neither confirms nor lists as failed was not stored either
        # (Orthanc answers a full storage area with an empty response).
        confirmed = {str(item.get("ReferencedSOPInstanceUID", "")) for item in response.get("ReferencedSOPSequence", [])}
        named = confirmed | {f.sop_instance_uid for f in failed}
        failed += [FailedInstance(str(ds.SOPInstanceUID), "not confirmed in the STOW-RS response")
                   for ds in datasets if str(ds.SOPInstanceUID) not in named]
        if failed:
            raise StoreError(self.endpoint, failed, None)
        return [ds.SOPInstanceUID for ds in datasets]

    def _store_raw(self, datasets: list[Dataset]) -> Dataset:
        try:
            return self.client.store_instances(datasets=datasets)
        except requests.HTTPError as err:
            # A partial failure (HTTP 409 or 4xx with a body) still lists what failed.
            body = _json_body(err.response)
            if body is not None:
                failed = _failed_instances(body)
                if failed:
                    raise StoreError(self.endpoint, failed, err.response.status_code) from None
            raise


def _json_body(response: requests.Response | None) -> Dataset | None:
    if response is None or not response.content:
        return None
    try:
        return Dataset.from_json(response.json())
    except ValueError:
        return None


def _failed_instances(response: Dataset) -> list[FailedInstance]:
    failed = []
    for item in getattr(response, "FailedSOPSequence", []) or []:
        reason = getattr(item, "FailureReason", None)
        words = _FAILURE_REASONS.get(int(reason), "refused") if reason is not None else "refused"
        code = f" (0x{int(reason):04X})" if reason is not None else ""
        failed.append(FailedInstance(str(getattr(item, "ReferencedSOPInstanceUID", "?")), words + code))
    return failed


def _chunks_by_size(paths: list[Path], limit: int) -> Iterator[list[Path]]:
    chunk: list[Path] = []
    size = 0
    for path in paths:
        nbytes = os.path.getsize(path)
        if chunk and size + nbytes > limit:
            yield chunk
            chunk, size = [], 0
        chunk.append(path)
        size += nbytes
    if chunk:
        yield chunk


def _root_cause(err: BaseException) -> str:
    """The innermost reason of a requests/urllib3 error, without URLs or credentials."""
    cause: BaseException = err
    while True:
        inner = getattr(cause, "reason", None)
        if isinstance(inner, BaseException) and inner is not cause:
            cause = inner
            continue
        if cause.args and isinstance(cause.args[0], BaseException) and cause.args[0] is not cause:
            cause = cause.args[0]
            continue
        break
    text = str(cause)
    # urllib3 puts "<connection object at 0x…>: " in front; keep the human part.
    if ": " in text and "object at 0x" in text:
        text = text.split(": ", 1)[1]
    return text or type(cause).__name__
