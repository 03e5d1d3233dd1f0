"""DICOMweb against a real Orthanc: STOW, QIDO, WADO round trip; auth; an unreachable PACS."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
import pytest
from conftest import dicomweb_settings

from radpath.adapters.dicomweb import (
    TAG_MODALITY,
    TAG_SERIES_UID,
    TAG_STUDY_UID,
    DicomWeb,
    DicomWebError,
    redact_url,
)
from radpath.adapters.orthanc import LocalOrthanc
from radpath.synthetic import SliceGeometry, SyntheticPatient, SyntheticStudy, write_series

pytestmark = pytest.mark.pacs

SMALL = SliceGeometry(32, 32, 6, (8.0, 8.0), 8.0, center=(0.0, 0.0, 20.0))


def value(item: dict, tag: str):
    return item[tag]["Value"][0]


@pytest.fixture(scope="module")
def ct_series(tmp_path_factory):
    study = SyntheticStudy(patient=SyntheticPatient(patient_id="RP-DW-1", name="Test^Dicomweb"))
    return write_series(tmp_path_factory.mktemp("ct"), modality="CT", geometry=SMALL, study=study)


def test_stow_qido_wado_round_trip(orthanc, ct_series, tmp_path: Path):
    pacs = DicomWeb(dicomweb_settings(orthanc.dicomweb_url))
    stored = pacs.store(ct_series.paths)
    assert sorted(stored) == sorted(ct_series.sop_instance_uids)

    studies = pacs.find_studies(patient_id="RP-DW-1")
    assert [value(s, TAG_STUDY_UID) for s in studies] == [ct_series.study.study_instance_uid]
    series = pacs.find_series(patient_id="RP-DW-1", modality="CT")
    assert [value(s, TAG_SERIES_UID) for s in series] == [ct_series.series_instance_uid]
    assert value(series[0], TAG_MODALITY) == "CT"
    assert pacs.find_series(patient_id="RP-DW-1", modality="MR") == []
    assert pacs.find_series(patient_id="SOMEONE-ELSE") == []

    paths = pacs.retrieve_series(ct_series.study.study_instance_uid, ct_series.series_instance_uid, tmp_path)
    assert len(paths) == len(ct_series.paths)
    originals = {pydicom.dcmread(p).SOPInstanceUID: pydicom.dcmread(p) for p in ct_series.paths}
    for path in paths:
        got = pydicom.dcmread(path)
        want = originals[got.SOPInstanceUID]
        assert path.name == f"{got.SOPInstanceUID}.dcm"
        assert (got.StudyInstanceUID, got.SeriesInstanceUID) == (want.StudyInstanceUID, want.SeriesInstanceUID)
        assert got.FrameOfReferenceUID == want.FrameOfReferenceUID
        assert np.array_equal(got.pixel_array, want.pixel_array)
        assert got.ImagePositionPatient == want.ImagePositionPatient

    metadata = pacs.series_metadata(ct_series.study.study_instance_uid, ct_series.series_instance_uid)
    assert len(metadata) == len(ct_series.paths)


def test_authenticated_pacs_with_right_credentials(orthanc_auth, ct_series):
    pacs = DicomWeb(
        dicomweb_settings(orthanc_auth.dicomweb_url, DICOMWEB_USERNAME="radpath", DICOMWEB_PASSWORD="s3cret-pw")
    )
    pacs.store(ct_series.paths[:2])
    assert len(pacs.find_series(patient_id="RP-DW-1", modality="CT")) == 1


def test_authenticated_pacs_with_wrong_credentials_names_endpoint_and_401(orthanc_auth, ct_series):
    pacs = DicomWeb(
        dicomweb_settings(orthanc_auth.dicomweb_url, DICOMWEB_USERNAME="radpath", DICOMWEB_PASSWORD="not-the-pw-7731")
    )
    with pytest.raises(DicomWebError) as info:
        pacs.find_studies(patient_id="RP-DW-1")
    message = str(info.value)
    assert info.value.status == 401
    assert orthanc_auth.dicomweb_url in message and "HTTP 401" in message
    assert "not-the-pw-7731" not in message  # the password never appears
    with pytest.raises(DicomWebError, match="STOW-RS at .* failed: HTTP 401"):
        pacs.store(ct_series.paths[:1])


def test_stow_to_a_stopped_orthanc_retries_a_bounded_number_of_times(tmp_path, ct_series):
    pacs_server = LocalOrthanc(storage=tmp_path / "pacs").start()
    url = pacs_server.dicomweb_url
    pacs_server.stop()
    pacs = DicomWeb(dicomweb_settings(url))
    with pytest.raises(DicomWebError) as info:
        pacs.store(ct_series.paths[:1])
    assert str(info.value).startswith(f"STOW-RS at {url}: cannot connect after 2 retries")
    assert "refused" in str(info.value).lower()


def _status(code: int):
    return lambda method, path: (code, "text/plain", b"")


EMPTY_QIDO = (200, "application/dicom+json", b"[]")


def test_4xx_is_never_retried(stub_server):
    base, requests = stub_server(_status(401))
    with pytest.raises(DicomWebError, match="HTTP 401"):
        DicomWeb(dicomweb_settings(f"{base}/dicom-web", DICOMWEB_RETRIES="5")).find_studies(patient_id="x")
    assert len(requests) == 1


def test_5xx_is_retried_then_reported(stub_server):
    base, requests = stub_server(_status(503))
    url = f"{base}/dicom-web"
    with pytest.raises(DicomWebError) as info:
        DicomWeb(dicomweb_settings(url, DICOMWEB_RETRIES="2")).find_studies(patient_id="x")
    assert len(requests) == 3  # the request and two retries, no more
    assert url in str(info.value) and "503" in str(info.value)


def test_bearer_token_is_sent(stub_server):
    base, requests = stub_server(lambda method, path: EMPTY_QIDO)
    pacs = DicomWeb(dicomweb_settings(f"{base}/dicom-web", DICOMWEB_TOKEN="tok-42"))
    assert pacs.find_studies(patient_id="x") == []
    assert requests[0][2]["Authorization"] == "Bearer tok-42"


def test_kaapana_project_user_is_exchanged_for_a_bearer_token(stub_server):
    """Kaapana's project user goes through Keycloak's password grant (a loopback stand-in here)."""

    def answer(method, path):
        if method == "POST":
            return 200, "application/json", b'{"access_token": "kc-token-1"}'
        return EMPTY_QIDO

    base, requests = stub_server(answer)
    settings = dicomweb_settings(
        f"{base}/dicom-web",
        KAAPANA_PROJECT_USER_NAME="project-user",
        KAAPANA_PROJECT_USER_PASSWORD="pw-99",
        KAAPANA_CLIENT_SECRET="client-secret",
        KEYCLOAK_URL=base,
    )
    assert DicomWeb(settings).find_studies(patient_id="x") == []
    (_, token_path, _, body), (_, _, headers, _) = requests
    form = dict(pair.split("=", 1) for pair in body.decode().split("&"))
    assert token_path == "/auth/realms/kaapana/protocol/openid-connect/token"
    assert form["grant_type"] == "password" and form["username"] == "project-user"
    assert form["client_secret"] == "client-secret"
    assert headers["Authorization"] == "Bearer kc-token-1"


def test_credentials_in_urls_are_redacted():
    assert redact_url("http://user:pw@pacs:8042/dicom-web") == "http://pacs:8042/dicom-web"
    assert redact_url("https://pacs/dicom-web") == "https://pacs/dicom-web"

