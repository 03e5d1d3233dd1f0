"""The run's verdict: every element's status, last stage and reason in the task log; the
task fails when any element failed (after all of them have had their chance)."""

from airflow.utils.trigger_rule import TriggerRule

from radpath_operators.RadpathBaseOperator import (
    DEFAULT_REGISTRY,
    KAAPANA_BUILD_VERSION,
    RadpathBaseOperator,
    local_command,
)


class ReportOperator(RadpathBaseOperator):
    """``radpath report`` over the run's batch."""

    def __init__(self, dag, name="report", **kwargs):
        super().__init__(
            dag=dag,
            name=name,
            image=f"{DEFAULT_REGISTRY}/radpath-report:{KAAPANA_BUILD_VERSION}",
            trigger_rule=TriggerRule.ALL_DONE,
            ram_mem_mb=500,
            **local_command("report", kwargs),
        )
