"""Records the pair as a KOS in the radiology study; link.json, QC picture, split view.

``radpath stage link`` in its container (Kaapana) or as a local subprocess."""

from radpath_operators.forms import platform_url
from radpath_operators.RadpathBaseOperator import (
    DEFAULT_REGISTRY,
    IN_KAAPANA,
    KAAPANA_BUILD_VERSION,
    RadpathBaseOperator,
    ctp_access,
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
        # The platform's address unless the run's form names one (a conf from Kaapana's CI,
        # or another DAG's trigger, may carry no form at all).
        viewer_base_url = viewer_base_url or (platform_url() if IN_KAAPANA else None)
        super().__init__(
            dag=dag,
            name=name,
            image=f"{DEFAULT_REGISTRY}/radpath-link:{KAAPANA_BUILD_VERSION}",
            ram_mem_mb=4000,
            **ctp_access({**kwargs, "env_vars": {**form_env(viewer_base_url=viewer_base_url), **(env_vars or {})}}),
        )
