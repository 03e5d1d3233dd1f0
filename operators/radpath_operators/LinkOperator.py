"""Records the pair as a KOS in the radiology study; link.json, QC picture, split view.

``radpath stage link`` in its container (Kaapana) or as a local subprocess."""

from radpath_operators.RadpathBaseOperator import (
    DEFAULT_REGISTRY,
    KAAPANA_BUILD_VERSION,
    RadpathBaseOperator,
    form_env,
)


class LinkOperator(RadpathBaseOperator):
    """Records the pair as a KOS in the radiology study; link.json, QC picture, split view."""

    def __init__(
        self,
        dag,
        name="link",
        viewer_base_url=None,
        env_vars=None,
        **kwargs,
    ):
        super().__init__(
            dag=dag,
            name=name,
            image=f"{DEFAULT_REGISTRY}/radpath-link:{KAAPANA_BUILD_VERSION}",
            env_vars={**form_env(viewer_base_url=viewer_base_url), **(env_vars or {})},
            ram_mem_mb=4000,
            **kwargs,
        )
