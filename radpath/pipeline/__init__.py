"""The pipeline machinery: the stage table, the typed sections that pass between stages,
the per-element manifest and workspace, the batch runner, progress events, filling the
batch, and the stages themselves (:mod:`radpath.pipeline.runner.stages`)."""
