"""The base of radpath's operators: Kaapana's KaapanaBaseOperator on a Kaapana platform,
radpath's LocalStageOperator elsewhere (plain Airflow, ``radpath run``). Both take the same
arguments; a stage operator only names its stage, image, resources and options.

Which one is decided by Kaapana's environment, not by whether an import happens to work:
where the scheduler has Kaapana's variables (:data:`KAAPANA_MARKERS`) and Kaapana's
plugin does not import, parsing fails with the import error, instead of quietly running
every stage as a local process inside the scheduler.
"""

from __future__ import annotations

import os
from pathlib import Path

#: Variables Kaapana's Airflow scheduler always has (its scheduler_deployment.yaml) and a
#: plain Airflow does not.
KAAPANA_MARKERS = ("KAAPANA_BUILD_VERSION", "SERVICES_NAMESPACE", "DICOM_WEB_FILTER_URL")


class KaapanaPluginBroken(ImportError):
    """Kaapana's environment is there but its Airflow plugin does not import."""


def on_kaapana_platform() -> bool:
    return any(os.environ.get(name) for name in KAAPANA_MARKERS)


try:
    from kaapana.blueprints.kaapana_global_variables import (
        AIRFLOW_WORKFLOW_DIR,
        DEFAULT_REGISTRY,
        KAAPANA_BUILD_VERSION,
    )
    from kaapana.blueprints.kaapana_utils import generate_run_id
    from kaapana.operators.KaapanaBaseOperator import KaapanaBaseOperator as RadpathBaseOperator
    from kaapana.operators.KaapanaPythonBaseOperator import KaapanaPythonBaseOperator

    IN_KAAPANA = True

    def run_data_root() -> Path:
        """Where run folders are, as Airflow's own processes see them."""
        return Path(AIRFLOW_WORKFLOW_DIR)

except ImportError as error:  # plain Airflow: the stage runs as a local subprocess
    if on_kaapana_platform():
        present = ", ".join(name for name in KAAPANA_MARKERS if os.environ.get(name))
        raise KaapanaPluginBroken(
            f"radpath: this Airflow has Kaapana's environment ({present}) but Kaapana's plugin does not import: "
            f"{type(error).__name__}: {error}. radpath's operators will not fall back to local processes here; "
            "repair the plugin (Kaapana's airflow-plugins volume) or unset those variables for a plain Airflow"
        ) from error
    from radpath_operators.LocalStageOperator import LocalStageOperator as RadpathBaseOperator
    from radpath_operators.LocalStageOperator import data_root as run_data_root

    DEFAULT_REGISTRY, KAAPANA_BUILD_VERSION = "local-only", "latest"
    IN_KAAPANA = False
    generate_run_id = KaapanaPythonBaseOperator = None  # Kaapana's alone

__all__ = ["RadpathBaseOperator", "DEFAULT_REGISTRY", "KAAPANA_BUILD_VERSION", "IN_KAAPANA", "form_env",
           "run_data_root", "local_command", "ctp_access", "services_namespace", "generate_run_id",
           "KaapanaPythonBaseOperator"]


def services_namespace() -> str:
    """Kaapana's services namespace (the scheduler's SERVICES_NAMESPACE)."""
    return os.environ.get("SERVICES_NAMESPACE", "services")

#: CTP's DICOM port; its service is ctp-dicom-service.<services namespace>.svc (Kaapana's
#: DcmSendOperator defaults).
CTP_PORT = 11112


def ctp_access(kwargs: dict) -> dict:
    """``kwargs`` for an operator whose container sends DICOM to Kaapana's CTP: DIMSE as the
    default store target (as Kaapana's DcmSendOperator sends; the run's form may say
    otherwise), CTP's address (DcmSendOperator's defaults) and the pod label without which
    the project namespace's network policy drops the connection (``network-access-ctp``).
    Standalone there is no CTP: the store target comes from the settings."""
    if IN_KAAPANA:
        kwargs["labels"] = {**(kwargs.get("labels") or {}), "network-access-ctp": "true"}
        kwargs["env_vars"] = {
            "STORE_TARGET": "dimse",
            "DIMSE_HOST": f"ctp-dicom-service.{services_namespace()}.svc",
            "DIMSE_PORT": str(CTP_PORT),
            **(kwargs.get("env_vars") or {}),
        }
    return kwargs


def local_command(command: str, kwargs: dict) -> dict:
    """``kwargs`` for an operator whose container runs ``radpath <command>`` (not a stage):
    standalone, the same command runs with this interpreter; on Kaapana the image's CMD."""
    if not IN_KAAPANA:
        import sys

        kwargs.setdefault("cmds", [sys.executable, "-m", "radpath", command])
    return kwargs


def form_env(**options: object) -> dict[str, str]:
    """Operator-level defaults as the env vars a stage reads (None: not set, the workflow
    form or the stage's default decides)."""
    return {key.upper(): str(value).lower() if isinstance(value, bool) else str(value)
            for key, value in options.items() if value is not None}
