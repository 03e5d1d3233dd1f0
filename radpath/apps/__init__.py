"""What people run: the ``radpath`` command, the main job (under a local Airflow or
in-process), the demo, the viewer and the benchmarks."""
