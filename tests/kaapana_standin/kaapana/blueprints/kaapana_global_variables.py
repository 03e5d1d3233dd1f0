DEFAULT_REGISTRY = "registry.example.org/kaapana"
KAAPANA_BUILD_VERSION = "0.6.0-test"
AIRFLOW_WORKFLOW_DIR = "/kaapana/mounted/workflows/data"
