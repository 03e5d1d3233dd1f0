"""Each segment's volume and radiomics features (pyradiomics), as a DICOM SR beside the SEG.

``radpath stage quantify`` in its container (Kaapana) or as a local subprocess."""

from radpath_operators.RadpathBaseOperator import (
    DEFAULT_REGISTRY,
    KAAPANA_BUILD_VERSION,
    RadpathBaseOperator,
    form_env,
)


class QuantifyOperator(RadpathBaseOperator):
    """Each segment's volume and radiomics features, as a DICOM SR (TID 1500)."""

    def __init__(
        self,
        dag,
        name="quantify",
        env_vars=None,
        **kwargs,
    ):
        super().__init__(
            dag=dag,
            name=name,
            image=f"{DEFAULT_REGISTRY}/radpath-quantify:{KAAPANA_BUILD_VERSION}",
            env_vars={**form_env(), **(env_vars or {})},
            ram_mem_mb=8000,
            **kwargs,
        )
