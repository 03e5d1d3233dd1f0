"""radpath and radpath_operators. Everything else is in setup.cfg.

The operators package sits in ``operators/`` (the layout of a Kaapana extension, whose
DAG image copies it beside the DAG files); it is installed with radpath so that a plain
Airflow pointed at ``dags/`` imports it with no PYTHONPATH of its own.
"""

from setuptools import find_packages, setup

setup(
    packages=[*find_packages(include=["radpath", "radpath.*"]), "radpath_operators"],
    package_dir={"radpath_operators": "operators/radpath_operators"},
)
