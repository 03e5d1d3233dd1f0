"""The mask as a DICOM SEG on the source series' slices (dcmqi).

``radpath stage seg-encode`` in its container (Kaapana) or as a local subprocess."""

from radpath_operators.RadpathBaseOperator import (
    DEFAULT_REGISTRY,
    KAAPANA_BUILD_VERSION,
    RadpathBaseOperator,
    form_env,
)


class SegEncodeOperator(RadpathBaseOperator):
    """The mask as a DICOM SEG on the source series' slices (dcmqi)."""

    def __init__(
        self,
        dag,
        name="seg-encode",
        seg_encoder=None,
        env_vars=None,
        **kwargs,
    ):
        super().__init__(
            dag=dag,
            name=name,
            image=f"{DEFAULT_REGISTRY}/radpath-seg-encode:{KAAPANA_BUILD_VERSION}",
            env_vars={**form_env(seg_encoder=seg_encoder), **(env_vars or {})},
            ram_mem_mb=8000,
            **kwargs,
        )
