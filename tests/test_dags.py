"""The DAGs as Airflow parses them: standalone (radpath installed, nothing else), and as a
Kaapana scheduler parses them, with Kaapana 0.6.0's own plugin (tests/kaapana_box.py)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from kaapana_box import airflow_environment, dag_folder, kaapana_python

REPO = Path(__file__).resolve().parents[1]
PIPELINE = ["get-input", "wsi-dicomize", "pair", "bodypart", "nifti", "segment", "merge", "seg-encode", "quantify", "store",
            "link", "report"]
#: On Kaapana the first task is Kaapana's own GetInputOperator, under its own default name.
KAAPANA_GET_INPUT = "get-input-data"


#: On Kaapana the link pages go to the project's bucket (Kaapana's MinioOperator) before the
#: verdict, and Kaapana's cleaner removes the run folder after it.
PUT_RESULTS, CLEANER = "put-results", "workflow-cleaner"
#: Beside the verdict on Kaapana: the research table into the bucket (report → it → cleaner).
PUT_TABLE = "put-research-table"
#: Beside the chain on Kaapana: the weights onto the project's models volume (nifti → it → segment).
PROVIDE = "provide-weights"


def pipeline(where: str) -> list[str]:
    """The stages in order, from input to link."""
    return [KAAPANA_GET_INPUT, *PIPELINE[1:-1]] if where == "on_kaapana" else PIPELINE[:-1]


def tail(where: str) -> list[str]:
    """What follows link."""
    return [PUT_RESULTS, "report", CLEANER] if where == "on_kaapana" else ["report"]

#: Loads the DAG folder in a fresh interpreter and prints what a test needs as JSON.
PROBE = r"""
import json, sys, time
from airflow.models import DagBag
started = time.perf_counter()
bag = DagBag(dag_folder=sys.argv[1], include_examples=False)
seconds = time.perf_counter() - started
out = {"errors": {k: v[-500:] for k, v in bag.import_errors.items()}, "seconds": seconds, "dags": {},
       "heavy": sorted(m for m in ("torch", "radpath", "totalsegmentator", "wsidicomizer", "pydicom")
                       if m in sys.modules)}
for dag_id, dag in bag.dags.items():
    tasks = {}
    for task in dag.tasks:
        tasks[task.task_id] = {
            "upstream": sorted(task.upstream_task_ids), "class": type(task).__name__,
            "base": [c.__name__ for c in type(task).__mro__],
            "image": getattr(task, "image", None), "env": getattr(task, "env_vars", None),
            "ram": getattr(task, "ram_mem_mb", None), "gpu": getattr(task, "gpu_mem_mb", None),
            "in": getattr(task, "operator_in_dir", None), "out": getattr(task, "operator_out_dir", None),
            "labels": getattr(task, "labels", None), "pool": task.pool, "trigger_rule": str(task.trigger_rule),
            "executor": getattr(task, "executor", None), "namespace": getattr(task, "namespace", None),
        }
    ui_forms = (dag.default_args or {}).get("ui_forms", {})
    out["dags"][dag_id] = {"tasks": tasks, "schedule": dag.timetable.summary, "ui_forms": ui_forms,
                           "tags": sorted(dag.tags or []),
                           "form": ui_forms.get("workflow_form"), "params": dag.params.dump()}
print(json.dumps(out))
"""




def parse_dags(tmp_path: Path, kaapana: bool = False, **env_extra: str) -> dict:
    """The DAG folder as a fresh Airflow parses it. Standalone, the operators come from the
    installed radpath (``pip install -e .[airflow]``), not from a PYTHONPATH of the test's."""
    run = probe(tmp_path, kaapana, **env_extra)
    assert run.returncode == 0, run.stderr[-3000:]
    return json.loads(run.stdout.strip().splitlines()[-1])


def probe(tmp_path: Path, kaapana: bool, **env_extra: str) -> subprocess.CompletedProcess:
    if kaapana:
        python, folder = kaapana_python(), dag_folder(tmp_path / "dags")
        env = airflow_environment(tmp_path / "airflow", **env_extra)
    else:
        python, folder = Path(sys.executable), REPO / "dags"
        env = {"AIRFLOW_HOME": str(tmp_path / "airflow"), "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
               "AIRFLOW__CORE__UNIT_TEST_MODE": "True", "PATH": "/usr/bin:/bin", **env_extra}
    return subprocess.run([str(python), "-c", PROBE, str(folder)], env=env, capture_output=True, text=True,
                          timeout=300)


@pytest.fixture(scope="module")
def standalone(tmp_path_factory) -> dict:
    return parse_dags(tmp_path_factory.mktemp("standalone"))


@pytest.fixture(scope="module")
def on_kaapana(tmp_path_factory, kaapana_source) -> dict:
    return parse_dags(tmp_path_factory.mktemp("kaapana"), kaapana=True)


def chain(tasks: dict) -> list[str]:
    """The task ids in dependency order, asserting the graph is one straight line (the
    research table's upload beside the verdict and the weights' provision beside nifti
    left out)."""
    tasks = {t: {**spec, "upstream": [u for u in spec["upstream"] if u not in (PUT_TABLE, PROVIDE)]}
             for t, spec in tasks.items() if t not in (PUT_TABLE, PROVIDE)}
    (first,) = [t for t, spec in tasks.items() if not spec["upstream"]]
    order = [first]
    while True:
        after = [t for t, spec in tasks.items() if spec["upstream"] == [order[-1]]]
        if not after:
            return order
        (following,) = after
        order.append(following)


@pytest.mark.parametrize("where", ["standalone", "on_kaapana"])
def test_radpath_map_parses_light_and_is_the_designed_pipeline(where, request):
    parsed = request.getfixturevalue(where)
    assert parsed["errors"] == {}
    assert parsed["heavy"] == []  # no torch, no radpath, no pydicom while a scheduler parses
    tasks = parsed["dags"]["radpath-map"]["tasks"]
    assert chain(tasks) == pipeline(where) + tail(where)
    for before, after in zip(pipeline(where), pipeline(where)[1:]):  # each stage reads the one before it
        assert tasks[after]["in"] == tasks[before]["out"] == before, (before, after)
    form = parsed["dags"]["radpath-map"]["form"]["properties"]
    assert {"organ", "laterality", "totalseg_speed", "merge_bilateral", "store_target", "allow_unlinked"} <= set(form)


def test_on_kaapana_operators_are_kaapana_operators_with_findable_images(on_kaapana):
    tasks = on_kaapana["dags"]["radpath-map"]["tasks"]
    for task_id in PIPELINE[1:]:
        spec = tasks[task_id]
        assert "KaapanaBaseOperator" in spec["base"], task_id
        assert spec["image"] == f"registry.example.org/kaapana/radpath-{task_id}:0.6.0"
    assert tasks["segment"]["gpu"] and tasks["segment"]["ram"] >= 8000
    assert tasks["wsi-dicomize"]["ram"] >= 4000
    # Kaapana's build finds every image line of every operator file.
    pattern = re.compile(r"^\s*-?\s*image\s*[:=]\s*f?[\"']\{DEFAULT_REGISTRY\}/(?P<image_name>[^:]+):", re.M)
    found = set()
    for path in (REPO / "operators" / "radpath_operators").glob("*Operator.py"):
        found.update(pattern.findall(path.read_text()))
    assert {f"radpath-{t}" for t in PIPELINE[1:]} <= found


def test_standalone_operators_run_radpath_locally(standalone):
    tasks = standalone["dags"]["radpath-map"]["tasks"]
    assert all("LocalStageOperator" in tasks[t]["base"] for t in PIPELINE)


@pytest.mark.parametrize("where", ["standalone", "on_kaapana"])
def test_radpath_batch_finds_unlinked_slides_and_hands_each_to_radpath_map(where, request):
    parsed = request.getfixturevalue(where)
    batch = parsed["dags"]["radpath-batch"]
    on_kaapana = ["hand-over"] if where == "on_kaapana" else []
    assert chain(batch["tasks"]) == on_kaapana + ["find-unlinked", "trigger-map"] + ([CLEANER] if on_kaapana else [])
    assert batch["tasks"]["trigger-map"]["class"] == "TriggerMapOperator"
    # On Kaapana a scheduled run without a project would be an admin run: not scheduled.
    assert batch["schedule"] == ("0 0 * * *" if where == "standalone" else "None")  # @daily
    assert "batch_limit" in batch["form"]["properties"] and "organ" in batch["form"]["properties"]


def test_on_kaapana_radpath_batch_runs_in_the_project_of_its_variable(tmp_path, kaapana_source):
    """The Variable radpath_batch_project (the project's form, JSON) schedules the DAG and
    becomes its params.project_form, whence KaapanaBaseOperator takes the pods' namespace
    (KaapanaBaseOperator.execute reads context params)."""
    kbo = (kaapana_source / "data-processing/kaapana-plugin/extension/docker/files/plugin/kaapana/operators/"
           "KaapanaBaseOperator.py").read_text()
    assert 'project_form = context.get("params", {}).get("project_form")' in kbo
    project = {"id": "7f1c2b5e-0000-4000-8000-000000000002", "name": "radpath-test",
               "kubernetes_namespace": "project-radpath-test", "s3_bucket": "project-radpath-test"}
    parsed = parse_dags(tmp_path, kaapana=True, AIRFLOW_VAR_RADPATH_BATCH_PROJECT=json.dumps(project))
    batch = parsed["dags"]["radpath-batch"]
    assert batch["schedule"] == "0 0 * * *"  # @daily
    assert batch["params"]["project_form"] == project


def test_radpath_batch_schedule_comes_from_an_airflow_variable(tmp_path):
    parsed = parse_dags(tmp_path, AIRFLOW_VAR_RADPATH_BATCH_SCHEDULE="30 2 * * 1-5")
    assert parsed["dags"]["radpath-batch"]["schedule"] == "30 2 * * 1-5"


@pytest.mark.parametrize("where", ["standalone", "on_kaapana"])
def test_radpath_wsi_import_converts_stores_then_triggers_radpath_map(where, request):
    parsed = request.getfixturevalue(where)
    tasks = parsed["dags"]["radpath-wsi-import"]["tasks"]
    assert tasks["wsi-dicomize"]["upstream"] == ["get-slides"]
    assert tasks["store"]["upstream"] == ["wsi-dicomize"] and tasks["store"]["in"] == "wsi-dicomize"
    assert tasks["trigger-map"]["upstream"] == ["store"] and tasks["trigger-map"]["class"] == "TriggerMapOperator"
    assert tasks["report"]["upstream"] == ["store"]
    form = parsed["dags"]["radpath-wsi-import"]["form"]["properties"]
    if where == "standalone":
        assert tasks["get-slides"]["upstream"] == [] and "slides_folder" in form
    else:  # no pod sees a folder of the host: the user picks uploads, as in Kaapana's upload DAGs
        assert "slides_folder" not in form
        assert tasks["get-slides"]["upstream"] == ["get-uploads"] and tasks["get-slides"]["in"] == "uploads"


def test_on_kaapana_slides_come_through_kaapanas_upload_pattern(on_kaapana, kaapana_source):
    """As Kaapana's dag_import_dicoms_from_data_upload: an upload form (data_form.action_files)
    and LocalVolumeMountOperator copying the picked files from /kaapana/app/uploads into the
    run folder; the uploads' endings are the slide formats radpath converts and their links."""
    import ast

    from radpath.adapters.slides.convert import SLIDE_SUFFIXES

    # forms.py's literal, read as text: importing the operators would import Airflow here
    forms = ast.parse((REPO / "operators/radpath_operators/forms.py").read_text())
    (UPLOAD_ENDINGS,) = [ast.literal_eval(node.value) for node in forms.body if isinstance(node, ast.Assign)
                         and getattr(node.targets[0], "id", None) == "UPLOAD_ENDINGS"]

    kaapana_dag = (kaapana_source / "data-processing/kaapana-plugin/extension/docker/files/dags/"
                   "dag_import_dicoms_from_data_upload.py").read_text()
    assert 'mount_path="/kaapana/app/uploads"' in kaapana_dag and "schema_upload_form" in kaapana_dag
    dag = on_kaapana["dags"]["radpath-wsi-import"]
    assert dag["tasks"]["get-uploads"]["class"] == "LocalVolumeMountOperator"
    assert "action_files" in dag["ui_forms"]["data_form"]["properties"]
    assert set(UPLOAD_ENDINGS) == set(SLIDE_SUFFIXES) | {".json", ".csv"}


def test_on_kaapana_wsi_import_is_an_import_dag_that_works_beside_the_schedulers_uploads(on_kaapana):
    """Kaapana's Data Upload page offers DAGs of kind import (DataUpload.vue), and only in a
    DAG tagged import (or service) do KaapanaPythonBaseOperators run on the scheduler's
    LocalExecutor, which mounts the uploads; its pods then must run in the services
    namespace, whose run folder the scheduler's tasks write (as Kaapana's import-wsi).
    Trigger-map reads the run folder, so the cleaner waits for it."""
    dag = on_kaapana["dags"]["radpath-wsi-import"]
    tasks = dag["tasks"]
    assert "import" in dag["tags"]
    assert tasks["get-uploads"]["executor"] == "LocalExecutor" and tasks["trigger-map"]["executor"] == "LocalExecutor"
    pods = [t for t, spec in tasks.items() if "KaapanaBaseOperator" in spec["base"]
            and "KaapanaPythonBaseOperator" not in spec["base"]]
    assert {"get-slides", "wsi-dicomize", "store", "report"} <= set(pods)
    assert {t: tasks[t]["namespace"] for t in pods} == dict.fromkeys(pods, "services")
    (cleaner,) = [t for t, spec in tasks.items() if spec["class"] == "LocalWorkflowCleanerOperator"]
    assert "trigger-map" in tasks[cleaner]["upstream"]


def test_on_kaapana_children_are_triggered_from_the_projects_own_run_folder(on_kaapana):
    """Trigger-map is a KaapanaPythonBaseOperator: in radpath-batch (no import tag) a
    KubernetesExecutor worker pod in the run's project namespace, which mounts the project's
    run folders (a plain BaseOperator would run in the scheduler and read the services
    namespace's). A scheduled radpath-batch run first hands over to a run whose id
    Kubernetes accepts."""
    tasks = on_kaapana["dags"]["radpath-batch"]["tasks"]
    assert "KaapanaPythonBaseOperator" in tasks["trigger-map"]["base"]
    assert tasks["trigger-map"]["executor"] == "KubernetesExecutor"
    assert tasks["hand-over"]["class"] == "HandOverOperator" and tasks["hand-over"]["executor"] == "KubernetesExecutor"
    assert tasks["find-unlinked"]["upstream"] == ["hand-over"]


def test_on_kaapana_each_run_provides_the_weights_on_its_projects_volume_before_segment(on_kaapana):
    """A project's pods mount the project's own models volume (project-namespace chart), not
    the one the model installer job fills: provide-weights, a pod of radpath's model image,
    puts them there in every run, between nifti and segment, where segment reads them."""
    tasks = on_kaapana["dags"]["radpath-map"]["tasks"]
    provide = tasks[PROVIDE]
    assert provide["upstream"] == ["nifti"] and sorted(tasks["segment"]["upstream"]) == ["nifti", PROVIDE]
    assert provide["image"].endswith("/radpath-totalsegmentator-models:0.6.0")
    assert provide["env"]["PROVIDE_FOR_RUN"] == "true"
    assert provide["env"]["MODEL_DIR"] == tasks["segment"]["env"]["TOTALSEG_WEIGHTS_PATH"]
    assert "network-access-external-ips" not in (provide["labels"] or {})  # it downloads nothing


def test_on_kaapana_the_form_stores_through_ctp_only(on_kaapana, standalone):
    """dicom-web-filter files a STOW-RS into the admin project: on Kaapana the form offers CTP
    alone (radpath's settings refuse dicomweb there too); standalone keeps both."""
    assert on_kaapana["dags"]["radpath-map"]["form"]["properties"]["store_target"]["enum"] == ["dimse"]
    assert standalone["dags"]["radpath-map"]["form"]["properties"]["store_target"]["enum"] == ["dimse", "dicomweb"]


def test_on_kaapana_segment_reads_the_weights_where_the_model_installer_puts_them(on_kaapana, kaapana_source):
    """The segment pod's TOTALSEG_WEIGHTS_PATH is on the models volume, which
    KaapanaBaseOperator mounts at /models in every pod, and is the folder the chart's
    model installer unpacks into (helm/values.yaml, model_installer_chart.model_dir)."""
    import yaml

    kbo = (kaapana_source / "data-processing/kaapana-plugin/extension/docker/files/plugin/kaapana/operators/"
           "KaapanaBaseOperator.py").read_text()
    models_mount = re.search(r'name="models", mount_path="([^"]+)"', kbo)[1]
    weights = on_kaapana["dags"]["radpath-map"]["tasks"]["segment"]["env"]["TOTALSEG_WEIGHTS_PATH"]
    installed = yaml.safe_load((REPO / "helm" / "values.yaml").read_text())["model_installer_chart"]["model_dir"]
    assert Path(weights).is_relative_to(models_mount) and Path(weights) != Path(models_mount)
    assert Path(weights) == Path(installed)


def test_ci_config_is_what_kaapanas_workflow_tests_read(standalone, kaapana_source):
    """Kaapana's CI runs ``find data-processing -wholename *ci-config/*.yaml``
    (ci/templates/.deploy_stage.yaml), reads each with its own read_payload_from_yaml and
    posts ``conf_data`` for ``dag_id``: each case names a DAG of ours and only options its
    form offers, with values the form allows."""
    import fnmatch

    sys.path.insert(0, str(kaapana_source / "ci/ci-code/test/src"))
    try:
        from base_utils.utils_workflows import read_payload_from_yaml
    finally:
        sys.path.pop(0)
    deploy = (kaapana_source / "ci/templates/.deploy_stage.yaml").read_text()
    pattern = re.search(r"-wholename (\S+)\)", deploy)[1]
    place = Path("data-processing/processing-pipelines/radpath")
    files = [p for p in REPO.rglob("*.yaml") if ".venv" not in p.parts
             and fnmatch.fnmatch(str(place / p.relative_to(REPO)), pattern)]
    assert files, f"no file of the project matches Kaapana's {pattern}"
    cases = [case for path in files for case in read_payload_from_yaml(path)]
    assert {case["dag_id"] for case in cases} >= {"radpath-map", "radpath-batch"}
    # only datasets Kaapana's CI puts onto the platform (its prepare_data.yaml), as it names them
    prepared = (kaapana_source / "ci/ci-code/test/jobs/testdata/prepare_data.yaml").read_text()
    created = set(re.findall(r'\{dataset: "([^"]+)"', prepared))
    assert "test-CT" in created
    for case in cases:
        form = standalone["dags"][case["dag_id"]]["form"]["properties"]
        for key, value in case["conf_data"]["workflow_form"].items():
            assert key in form, (case["dag_id"], key)
            assert value in form[key].get("enum", [value]), (case["dag_id"], key, value)
            assert isinstance(value, {"string": str, "boolean": bool, "integer": int}[form[key]["type"]])
        if "data_form" in case["conf_data"]:
            assert case["conf_data"]["data_form"]["dataset_name"] in created, case["conf_data"]["data_form"]


def test_a_kaapana_scheduler_whose_plugin_does_not_import_fails_loudly(tmp_path):
    """Kaapana's scheduler environment (its scheduler_deployment.yaml sets SERVICES_NAMESPACE,
    KAAPANA_BUILD_VERSION, DICOM_WEB_FILTER_URL) without an importable plugin: every DAG
    file is an import error naming the cause, and no task falls back to local processes.
    Without that environment (the standalone parse) the same files load."""
    parsed = parse_dags(tmp_path, SERVICES_NAMESPACE="services", KAAPANA_BUILD_VERSION="0.6.0",
                        DICOM_WEB_FILTER_URL="http://dicom-web-filter-service.services.svc:8080")
    assert parsed["dags"] == {}
    assert len(parsed["errors"]) == 3
    for error in parsed["errors"].values():
        assert "Kaapana's plugin does not import" in error and "No module named 'kaapana'" in error, error


def test_dags_offer_the_forms_kaapana_expects(standalone):
    """radpath-map takes a selection: no data_form of its own, so Kaapana adds its dataset
    picker. radpath-batch takes none: an empty data_form, which Kaapana drops without adding
    a picker (kaapana_utils.parse_ui_dict). No documentation_form points into Kaapana's docs."""
    forms = {dag_id: dag["ui_forms"] for dag_id, dag in standalone["dags"].items()}
    assert "data_form" not in forms["radpath-map"]
    assert forms["radpath-batch"]["data_form"] == forms["radpath-wsi-import"]["data_form"] == {}
    assert all("documentation_form" not in form for form in forms.values())
    assert standalone["dags"]["radpath-map"]["form"]["properties"]["viewer_base_url"]["default"] == "http://localhost"


def test_a_large_selection_becomes_one_run_per_series(standalone, kaapana_source):
    """Kaapana's backend makes one run per selected series when the form's single_execution
    is true (workflows/crud.py); radpath-map fixes it so, and a scheduled batch has none."""
    crud = (kaapana_source / "services/base/kaapana-backend/docker/files/app/workflows/crud.py").read_text()
    assert 'conf_data["workflow_form"]["single_execution"] is True' in crud
    assert 'single_conf_data["data_form"]["identifiers"] = [identifier]' in crud
    field = standalone["dags"]["radpath-map"]["form"]["properties"]["single_execution"]
    assert field["default"] is True and field["readOnly"] is True and field["type"] == "boolean"
    assert "single_execution" not in standalone["dags"]["radpath-batch"]["form"]["properties"]


def test_on_kaapana_the_pods_that_send_to_ctp_may_reach_it(on_kaapana, kaapana_source):
    """The project namespace admits traffic to CTP only from pods labelled
    network-access-ctp (project-namespace network policies, as DcmSendOperator sets it);
    store and link send, and get CTP's address as DcmSendOperator's defaults have it."""
    policies = (kaapana_source / "services/data-separation/project-namespace/project-namespace-chart/templates/"
                "network_policies.yaml").read_text()
    assert re.search(r"name: allow-access-to-ctp.*?podSelector:\s*matchLabels:\s*network-access-ctp: \"true\"",
                     policies, re.S)
    for dag_id in ("radpath-map", "radpath-batch", "radpath-wsi-import"):
        tasks = on_kaapana["dags"][dag_id]["tasks"]
        for task_id, spec in tasks.items():
            sends = task_id in ("store", "link")
            assert ((spec["labels"] or {}).get("network-access-ctp") == "true") == sends, (dag_id, task_id)
            if sends:
                assert spec["env"]["STORE_TARGET"] == "dimse"
                assert spec["env"]["DIMSE_HOST"] == "ctp-dicom-service.services.svc"
                assert spec["env"]["DIMSE_PORT"] == "11112"


def test_on_kaapana_results_link_to_the_platforms_viewers(on_kaapana):
    """The scheduler's HOSTDOMAIN (scheduler_deployment.yaml) becomes the viewer address, as
    the link operator's default and the form's; the form may override it per run."""
    map_dag = on_kaapana["dags"]["radpath-map"]
    assert map_dag["tasks"]["link"]["env"]["VIEWER_BASE_URL"] == "https://kaapana.example.org"
    assert map_dag["form"]["properties"]["viewer_base_url"]["default"] == "https://kaapana.example.org"


def test_on_kaapana_the_link_pages_go_to_the_projects_static_website_results(on_kaapana, kaapana_source):
    """Kaapana's MinioOperator puts each element's split-view page and QC picture into the
    project's bucket under staticwebsiteresults, as Kaapana's otsus-method example puts its
    report (its minio-operator container reads these variables)."""
    example = (kaapana_source / "templates_and_examples/examples/processing-pipelines/otsus-method/extension/"
               "docker/files/dag_otsus_method.py").read_text()
    assert 'minio_prefix="staticwebsiteresults"' in example
    put = on_kaapana["dags"]["radpath-map"]["tasks"][PUT_RESULTS]
    assert put["class"] == "MinioOperator" and put["upstream"] == ["link"]
    assert put["image"] == "registry.example.org/kaapana/minio-operator:0.6.0"
    assert put["env"]["ACTION"] == "put" and put["env"]["MINIO_PREFIX"].startswith("staticwebsiteresults/")
    assert put["env"]["BATCH_INPUT_OPERATORS"] == "link"
    assert set(put["env"]["WHITELISTED_FILE_EXTENSIONS"].split(",")) == {".html", ".png"}


def test_on_kaapana_the_research_table_goes_to_the_projects_bucket_whatever_the_verdict(on_kaapana):
    """After report (which writes the table into its output folder), a MinioOperator puts
    that folder's CSV and JSON into the bucket, even when report failed the run; the clean-up
    waits for both, and only radpath-map, which measures, has it."""
    tasks = on_kaapana["dags"]["radpath-map"]["tasks"]
    put = tasks[PUT_TABLE]
    assert put["class"] == "MinioOperator" and put["upstream"] == ["report"]
    assert put["trigger_rule"] == "all_done" and tasks["report"]["trigger_rule"] == "all_done"
    assert put["env"]["ACTION"] == "put" and put["env"]["MINIO_PREFIX"] == "radpath"
    assert put["env"]["NONE_BATCH_INPUT_OPERATORS"] == "report" and put["env"]["BATCH_INPUT_OPERATORS"] == ""
    assert set(put["env"]["WHITELISTED_FILE_EXTENSIONS"].split(",")) == {".csv", ".json"}
    cleaner = [t for t in tasks.values() if t["class"] == "LocalWorkflowCleanerOperator"]
    assert len(cleaner) == 1 and sorted(cleaner[0]["upstream"]) == [PUT_TABLE, "report"]
    assert cleaner[0]["trigger_rule"] == "all_success"  # a failed run keeps its folder for inspection
    assert PUT_TABLE not in on_kaapana["dags"]["radpath-wsi-import"]["tasks"]


def test_a_kaapana_scheduler_with_a_broken_plugin_names_what_broke(tmp_path, kaapana_source):
    """Kaapana's own plugin, broken for real: its kaapanapy (Kaapana installs it into the
    Airflow image) is missing. The DAG files fail naming that, in Kaapana's environment."""
    from kaapana_box import KAAPANA_SOURCE, PLUGIN, TASK_API

    broken = os.pathsep.join(str(KAAPANA_SOURCE / part) for part in (PLUGIN, TASK_API))
    run = probe(tmp_path, kaapana=True, PYTHONPATH=broken)
    assert run.returncode == 0, run.stderr[-2000:]
    parsed = json.loads(run.stdout.strip().splitlines()[-1])
    assert parsed["dags"] == {}
    # the DAG files (and the operator modules beside them, which Airflow also scans)
    assert {Path(path).name for path in parsed["errors"]} >= {"dag_radpath_map.py", "dag_radpath_batch.py",
                                                              "dag_radpath_wsi_import.py"}
    for error in parsed["errors"].values():
        assert "Kaapana's plugin does not import" in error and "No module named 'kaapanapy'" in error, error
