"""TotalSegmentator on the NIfTI, only the organ's classes (GPU when present).

``radpath stage segment`` in its container (Kaapana) or as a local subprocess."""

from datetime import timedelta

from radpath_operators.RadpathBaseOperator import (
    DEFAULT_REGISTRY,
    IN_KAAPANA,
    KAAPANA_BUILD_VERSION,
    RadpathBaseOperator,
    form_env,
)

#: Where the official weights are in a Kaapana pod: the models volume is mounted at /models
#: in every pod (KaapanaBaseOperator), and the workflow chart's model installer unpacks
#: them here (helm/values.yaml, model_installer_chart.model_dir: the same path).
KAAPANA_WEIGHTS = "/models/radpath/totalsegmentator"


class SegmentOperator(RadpathBaseOperator):
    """TotalSegmentator on the NIfTI, only the organ's classes (GPU when present)."""

    def __init__(
        self,
        dag,
        name="segment",
        totalseg_speed=None,
        env_vars=None,
        **kwargs,
    ):
        super().__init__(
            dag=dag,
            name=name,
            image=f"{DEFAULT_REGISTRY}/radpath-segment:{KAAPANA_BUILD_VERSION}",
            env_vars={
                **({"TOTALSEG_WEIGHTS_PATH": KAAPANA_WEIGHTS} if IN_KAAPANA else {}),
                **form_env(totalseg_speed=totalseg_speed),
                **(env_vars or {}),
            },
            ram_mem_mb=16000, gpu_mem_mb=11000, execution_timeout=timedelta(hours=3),
            **kwargs,
        )
