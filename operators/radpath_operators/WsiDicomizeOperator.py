"""Slides (vendor formats) → DICOM WSI carrying the patient's identity (wsidicomizer).

``radpath stage wsi-dicomize`` in its container (Kaapana) or as a local subprocess."""

from radpath_operators.RadpathBaseOperator import (
    DEFAULT_REGISTRY,
    KAAPANA_BUILD_VERSION,
    RadpathBaseOperator,
    form_env,
)


class WsiDicomizeOperator(RadpathBaseOperator):
    """Slides (vendor formats) → DICOM WSI carrying the patient's identity (wsidicomizer)."""

    def __init__(
        self,
        dag,
        name="wsi-dicomize",
        allow_unlinked=None,
        slide_workers=None,
        slide_transcoding=None,
        env_vars=None,
        **kwargs,
    ):
        super().__init__(
            dag=dag,
            name=name,
            image=f"{DEFAULT_REGISTRY}/radpath-wsi-dicomize:{KAAPANA_BUILD_VERSION}",
            env_vars={**form_env(allow_unlinked=allow_unlinked, slide_workers=slide_workers, slide_transcoding=slide_transcoding), **(env_vars or {})},
            ram_mem_mb=8000, cpu_millicores=4000,
            **kwargs,
        )
