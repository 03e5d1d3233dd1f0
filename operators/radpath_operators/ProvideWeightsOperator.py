"""Kaapana only: TotalSegmentator's weights onto the run's project's own models volume,
before segment.

A project's pods mount their project's models volume (Kaapana's project-namespace chart
makes one per project), not the services namespace's volume that the model installer job
fills when the extension is installed. So, as Kaapana's own total-segmentator-v2 workflow
does with its GetZenodoModelOperator, each run provides the weights in a pod of its own:
radpath's model image unpacks the models the form's speed needs from the archives it was
built with (Kaapana's base-model-installer puts them there at build time) and downloads
nothing (processing-containers/totalsegmentator-models/files/provide_run_models.py).
"""

from radpath_operators.RadpathBaseOperator import (
    DEFAULT_REGISTRY,
    KAAPANA_BUILD_VERSION,
    RadpathBaseOperator,
    form_env,
)
from radpath_operators.SegmentOperator import KAAPANA_WEIGHTS


class ProvideWeightsOperator(RadpathBaseOperator):
    """The models a run at the form's speed needs, onto the project's models volume."""

    def __init__(self, dag, name="provide-weights", totalseg_speed=None, env_vars=None, **kwargs):
        super().__init__(
            dag=dag,
            name=name,
            image=f"{DEFAULT_REGISTRY}/radpath-totalsegmentator-models:{KAAPANA_BUILD_VERSION}",
            # the image's CMD, in its per-run mode (KaapanaBaseOperator runs the image's CMD)
            env_vars={"PROVIDE_FOR_RUN": "true", "MODEL_DIR": KAAPANA_WEIGHTS,
                      **form_env(totalseg_speed=totalseg_speed), **(env_vars or {})},
            ram_mem_mb=1000,
            **kwargs,
        )
