"""KaapanaBaseOperator's signature (Kaapana 0.6), recording its arguments."""

from datetime import timedelta

from airflow.models import BaseOperator
from airflow.utils.trigger_rule import TriggerRule


class KaapanaBaseOperator(BaseOperator):
    def __init__(self, dag, name, image=None, input_operator=None, operator_in_dir=None, operator_out_dir=None,
                 task_id=None, parallel_id=None, env_vars=None, cmds=None, arguments=None,
                 execution_timeout=timedelta(minutes=90), ram_mem_mb=500, ram_mem_mb_lmt=None, cpu_millicores=None,
                 gpu_mem_mb=None, retries=1, retry_delay=timedelta(seconds=30), trigger_rule=TriggerRule.ALL_SUCCESS,
                 batch_name=None, delete_output_on_start=True, labels=None, display_name=None, **kwargs):
        if input_operator is not None and operator_in_dir is not None:
            raise ValueError("input_operator and operator_in_dir are exclusive")
        task_id = task_id or (f"{name}-{parallel_id}" if parallel_id else name)
        self.name, self.image, self.env_vars = name, image, env_vars or {}
        self.operator_in_dir = input_operator.operator_out_dir if input_operator is not None else operator_in_dir
        self.operator_out_dir = operator_out_dir or task_id
        self.ram_mem_mb, self.ram_mem_mb_lmt, self.cpu_millicores, self.gpu_mem_mb = (
            ram_mem_mb, ram_mem_mb_lmt, cpu_millicores, gpu_mem_mb)
        self.cmds, self.arguments, self.batch_name = cmds, arguments, batch_name
        super().__init__(dag=dag, task_id=task_id, execution_timeout=execution_timeout, retries=retries,
                         retry_delay=retry_delay, trigger_rule=trigger_rule, **kwargs)

    def execute(self, context):
        raise RuntimeError("the Kaapana stand-in does not run pods")
