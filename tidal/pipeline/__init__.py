"""Pipelines: ``@tidal.step`` functions composed into a DAG, cached and traced.

    import tidal

    @tidal.step
    def load(path: str): ...

    @tidal.step
    def fit(frame, alpha: float = 0.1): ...

    def train(path: str):
        fit(load(tidal.File(path)), alpha=0.1)

    result = tidal.run_pipeline(tidal.Pipeline.build(train, "data.csv"))
    # run it again: every step comes from the cache
"""

from tidal.pipeline.graph import Node, Pipeline
from tidal.pipeline.keys import File, Location, Stored
from tidal.pipeline.runner import PipelineResult, StepFailedError, run_pipeline
from tidal.pipeline.step import Step, step

__all__ = ["File", "Location", "Node", "Pipeline", "PipelineResult", "Step",
           "StepFailedError", "Stored", "run_pipeline", "step"]
