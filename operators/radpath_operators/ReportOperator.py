"""The run's verdict: every element's status, last stage and reason in the task log; the
task fails when any element failed (after all of them have had their chance)."""

from airflow.utils.trigger_rule import TriggerRule
from radpath_operators.RadpathBaseOperator import (
    DEFAULT_REGISTRY,
    IN_KAAPANA,
    KAAPANA_BUILD_VERSION,
    RadpathBaseOperator,
)


class ReportOperator(RadpathBaseOperator):
    """``radpath report`` over the run's batch."""

    def __init__(self, dag, name="report", **kwargs):
        if not IN_KAAPANA:  # the container's CMD, run locally
            import sys

            kwargs.setdefault("cmds", [sys.executable, "-m", "radpath.cli", "report"])
        super().__init__(
            dag=dag,
            name=name,
            image=f"{DEFAULT_REGISTRY}/radpath-report:{KAAPANA_BUILD_VERSION}",
            trigger_rule=TriggerRule.ALL_DONE,
            ram_mem_mb=500,
            **kwargs,
        )
