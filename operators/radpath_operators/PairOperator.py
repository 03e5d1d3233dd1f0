"""Finds the other side of the pair in the PACS (QIDO-RS) and chooses the series to segment.

``radpath stage pair`` in its container (Kaapana) or as a local subprocess."""

from radpath_operators.RadpathBaseOperator import (
    DEFAULT_REGISTRY,
    KAAPANA_BUILD_VERSION,
    RadpathBaseOperator,
    form_env,
)


class PairOperator(RadpathBaseOperator):
    """Finds the other side of the pair in the PACS (QIDO-RS) and chooses the series to segment."""

    def __init__(
        self,
        dag,
        name="pair",
        env_vars=None,
        **kwargs,
    ):
        super().__init__(
            dag=dag,
            name=name,
            image=f"{DEFAULT_REGISTRY}/radpath-pair:{KAAPANA_BUILD_VERSION}",
            env_vars={**form_env(), **(env_vars or {})},
            ram_mem_mb=1000,
            **kwargs,
        )
