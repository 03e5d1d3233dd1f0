"""radpath-batch's input: slides in the PACS whose patient has CT/MR and no radpath link
yet, at most BATCH_LIMIT per run, retrieved into the batch layout (``radpath
find-unlinked``)."""

from radpath_operators.RadpathBaseOperator import (
    DEFAULT_REGISTRY,
    IN_KAAPANA,
    KAAPANA_BUILD_VERSION,
    RadpathBaseOperator,
    form_env,
)


class FindUnlinkedOperator(RadpathBaseOperator):
    """``radpath find-unlinked``: ``batch/<slide series>/find-unlinked``."""

    def __init__(self, dag, name="find-unlinked", batch_limit=None, env_vars=None, **kwargs):
        if not IN_KAAPANA:  # the container's CMD, run locally
            import sys

            kwargs.setdefault("cmds", [sys.executable, "-m", "radpath.cli", "find-unlinked"])
        super().__init__(
            dag=dag,
            name=name,
            image=f"{DEFAULT_REGISTRY}/radpath-find-unlinked:{KAAPANA_BUILD_VERSION}",
            env_vars={**form_env(batch_limit=batch_limit), **(env_vars or {})},
            ram_mem_mb=1000,
            **kwargs,
        )
