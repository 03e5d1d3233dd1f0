"""Joins the organ's class masks, or keeps the side the slide names.

``radpath stage merge`` in its container (Kaapana) or as a local subprocess."""

from radpath_operators.RadpathBaseOperator import (
    DEFAULT_REGISTRY,
    KAAPANA_BUILD_VERSION,
    RadpathBaseOperator,
    form_env,
)


class MergeOperator(RadpathBaseOperator):
    """Joins the organ's class masks, or keeps the side the slide names."""

    def __init__(
        self,
        dag,
        name="merge",
        merge_bilateral=None,
        env_vars=None,
        **kwargs,
    ):
        super().__init__(
            dag=dag,
            name=name,
            image=f"{DEFAULT_REGISTRY}/radpath-merge:{KAAPANA_BUILD_VERSION}",
            env_vars={**form_env(merge_bilateral=merge_bilateral), **(env_vars or {})},
            ram_mem_mb=4000,
            **kwargs,
        )
