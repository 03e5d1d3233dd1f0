"""The chosen CT/MR series → NIfTI (dcm2niix), slices mapped to instances.

``radpath stage nifti`` in its container (Kaapana) or as a local subprocess."""

from radpath_operators.RadpathBaseOperator import (
    DEFAULT_REGISTRY,
    KAAPANA_BUILD_VERSION,
    RadpathBaseOperator,
    form_env,
)


class NiftiOperator(RadpathBaseOperator):
    """The chosen CT/MR series → NIfTI (dcm2niix), slices mapped to instances."""

    def __init__(
        self,
        dag,
        name="nifti",
        env_vars=None,
        **kwargs,
    ):
        super().__init__(
            dag=dag,
            name=name,
            image=f"{DEFAULT_REGISTRY}/radpath-nifti:{KAAPANA_BUILD_VERSION}",
            env_vars={**form_env(), **(env_vars or {})},
            ram_mem_mb=4000,
            **kwargs,
        )
