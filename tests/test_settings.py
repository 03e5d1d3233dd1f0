"""Settings: one object from the environment; bad values fail at start-up naming the variable."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from radpath.adapters.settings import Settings, SettingsError, all_options


def settings(**env: str) -> Settings:
    return Settings.from_env(env)


def error_of(**env: str) -> SettingsError:
    with pytest.raises(SettingsError) as info:
        settings(**env).layout.require_workflow_dir()
    return info.value


def test_kaapana_layout_is_read(tmp_path: Path):
    s = settings(
        WORKFLOW_DIR=str(tmp_path),
        BATCH_NAME="batch",
        OPERATOR_IN_DIR="get-input",
        OPERATOR_OUT_DIR="nifti",
        RUN_ID="radpath-map-260101",
        DAG_ID="radpath-map",
    )
    assert s.layout.batch_dir == tmp_path / "batch"
    assert s.layout.conf_path == tmp_path / "conf" / "conf.json"
    assert (s.layout.operator_in_dir, s.layout.operator_out_dir) == ("get-input", "nifti")
    assert (s.layout.run_id, s.layout.dag_id) == ("radpath-map-260101", "radpath-map")


def test_missing_required_workflow_dir_names_the_variable():
    err = error_of()
    assert err.variable == "WORKFLOW_DIR"
    assert str(err) == "WORKFLOW_DIR: is required to run a stage but not set"


def test_missing_dicomweb_url_names_the_variable():
    from radpath.adapters.dicomweb import DicomWeb

    with pytest.raises(SettingsError) as info:
        DicomWeb(settings().dicomweb)
    assert str(info.value) == "DICOMWEB_URL: is required to talk to the PACS but not set"


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"DICOMWEB_TIMEOUT": "soon"}, "DICOMWEB_TIMEOUT: expected a number, got 'soon'"),
        ({"DICOMWEB_TIMEOUT": "0"}, "DICOMWEB_TIMEOUT: expected a number greater than 0, got '0'"),
        ({"DICOMWEB_RETRIES": "-1"}, "DICOMWEB_RETRIES: expected a whole number of 0 or more, got '-1'"),
        ({"DICOMWEB_RETRIES": "3.5"}, "DICOMWEB_RETRIES: expected a whole number, got '3.5'"),
        ({"DICOMWEB_VERIFY_TLS": "maybe"}, "DICOMWEB_VERIFY_TLS: expected a boolean (true/false, yes/no, 1/0), got 'maybe'"),
        ({"DICOMWEB_URL": "pacs:8042/dicom-web"}, "DICOMWEB_URL: expected an http:// or https:// URL, got 'pacs:8042/dicom-web'"),
        ({"TOTALSEG_SPEED": "slow"}, "TOTALSEG_SPEED: expected one of fast, fastest, full, got 'slow'"),
        ({"MERGE_BILATERAL": "sometimes"}, "MERGE_BILATERAL: expected a boolean (true/false, yes/no, 1/0), got 'sometimes'"),
        ({"STORE_TARGET": "s3"}, "STORE_TARGET: expected one of dicomweb, dimse, folder, got 's3'"),
    ],
)
def test_wrong_type_fails_with_exact_message(env, message):
    with pytest.raises(SettingsError) as info:
        settings(**env)
    assert str(info.value) == message


def test_secret_values_are_never_echoed():
    with pytest.raises(SettingsError) as info:
        settings(DICOMWEB_USERNAME="alice")
    assert str(info.value) == "DICOMWEB_PASSWORD: basic auth needs both DICOMWEB_USERNAME and DICOMWEB_PASSWORD"
    s = settings(DICOMWEB_USERNAME="alice", DICOMWEB_PASSWORD="hunter2", DICOMWEB_TOKEN="tok-123")
    assert s.dicomweb.password == "hunter2"
    assert "hunter2" not in repr(s) and "tok-123" not in repr(s)
    with pytest.raises(SettingsError) as info:
        settings(DICOMWEB_BACKOFF="x", DICOMWEB_PASSWORD="hunter2", DICOMWEB_USERNAME="a")
    assert "hunter2" not in str(info.value)
    assert all(opt.secret for opt in all_options() if "PASSWORD" in opt.env or "SECRET" in opt.env)


@pytest.mark.parametrize(
    ("raw", "expected"), [("True", True), ("False", False), ("true", True), ("0", False), ("yes", True)]
)
def test_upper_cased_workflow_form_booleans(raw, expected):
    # Kaapana upper-cases every workflow_form key into a string variable: "True"/"False".
    assert settings(MERGE_BILATERAL=raw, ALLOW_UNLINKED=raw).options.merge_bilateral is expected
    assert settings(ALLOW_UNLINKED=raw).options.allow_unlinked is expected


def test_workflow_form_choice_is_case_insensitive_and_empty_means_unset():
    s = settings(TOTALSEG_SPEED="FULL", LATERALITY="", ORGAN="  kidney ")
    assert s.options.totalseg_speed == "full"
    assert s.options.laterality is None
    assert s.options.organ == "kidney"


def test_the_workflow_form_wins_over_the_environment_as_on_kaapana(tmp_path: Path):
    # KaapanaBaseOperator.execute writes every workflow_form key over the operator's
    # env_vars (../shared/kaapana-0.6.0, KaapanaBaseOperator.py, "for key, value in
    # workflow_form.items()"), then the run layout: radpath's one rule is that order.
    (tmp_path / "conf").mkdir()
    form = {"merge_bilateral": False, "totalseg_speed": "full", "organ": "lung", "seg_encoder": None,
            "batch_name": "../elsewhere"}
    (tmp_path / "conf" / "conf.json").write_text(json.dumps({"workflow_form": form}))
    s = settings(WORKFLOW_DIR=str(tmp_path), ORGAN="kidney", SEG_ENCODER="highdicom", BATCH_NAME="batch")
    assert s.options.merge_bilateral is False
    assert s.options.totalseg_speed == "full"
    assert s.options.organ == "lung"  # the form over the environment
    assert s.options.seg_encoder == "highdicom"  # a null in the form sets nothing
    assert s.layout.batch_name == "batch"  # the layout is the runtime's, never the form's
    assert s.conf["workflow_form"] == form


def test_one_precedence_rule_in_a_local_airflow_task_and_in_process(tmp_path: Path, monkeypatch):
    """The same run conf, process environment and operator defaults give the same options
    to a plain Airflow task (LocalStageOperator) and to the main job's in-process run."""
    from datetime import datetime

    from airflow import DAG
    from radpath_operators.LocalStageOperator import LocalStageOperator

    workflow = tmp_path / "run"
    (workflow / "conf").mkdir(parents=True)
    (workflow / "conf" / "conf.json").write_text(json.dumps({"workflow_form": {"organ": "liver",
                                                                                "merge_bilateral": False}}))
    for key, value in {"ORGAN": "spleen", "TOTALSEG_SPEED": "fastest", "SEG_ENCODER": "highdicom"}.items():
        monkeypatch.setenv(key, value)
    defaults = {"ORGAN": "lung", "TOTALSEG_SPEED": "full"}  # an operator's env_vars
    with DAG("precedence", start_date=datetime(2026, 1, 1), schedule=None):
        operator = LocalStageOperator(dag=None, name="segment", env_vars=defaults)
    in_airflow = Settings.from_env(operator.environment("run", workflow))
    in_process = Settings.from_env({**os.environ, **defaults, "WORKFLOW_DIR": str(workflow), "BATCH_NAME": "batch"})
    assert in_airflow.options == in_process.options
    options = in_airflow.options
    assert (options.organ, options.merge_bilateral, options.totalseg_speed, options.seg_encoder) == (
        "liver", False, "full", "highdicom")  # form, form, operator default, process environment


def test_bad_value_in_conf_names_the_variable(tmp_path: Path):
    (tmp_path / "conf").mkdir()
    (tmp_path / "conf" / "conf.json").write_text(json.dumps({"workflow_form": {"totalseg_speed": "warp"}}))
    with pytest.raises(SettingsError) as info:
        settings(WORKFLOW_DIR=str(tmp_path))
    assert str(info.value) == "TOTALSEG_SPEED: expected one of fast, fastest, full, got 'warp'"


def test_unreadable_conf_names_the_file(tmp_path: Path):
    (tmp_path / "conf").mkdir()
    (tmp_path / "conf" / "conf.json").write_text("{not json")
    with pytest.raises(SettingsError) as info:
        settings(WORKFLOW_DIR=str(tmp_path))
    assert info.value.variable == "WORKFLOW_DIR"
    assert "conf.json" in str(info.value)


@pytest.mark.parametrize(
    ("env", "mode"),
    [
        ({}, "none"),
        ({"DICOMWEB_TOKEN": "abc"}, "bearer"),
        ({"DICOMWEB_USERNAME": "u", "DICOMWEB_PASSWORD": "p"}, "basic"),
        (
            {"KAAPANA_PROJECT_USER_NAME": "u", "KAAPANA_PROJECT_USER_PASSWORD": "p", "KEYCLOAK_URL": "http://kc"},
            "keycloak",
        ),
    ],
)
def test_auth_mode_follows_the_credentials_given(env, mode):
    assert settings(**env).dicomweb.auth_mode == mode


def test_in_a_kaapana_pod_the_pacs_is_dicom_web_filter():
    """KaapanaBaseOperator gives every pod DICOM_WEB_FILTER_URL (copied from the scheduler's
    environment), the one PACS endpoint a project's pods may reach; DICOMWEB_URL wins."""
    kaapana = "http://dicom-web-filter-service.services.svc:8080"
    assert settings(DICOM_WEB_FILTER_URL=kaapana).dicomweb.url == kaapana
    assert settings(DICOM_WEB_FILTER_URL=kaapana, DICOMWEB_URL="http://pacs/dicom-web").dicomweb.url == \
        "http://pacs/dicom-web"
    assert settings().dicomweb.url is None


def test_the_viewer_address_may_come_from_the_run_conf(tmp_path: Path):
    (tmp_path / "conf").mkdir()
    (tmp_path / "conf" / "conf.json").write_text(json.dumps({"workflow_form": {"viewer_base_url": "https://kp.example"}}))
    assert settings(WORKFLOW_DIR=str(tmp_path)).options.viewer_base_url == "https://kp.example"
    assert settings().options.viewer_base_url == "http://localhost"
