"""radpath's Airflow operators: one per stage, each a thin subclass that names its stage,
image, resources and options (see RadpathBaseOperator for what they derive from)."""
