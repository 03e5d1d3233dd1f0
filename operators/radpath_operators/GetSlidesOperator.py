"""radpath-wsi-import's input: one batch element per uploaded slide file (with its
sidecar or radpath-slides.csv) of SLIDES_FOLDER (``radpath get-slides``)."""

from radpath_operators.RadpathBaseOperator import (
    DEFAULT_REGISTRY,
    KAAPANA_BUILD_VERSION,
    RadpathBaseOperator,
    local_command,
)


class GetSlidesOperator(RadpathBaseOperator):
    """``radpath get-slides``: ``batch/<slide name>/get-slides``."""

    def __init__(self, dag, name="get-slides", **kwargs):
        super().__init__(
            dag=dag,
            name=name,
            image=f"{DEFAULT_REGISTRY}/radpath-get-slides:{KAAPANA_BUILD_VERSION}",
            ram_mem_mb=1000,
            **local_command("get-slides", kwargs),
        )
