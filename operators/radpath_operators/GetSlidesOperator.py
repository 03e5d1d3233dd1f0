"""radpath-wsi-import's input: one batch element per uploaded slide file (with its
sidecar or radpath-slides.csv) of SLIDES_FOLDER (``radpath get-slides``)."""

from radpath_operators.RadpathBaseOperator import (
    DEFAULT_REGISTRY,
    IN_KAAPANA,
    KAAPANA_BUILD_VERSION,
    RadpathBaseOperator,
)


class GetSlidesOperator(RadpathBaseOperator):
    """``radpath get-slides``: ``batch/<slide name>/get-slides``."""

    def __init__(self, dag, name="get-slides", **kwargs):
        if not IN_KAAPANA:  # the container's CMD, run locally
            import sys

            kwargs.setdefault("cmds", [sys.executable, "-m", "radpath.cli", "get-slides"])
        super().__init__(
            dag=dag,
            name=name,
            image=f"{DEFAULT_REGISTRY}/radpath-get-slides:{KAAPANA_BUILD_VERSION}",
            ram_mem_mb=1000,
            **kwargs,
        )
