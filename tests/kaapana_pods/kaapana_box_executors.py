"""STAND-IN for Airflow's KubernetesExecutor in the box (Kubernetes cannot run here).

Kaapana's KaapanaPythonBaseOperator sends the Python tasks of every DAG not tagged "service"
or "import" to the KubernetesExecutor, which runs each in a worker pod of the Airflow image
(``airflow tasks run ...``). Here that worker is a local process, started the way Airflow's
LocalExecutor starts one; the box configures it under Kaapana's executor name:
``AIRFLOW__CORE__EXECUTOR=LocalExecutor,KubernetesExecutor:kaapana_box_executors.KubernetesExecutorStandIn``.
"""

from airflow.executors.local_executor import LocalExecutor


class KubernetesExecutorStandIn(LocalExecutor):
    """A worker "pod" per task, as a local process."""
