"""The base of radpath's operators: Kaapana's KaapanaBaseOperator where the ``kaapana``
plugin package is importable (a Kaapana platform), radpath's LocalStageOperator otherwise
(plain Airflow, ``radpath run``). Both take the same arguments; a stage operator only
names its stage, image, resources and options."""

from __future__ import annotations

from pathlib import Path

try:
    from kaapana.blueprints.kaapana_global_variables import (
        AIRFLOW_WORKFLOW_DIR,
        DEFAULT_REGISTRY,
        KAAPANA_BUILD_VERSION,
    )
    from kaapana.operators.KaapanaBaseOperator import KaapanaBaseOperator as RadpathBaseOperator

    IN_KAAPANA = True

    def run_data_root() -> Path:
        """Where run folders are, as Airflow's own processes see them."""
        return Path(AIRFLOW_WORKFLOW_DIR)

except ImportError:  # plain Airflow: the stage runs as a local subprocess
    from radpath_operators.LocalStageOperator import LocalStageOperator as RadpathBaseOperator
    from radpath_operators.LocalStageOperator import data_root as run_data_root

    DEFAULT_REGISTRY, KAAPANA_BUILD_VERSION = "local-only", "latest"
    IN_KAAPANA = False

__all__ = ["RadpathBaseOperator", "DEFAULT_REGISTRY", "KAAPANA_BUILD_VERSION", "IN_KAAPANA", "form_env",
           "run_data_root", "local_command"]


def local_command(command: str, kwargs: dict) -> dict:
    """``kwargs`` for an operator whose container runs ``radpath <command>`` (not a stage):
    standalone, the same command runs with this interpreter; on Kaapana the image's CMD."""
    if not IN_KAAPANA:
        import sys

        kwargs.setdefault("cmds", [sys.executable, "-m", "radpath.cli", command])
    return kwargs


def form_env(**options: object) -> dict[str, str]:
    """Operator-level defaults as the env vars a stage reads (None: not set, the workflow
    form or the stage's default decides)."""
    return {key.upper(): str(value).lower() if isinstance(value, bool) else str(value)
            for key, value in options.items() if value is not None}
