"""Per-segment training as steps of the standard pipeline (``[data] segments``).

The standard pipeline first picks the best global family; then this stage trains that
family once per segment (with the fallback rules of :mod:`tidal.train.segments`) and the
result competes with the global model on the same test rows. Three steps, so the stage
is cached and traced like the rest of the pipeline:

- :func:`plan_segment_training` sorts the training rows by the hierarchy, cuts the
  trainable segments into batches and pickles the unfitted candidate once;
- :data:`SEGMENT_PARTS` copies of :func:`fit_segment_part` each fit every
  ``SEGMENT_PARTS``-th batch, in parallel on the executor (part 0 also fits the global
  model);
- :func:`assemble_segments` puts the fitted models into one :class:`SegmentedModel`, the
  artifact that is registered and that routes each row by its segment;
  :func:`describe_segments` summarises it for the model version's record.

The number of parts is a constant rather than the machine's core count so that the cache
keys, and therefore the model's hash, do not depend on the machine that trained it.
"""

from __future__ import annotations

import pickle
from typing import Any

from tidal.pipeline.step import step

#: fit steps per segmented training (enough to keep an 8-core machine busy)
SEGMENT_PARTS = 8


@step
def plan_segment_training(snapshot: dict[str, Any], split: Any, family: str, task: str,
                          target: str, numeric: list[str], categorical: list[str],
                          segment_columns: list[str], min_rows: int, seed: int,
                          artifact_root: str) -> dict[str, Any]:
    """The batches of segments to fit and the unfitted candidate they are fitted with."""
    from tidal.train.candidates import make_candidate
    from tidal.train.segments import plan_batches
    from tidal.train.steps import labelled_rows

    train = labelled_rows(snapshot, split, "train", target, artifact_root)
    plan = plan_batches(train, target, numeric + categorical, list(segment_columns),
                        min_rows, None, max(1, SEGMENT_PARTS // 4))
    template = pickle.dumps(make_candidate(family, task, numeric, categorical, seed=seed),
                            protocol=5)
    return {"plan": plan, "template": template, "segment_columns": list(segment_columns),
            "features": numeric + categorical, "min_rows": min_rows}


@step
def fit_segment_part(planned: dict[str, Any], part: int, parts: int) -> list[dict[str, Any]]:
    """Fit every ``parts``-th batch starting at ``part``; part 0 also fits the global model."""
    from tidal.train.segments import fit_batch

    plan, template = planned["plan"], planned["template"]
    outputs = [fit_batch(template, batch.X, batch.y, batch.segments)
               for batch in plan.batches[part::parts]]
    if part == 0:
        outputs.append(fit_batch(template, plan.global_X, plan.global_y,
                                 [((), 0, plan.rows)]))
    return outputs


@step
def assemble_segments(planned: dict[str, Any], parts: list[Any]) -> Any:
    """One :class:`SegmentedModel` from the fitted parts (the registered artifact)."""
    from tidal.train.segments import SegmentedModel

    model = SegmentedModel(planned["segment_columns"], planned["features"],
                           min_rows=planned["min_rows"])
    model.assemble(planned["plan"], [output for part in parts for output in part])
    return model


@step
def describe_segments(model: Any) -> dict[str, Any]:
    """How many segments got a model at each level (kept apart from the model so that a
    cached run reads it without unpickling every segment's estimator)."""
    return {"levels": model.training_["levels"], "rows": model.training_["rows"]}


__all__ = ["SEGMENT_PARTS", "assemble_segments", "describe_segments", "fit_segment_part",
           "plan_segment_training"]
