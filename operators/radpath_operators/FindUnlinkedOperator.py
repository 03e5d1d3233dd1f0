"""radpath-batch's input: slides in the PACS whose patient has CT/MR and no radpath link
yet, at most BATCH_LIMIT per run, listed for the trigger-map task (``radpath
find-unlinked``; nothing is retrieved: each slide's radpath-map run fetches its own)."""

from radpath_operators.RadpathBaseOperator import (
    DEFAULT_REGISTRY,
    KAAPANA_BUILD_VERSION,
    RadpathBaseOperator,
    form_env,
    local_command,
)


class FindUnlinkedOperator(RadpathBaseOperator):
    """``radpath find-unlinked``: ``find-unlinked/unlinked-slides.json`` in the run folder."""

    def __init__(self, dag, name="find-unlinked", batch_limit=None, env_vars=None, **kwargs):
        super().__init__(
            dag=dag,
            name=name,
            image=f"{DEFAULT_REGISTRY}/radpath-find-unlinked:{KAAPANA_BUILD_VERSION}",
            env_vars={**form_env(batch_limit=batch_limit), **(env_vars or {})},
            ram_mem_mb=1000,
            **local_command("find-unlinked", kwargs),
        )
