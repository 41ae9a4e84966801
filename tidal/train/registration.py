"""Registering the model the standard pipeline chose, with everything a reviewer asks for.

One tracked run per pipeline run holds the parameters and every candidate's scores (so
``tidal runs`` compares pipeline runs like any experiment). The model version gets:

- the training step's output bytes as they are (not a re-pickled copy), so the version's
  artifact hash is a step output and ``tidal lineage`` walks back from it to the data;
- a signature built from the schema (the serving layer validates requests against it);
- metrics overall and per slice, every candidate's scores, the gate verdict with its
  reasons, why this candidate was chosen, the ONNX export's outcome, the segments;
- the status ``blessed`` or ``vetoed`` and, for the first blessed version, ``@champion``.
"""

from __future__ import annotations

import math
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tidal.runtime.native import load_native

if TYPE_CHECKING:
    from tidal.project import Project
    from tidal.store.records import VersionRecord
    from tidal.train.gate import Verdict
    from tidal.train.standard import Candidate, Setup

CHAMPION = "champion"

#: schema type → Open Inference Protocol datatype
_DATATYPES = {"integer": "INT64", "float": "FP64", "boolean": "BOOL", "string": "BYTES",
              "datetime": "BYTES", "date": "BYTES"}


def signature(setup: Setup, classes: list[Any] | None = None) -> dict[str, Any]:
    """The inputs the model takes (name, datatype, whether missing values are accepted)
    and the outputs it gives, from the schema the pipeline validated the data with; for a
    classifier also its classes in probability-column order (an ONNX graph does not say
    them, so a replica serving ONNX would otherwise have to unpickle the native model)."""
    inputs = [{"name": name, "datatype": _DATATYPES.get(setup.schema.column(name).type,
                                                        "BYTES"),
               "nullable": bool(setup.schema.column(name).nullable)}
              for name in setup.features]
    target_type = _DATATYPES.get(setup.schema.column(setup.target).type, "BYTES")
    outputs = ([{"name": "label", "datatype": target_type},
                {"name": "probabilities", "datatype": "FP64"}]
               if setup.task == "classification" else
               [{"name": "prediction", "datatype": "FP64"}])
    described = {"inputs": inputs, "outputs": outputs, "task": setup.task}
    if setup.task == "classification" and classes is not None:
        described["classes"] = [c.item() if hasattr(c, "item") else c for c in classes]
    return described


def register_chosen(project: Project, setup: Setup, winner: Candidate, verdict: Verdict, *,
                    scores: dict[str, dict[str, Any]], why: str, onnx: dict[str, Any],
                    snapshot: dict[str, Any], pipeline_run: str,
                    segments: dict[str, Any] | None, first_champion: bool,
                    trained_until: str | None = None) -> VersionRecord:
    """Track the pipeline run, register the winner, set its status (and ``@champion``)."""
    config = project.settings.pipeline
    with project.start_run(setup.name, name=f"pipeline {pipeline_run}",
                           tags={"job": "tidal run", "pipeline_run": pipeline_run}) as run:
        run.log_params({
            "target": setup.target, "task": setup.task, "metric": setup.metric,
            "candidates": ",".join(setup.families), "seed": config.seed,
            "test_size": config.test_size, "search_budget": config.search_budget,
            "dataset_sha256": snapshot["sha256"], "rows": snapshot.get("rows", ""),
            "segments": ",".join(setup.segments), "chosen": winner.name})
        run.log_metrics({f"{name}.{key}": float(value) for name, values in scores.items()
                         for key, value in values.items() if _finite(value)})
        run.flush()
        data = project.artifacts.get_bytes(winner.sha256)  # verified
        classes = getattr(load_native(data), "classes_", None)
        version = _register_output(
            project, setup.name, data, run_id=run.id,
            signature=signature(setup, None if classes is None else list(classes)),
            metrics={"overall": winner.evaluation["metrics"], "metric": setup.metric,
                     "slices": winner.evaluation["slices"], "candidates": scores,
                     "gate": verdict.to_dict(), "chosen": {"family": winner.name, "why": why},
                     "onnx": onnx, "segments": segments,
                     # the last training row's time: later rows are unseen by this model
                     "trained_until": trained_until},
            dataset_hash=snapshot["sha256"],
            description=f"{winner.name} from pipeline run {pipeline_run}",
            reason=f"standard pipeline run {pipeline_run}")
    status = "blessed" if verdict.blessed else "vetoed"
    version = project.set_status(setup.name, version.version, status,
                                 reason="; ".join(verdict.reasons) or why)
    if verdict.blessed and first_champion:
        version = project.set_alias(setup.name, CHAMPION, version.version,
                                    reason="first blessed version")
    return version


def _register_output(project: Project, name: str, data: bytes, **details: Any) -> Any:
    from tidal.runtime.native import FLAVOR

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "model.pkl"
        path.write_bytes(data)
        return project.register_model(name, path=path, flavor=FLAVOR, **details)


def _finite(value: Any) -> bool:
    return (isinstance(value, int | float) and not isinstance(value, bool)
            and math.isfinite(value))
