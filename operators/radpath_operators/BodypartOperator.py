"""Resolves the slide's organ and side through anatomy/master.json.

``radpath stage bodypart`` in its container (Kaapana) or as a local subprocess."""

from radpath_operators.RadpathBaseOperator import (
    DEFAULT_REGISTRY,
    KAAPANA_BUILD_VERSION,
    RadpathBaseOperator,
    form_env,
)


class BodypartOperator(RadpathBaseOperator):
    """Resolves the slide's organ and side through anatomy/master.json."""

    def __init__(
        self,
        dag,
        name="bodypart",
        organ=None,
        laterality=None,
        env_vars=None,
        **kwargs,
    ):
        super().__init__(
            dag=dag,
            name=name,
            image=f"{DEFAULT_REGISTRY}/radpath-bodypart:{KAAPANA_BUILD_VERSION}",
            env_vars={**form_env(organ=organ, laterality=laterality), **(env_vars or {})},
            ram_mem_mb=500,
            **kwargs,
        )
