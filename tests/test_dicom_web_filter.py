"""radpath against Kaapana's REAL dicom-web-filter (tests/kaapana_dwf.py: its own code from
``../shared/kaapana-0.6.0`` in ``.venv-dwf``, on PostgreSQL, tokens checked against an
OpenID stand-in's keys over TLS), Orthanc behind it holding three patients: PA in project
alpha, PB in project beta, PC in none. Each check fails against a permissive filter (one
that forwards everything, as the box's first stand-in did).

Also, without the filter: radpath's searches stay on the filter's three QIDO routes and
read a 204 as "none"; and STORE_TARGET=dicomweb is refused on Kaapana.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import pytest
import requests
from conftest import KAAPANA_SOURCE, REPO, dicomweb_settings, skip_unless_ci

from radpath.adapters.dicomweb import TAG_SERIES_UID, TAG_STUDY_UID, DicomWeb, DicomWebError
from radpath.adapters.orthanc import LocalOrthanc
from radpath.adapters.radiology.search import radiology_studies
from radpath.adapters.settings import STOW_ON_KAAPANA, Settings, SettingsError
from radpath.synthetic import SliceGeometry, SyntheticPatient, SyntheticStudy, write_series

sys.path.insert(0, str(Path(__file__).parent))
import kaapana_dwf  # noqa: E402

pytestmark = pytest.mark.pacs

SMALL = SliceGeometry(16, 16, 3, (8.0, 8.0), 8.0, center=(0.0, 0.0, 20.0))
ALPHA = {"id": "5a1f0000-0000-4000-8000-00000000a1fa", "name": "alpha"}
BETA = {"id": "5a1f0000-0000-4000-8000-00000000be7a", "name": "beta"}
ADMIN_PROJECT = {"id": "5a1f0000-0000-4000-8000-0000000ad111", "name": "admin"}
USERS = {"alpha-user": "alpha-pw", "beta-user": "beta-pw", "system": "system-pw"}
CLIENT_SECRET = "dwf-client-secret"
#: patient → (modality, project the incoming pipeline files it into; None: not mapped)
PATIENTS = {"RP-DWF-A": ("CT", "alpha"), "RP-DWF-B": ("MR", "beta"), "RP-DWF-C": ("CT", None)}


def uids(rows: list[dict], tag: str = TAG_SERIES_UID) -> set[str]:
    return {row[tag]["Value"][0] for row in rows}


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """The filter in front of Orthanc, PA's and PB's series mapped to their projects as
    Kaapana's incoming pipeline maps them (with the system user's token); PC's stored
    straight into the PACS (mapped to no project)."""
    if not (KAAPANA_SOURCE / kaapana_dwf.DWF_FILES / "app" / "main.py").is_file():
        skip_unless_ci(f"Kaapana's dicom-web-filter not found under {KAAPANA_SOURCE} (it sits beside the repo)")
    if kaapana_dwf.dwf_python() is None:
        skip_unless_ci(f"{kaapana_dwf.DWF_VENV} not found: `make setup-test` makes it where a Python 3.12 is installed")
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        skip_unless_ci("the filter runs in a private mount namespace (unshare --mount, as root) for /etc/certs")
    root = tmp_path_factory.mktemp("dwf")
    # PostgreSQL runs as the postgres user, which cannot enter pytest's private folders
    pg_parent = Path(tempfile.mkdtemp(prefix="radpath-dwf-pg-"))
    pg_parent.chmod(0o755)
    series = {}
    try:
        with LocalOrthanc(storage=root / "pacs") as pacs, kaapana_dwf.postgres(pg_parent / "pg") as socket_dir:
            for patient, (modality, _) in PATIENTS.items():
                study = SyntheticStudy(patient=SyntheticPatient(patient_id=patient, name="Filter^Test"))
                made = write_series(root / patient, modality=modality, geometry=SMALL, study=study)
                for path in made.paths:
                    requests.post(f"{pacs.url}/instances", data=path.read_bytes(), timeout=30).raise_for_status()
                series[patient] = made
            with kaapana_dwf.data_separation(
                root / "services", pacs.dicomweb_url, socket_dir, users=USERS, client_secret=CLIENT_SECRET,
                projects=[ALPHA, BETA], admin_project=ADMIN_PROJECT,
                memberships={"alpha-user": ["alpha"], "beta-user": ["beta"], "system": ["admin"]}, admins=["system"],
            ) as services:
                for patient, (_, project) in PATIENTS.items():
                    if project is not None:
                        made = series[patient]
                        mapped = services.map_series(made.series_instance_uid, made.study.study_instance_uid,
                                                     project, as_user="system")
                        wanted = {"alpha": ALPHA, "beta": BETA}[project]["id"]
                        assert mapped == [ADMIN_PROJECT["id"], wanted]
                yield services, series
    finally:
        shutil.rmtree(pg_parent, ignore_errors=True)


def radpath_as(services, user: str) -> DicomWeb:
    """radpath's client as a Kaapana pod of ``user``'s project builds it: the filter's URL
    (DICOM_WEB_FILTER_URL) and the project user exchanged for a token at KEYCLOAK_URL."""
    return DicomWeb(dicomweb_settings(
        services.filter.url, KAAPANA_PROJECT_USER_NAME=user,
        KAAPANA_PROJECT_USER_PASSWORD=USERS[user], KEYCLOAK_URL=services.keycloak_url,
        KAAPANA_CLIENT_SECRET=CLIENT_SECRET, DICOMWEB_RETRIES="0"))


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_series_search_across_studies_is_refused_by_the_filter(world):
    """Negative control: the search radpath used to make (/series?PatientID=) is answered
    400 by the real filter, while the same user's study search works."""
    services, series = world
    token = services.token("alpha-user")
    refused = requests.get(f"{services.filter.url}/series", params={"PatientID": "RP-DWF-A", "Modality": "CT"},
                           headers=bearer(token), timeout=30)
    assert refused.status_code == 400, refused.text
    assert refused.json() == {"error": "StudyInstanceUID is required"}
    studies = requests.get(f"{services.filter.url}/studies", params={"PatientID": "RP-DWF-A"},
                           headers=bearer(token), timeout=30)
    assert studies.status_code == 200
    assert uids(studies.json(), TAG_STUDY_UID) == {series["RP-DWF-A"].study.study_instance_uid}


def test_project_user_finds_the_patients_series_through_the_filter(world, tmp_path):
    """The pair stage's searches (patient → studies → series → instances → metadata), get-input's
    (a series by UID alone) and retrieval, through the filter with the project user's token."""
    services, series = world
    pacs = radpath_as(services, "alpha-user")
    made = series["RP-DWF-A"]
    assert uids(pacs.find_patient_series("RP-DWF-A", "CT")) == {made.series_instance_uid}
    assert uids(pacs.find_series(patient_id="RP-DWF-A")) == {made.series_instance_uid}
    (study,) = radiology_studies(pacs, "RP-DWF-A")
    assert study.study_instance_uid == made.study.study_instance_uid
    assert [s.series_instance_uid for s in study.series] == [made.series_instance_uid]
    assert set(pacs.locate_series([made.series_instance_uid])) == {made.series_instance_uid}
    paths = pacs.retrieve_series(made.study.study_instance_uid, made.series_instance_uid, tmp_path)
    assert len(paths) == len(made.paths)
    # what the project may not see is not found, and not an error
    assert pacs.find_patient_series("RP-DWF-B") == []
    assert uids(pacs.find_all_series()) == {made.series_instance_uid}


def test_another_projects_user_sees_none_of_it(world):
    services, series = world
    made = series["RP-DWF-A"]
    beta = radpath_as(services, "beta-user")
    assert beta.find_patient_series("RP-DWF-A") == []
    assert beta.locate_series([made.series_instance_uid]) == {}
    assert uids(beta.find_all_series()) == {series["RP-DWF-B"].series_instance_uid}
    # the filter's own answer: 204 without a body
    answer = requests.get(f"{services.filter.url}/studies", params={"PatientID": "RP-DWF-A"},
                          headers=bearer(services.token("beta-user")), timeout=30)
    assert (answer.status_code, answer.content) == (204, b"")
    with pytest.raises(DicomWebError) as refused:
        beta.retrieve_series(made.study.study_instance_uid, made.series_instance_uid, Path(tempfile.mkdtemp()))
    assert refused.value.status == 403


def logged_after(dwf, offset: int, text: str, wait_s: float = 10) -> bool:
    """``text`` is in the filter's log after ``offset`` (waiting for the traceback uvicorn writes
    after its access line)."""
    deadline = time.time() + wait_s
    while text not in dwf.log(10**9)[offset:]:
        if time.time() > deadline:
            return False
        time.sleep(0.1)
    return True


def test_tokens_the_identity_provider_did_not_sign_are_refused(world):
    """No token, a token that is no JWT, an unsigned one, and one with the right key id and
    claims signed by another key: each refused with no data. The real filter answers 500
    (its middleware raises HTTPException(403) outside FastAPI's handlers); its log says why."""
    import jwt
    from cryptography.hazmat.primitives.asymmetric import rsa

    services, series = world
    url = f"{services.filter.url}/studies"
    claims = services.idp.claims("alpha-user")
    forged_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    cases = {
        "no token": ({}, "403: Authorization token missing or invalid"),
        "not a JWT": (bearer("not-a-token"), "Authentication error: Not enough segments"),
        "unsigned": (bearer(jwt.encode(claims, None, algorithm="none")), "Unable to find a signing key"),
        "signed by another key": (bearer(jwt.encode(claims, forged_key, algorithm="RS256",
                                                    headers={"kid": services.idp.kid})),
                                  "Authentication error: Signature verification failed"),
    }
    for case, (headers, reason) in cases.items():
        seen = len(services.filter.log(10**9))
        answer = requests.get(url, params={"PatientID": "RP-DWF-A"}, headers=headers, timeout=30)
        assert answer.status_code >= 400, (case, answer.status_code, answer.text[:200])
        assert series["RP-DWF-A"].study.study_instance_uid.encode() not in answer.content, case
        assert logged_after(services.filter, seen, reason), (case, services.filter.log()[-2000:])
    # control: the same request with the identity provider's token
    good = requests.get(url, params={"PatientID": "RP-DWF-A"}, headers=bearer(services.token("alpha-user")), timeout=30)
    assert good.status_code == 200


def test_admin_sees_every_series_where_project_users_see_their_own(world):
    services, series = world
    admin = DicomWeb(dicomweb_settings(services.filter.url, DICOMWEB_TOKEN=services.token("system")))
    assert uids(admin.find_all_series()) == {made.series_instance_uid for made in series.values()}
    assert uids(admin.find_patient_series("RP-DWF-C")) == {series["RP-DWF-C"].series_instance_uid}
    # PC's series is in the PACS but in no project: no project user sees it
    for user in ("alpha-user", "beta-user"):
        assert radpath_as(services, user).find_patient_series("RP-DWF-C") == [], user


def test_identity_provider_refuses_wrong_credentials(world):
    services, _ = world
    token_url = f"{services.keycloak_url}/auth/realms/kaapana/protocol/openid-connect/token"
    form = {"grant_type": "password", "username": "alpha-user", "password": "alpha-pw", "client_id": "kaapana",
            "client_secret": CLIENT_SECRET}
    assert requests.post(token_url, data=form, timeout=10).status_code == 200
    for wrong in ({"password": "guess"}, {"client_secret": "guess"}, {"username": "nobody"}):
        assert requests.post(token_url, data={**form, **wrong}, timeout=10).status_code == 401, wrong
    with pytest.raises(DicomWebError) as refused:
        DicomWeb(dicomweb_settings(services.filter.url, KAAPANA_PROJECT_USER_NAME="alpha-user",
                                   KAAPANA_PROJECT_USER_PASSWORD="guess", KEYCLOAK_URL=services.keycloak_url,
                                   KAAPANA_CLIENT_SECRET=CLIENT_SECRET))
    assert refused.value.status == 401


def test_pods_reach_the_filter_at_the_service_root(world):
    """DICOM_WEB_FILTER_URL is the service root, as Kaapana's charts give it: the root path
    /dicom-web-filter is the ingress's, stripped before the service."""
    services, _ = world
    headers = bearer(services.token("alpha-user"))
    assert requests.get(f"{services.filter.url}/studies", headers=headers, timeout=30).status_code == 200
    assert requests.get(f"{services.filter.url}{kaapana_dwf.ROOT_PATH}/studies", headers=headers,
                        timeout=30).status_code == 404


# --- without the filter ------------------------------------------------------------------------------------------


def test_searches_stay_on_the_filters_qido_routes_and_read_204_as_none(stub_server):
    """Every radpath search, against a server that answers 204 to everything and records what
    it was asked: no /series (or /instances) outside a study, and no error."""
    url, asked = stub_server(lambda method, path: (204, "application/dicom+json", b""))
    pacs = DicomWeb(dicomweb_settings(url))
    assert pacs.find_studies(patient_id="P") == []
    assert pacs.find_patient_series("P", "CT") == []
    assert pacs.find_series(patient_id="P") == []
    assert pacs.find_all_series("SM") == []
    assert pacs.locate_series(["1.2.3"]) == {}
    assert pacs.find_series(SeriesInstanceUID="1.2.3") == []
    paths = [path.split("?")[0] for _, path, _, _ in asked]
    assert paths and all(p == "/studies" or p.startswith("/studies/") for p in paths), paths


def test_a_search_across_studies_asks_each_study(stub_server):
    """A patient's series: the studies by PatientID, then each study's series by Modality."""
    studies = json.dumps([{"0020000D": {"vr": "UI", "Value": [uid]}, "00100020": {"vr": "LO", "Value": ["P"]}}
                          for uid in ("1.1", "1.2")]).encode()

    def answer(method, path):
        route = path.split("?")[0]
        if route == "/studies" and "offset=0" in path:
            return 200, "application/dicom+json", studies
        if route.startswith("/studies/") and route.endswith("/series") and "offset=0" in path:
            study = route.split("/")[2]
            return 200, "application/dicom+json", json.dumps([{
                "0020000D": {"vr": "UI", "Value": [study]}, "0020000E": {"vr": "UI", "Value": [study + ".9"]},
                "00080060": {"vr": "CS", "Value": ["CT"]}}]).encode()
        return 204, "application/dicom+json", b""

    url, asked = stub_server(answer)
    rows = DicomWeb(dicomweb_settings(url)).find_patient_series("P", "CT")
    assert uids(rows) == {"1.1.9", "1.2.9"}
    assert {row["00100020"]["Value"][0] for row in rows} == {"P"}  # the study's PatientID, carried over
    first = [path for _, path, _, _ in asked if "offset=0" in path]
    assert first[0].startswith("/studies?") and "PatientID=P" in first[0]
    assert sorted(p.split("?")[0] for p in first[1:]) == ["/studies/1.1/series", "/studies/1.2/series"]
    assert all("Modality=CT" in p for p in first[1:])


# --- STORE_TARGET=dicomweb on Kaapana ----------------------------------------------------------------------------


def run_folder(tmp_path: Path, form: dict) -> Path:
    workflow = tmp_path / f"run-{uuid.uuid4().hex[:8]}"
    (workflow / "conf").mkdir(parents=True)
    (workflow / "conf" / "conf.json").write_text(json.dumps({"workflow_form": form}))
    return workflow


KAAPANA_POD = {"DICOM_WEB_FILTER_URL": "http://dicom-web-filter-service.services.svc:8080",
               "SERVICES_NAMESPACE": "services"}


def test_dicomweb_store_target_is_refused_on_kaapana_before_any_stage_works(tmp_path):
    workflow = run_folder(tmp_path, {"store_target": "dicomweb"})
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), **KAAPANA_POD, "WORKFLOW_DIR": str(workflow),
           "BATCH_NAME": "batch", "OPERATOR_IN_DIR": "get-input", "OPERATOR_OUT_DIR": "pair"}
    done = subprocess.run([sys.executable, "-m", "radpath", "stage", "pair"], env=env, capture_output=True, text=True,
                          timeout=120, cwd=REPO)
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert "STORE_TARGET" in done.stderr and "admin project" in done.stderr and "CTP" in done.stderr, done.stderr
    assert not (workflow / "batch").exists()
    with pytest.raises(SettingsError) as refused:
        Settings.from_env({**KAAPANA_POD, "WORKFLOW_DIR": str(workflow)})
    assert refused.value.variable == "STORE_TARGET" and STOW_ON_KAAPANA in str(refused.value)


def test_store_target_choices_kaapana_allows_and_standalone_keeps(tmp_path):
    # on Kaapana: dimse (the store operators' default), or nothing chosen (a stage that stores nothing)
    assert Settings.from_env({**KAAPANA_POD, "STORE_TARGET": "dimse"}).on_kaapana
    assert Settings.from_env({**KAAPANA_POD}).options.store_target.value == "dicomweb"
    # standalone: dicomweb stays a choice, from the form or the environment
    workflow = run_folder(tmp_path, {"store_target": "dicomweb"})
    settings = Settings.from_env({"DICOMWEB_URL": "http://127.0.0.1:8042/dicom-web", "WORKFLOW_DIR": str(workflow)})
    assert settings.options.store_target.value == "dicomweb" and not settings.on_kaapana
    # the store target itself, where an operator left the default on Kaapana
    from radpath.adapters.storage import store_target

    with pytest.raises(SettingsError, match="admin project"):
        store_target(Settings.from_env({**KAAPANA_POD}))
