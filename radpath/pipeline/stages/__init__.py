"""The pipeline's stages, registered by name (from :mod:`radpath.pipeline.stagetable`).

A stage is a module under ``radpath.pipeline.stages`` with a function of one batch element
(see :mod:`radpath.pipeline.batch`). The registry maps the stage name (as in ``radpath stage
<name>`` and the container ``radpath-<name>``) to its :class:`StageSpec` and imports the
module only when the stage runs, so listing stages or parsing a DAG never pulls in torch
or wsidicomizer.
"""

from __future__ import annotations

from radpath.pipeline.stagetable import STAGES, StageSpec

__all__ = ["PIPELINE", "REGISTRY", "StageSpec", "UnknownStage", "get", "in_pipeline_order"]

#: The stages' names in pipeline order.
PIPELINE: tuple[str, ...] = tuple(spec.name.value for spec in STAGES)

REGISTRY: dict[str, StageSpec] = {spec.name.value: spec for spec in STAGES}


class UnknownStage(KeyError):
    def __str__(self) -> str:
        known = ", ".join(REGISTRY) or "none yet"
        return f"unknown stage {self.args[0]!r} (registered: {known})"


def get(name: str) -> StageSpec:
    try:
        return REGISTRY[name]
    except KeyError:
        raise UnknownStage(name) from None


def in_pipeline_order() -> list[StageSpec]:
    """The stages in the pipeline's order."""
    return list(STAGES)
