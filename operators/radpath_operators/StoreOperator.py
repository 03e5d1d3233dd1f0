"""Puts the pair in the PACS, each instance once (STOW-RS, or DIMSE to CTP in Kaapana).

``radpath stage store`` in its container (Kaapana) or as a local subprocess."""

from radpath_operators.RadpathBaseOperator import (
    DEFAULT_REGISTRY,
    KAAPANA_BUILD_VERSION,
    RadpathBaseOperator,
    ctp_access,
    form_env,
)


class StoreOperator(RadpathBaseOperator):
    """Puts the pair in the PACS, each instance once (STOW-RS, or DIMSE to CTP in Kaapana)."""

    def __init__(
        self,
        dag,
        name="store",
        store_target=None,
        env_vars=None,
        **kwargs,
    ):
        super().__init__(
            dag=dag,
            name=name,
            image=f"{DEFAULT_REGISTRY}/radpath-store:{KAAPANA_BUILD_VERSION}",
            ram_mem_mb=2000,
            **ctp_access({**kwargs, "env_vars": {**form_env(store_target=store_target), **(env_vars or {})}}),
        )
