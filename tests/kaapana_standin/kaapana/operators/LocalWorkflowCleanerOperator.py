"""Stand-in: Kaapana's LocalWorkflowCleanerOperator signature (removes the run folder)."""

from airflow.models import BaseOperator
from airflow.utils.trigger_rule import TriggerRule


class LocalWorkflowCleanerOperator(BaseOperator):
    def __init__(self, dag, name="workflow-cleaner", clean_workflow_dir=True, run_on_fail=False, **kwargs):
        super().__init__(dag=dag, task_id=name, trigger_rule=TriggerRule.ALL_DONE if run_on_fail
                         else TriggerRule.ALL_SUCCESS, **kwargs)
        self.clean_workflow_dir = clean_workflow_dir

    def execute(self, context):
        raise RuntimeError("stand-in: Kaapana's cleaner does not run outside Kaapana")
