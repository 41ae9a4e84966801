"""Running a pipeline: cached steps are reused, the rest run on an executor.

Steps run as soon as their inputs exist, so independent branches (a fan-out over
candidates or segments) run in parallel on the process executor. Before running a step
the runner computes its cache key (:mod:`tidal.pipeline.keys`); when the lineage store
holds a finished execution with that key and its output is still in the artifact store,
the output is reused. Every execution, reused or not, is recorded with its inputs and
output hashes, which is the lineage a model version can be traced back through.

A failing step fails the run with that step's error. Steps already finished stay
recorded, so the next run starts from them; steps that depended on the failure are not
started.
"""

from __future__ import annotations

from concurrent.futures import FIRST_COMPLETED, Future, wait
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from tidal.core.errors import TidalError
from tidal.pipeline.executors import InputRef, Job, Outcome, execute, make_executor
from tidal.pipeline.graph import Node, Pipeline
from tidal.pipeline.keys import Stored, cache_key, fingerprint, runtime_value
from tidal.pipeline.progress import PipelineProgress

if TYPE_CHECKING:
    from rich.console import Console

    from tidal.project import Project


class StepFailedError(TidalError):
    """A step raised: the run failed with the step's error (its traceback in ``trace``)."""

    def __init__(self, step: str, error_type: str, message: str, trace: str) -> None:
        self.step, self.error_type, self.trace = step, error_type, trace
        super().__init__(f"step {step!r} failed: {error_type}: {message}")


@dataclass
class StepResult:
    label: str
    step: str
    cache_key: str
    status: str  # FINISHED, CACHED, FAILED or SKIPPED (upstream failed)
    output_sha256: str | None = None
    output_size: int = 0
    seconds: float = 0.0
    error: str | None = None


@dataclass
class PipelineResult:
    """The outcome of a run: one :class:`StepResult` per node, outputs loadable by node."""

    pipeline: str
    run_id: str
    steps: dict[str, StepResult] = field(default_factory=dict)
    _project: Any = None

    @property
    def executed(self) -> list[str]:
        return [label for label, step in self.steps.items() if step.status == "FINISHED"]

    @property
    def cached(self) -> list[str]:
        return [label for label, step in self.steps.items() if step.status == "CACHED"]

    def output(self, node: Node | str) -> Any:
        """The value a step returned (read back from the artifact store, verified)."""
        from tidal.runtime.native import load_native

        label = node.label if isinstance(node, Node) else node
        result = self.steps[label]
        if result.output_sha256 is None:
            raise TidalError(f"step {label!r} has no output ({result.status})")
        return load_native(self._project.artifacts.get_bytes(result.output_sha256))


def run_pipeline(pipeline: Pipeline, *, project: Project | None = None,
                 executor: str = "process", max_workers: int | None = None,
                 ray_address: str | None = None,
                 progress: bool | Console | None = None) -> PipelineResult:
    """Run ``pipeline`` in ``project`` (default: the current folder's project).

    ``ray_address``: the Ray cluster for ``executor="ray"`` (else ``$TIDAL_RAY_ADDRESS``,
    else Ray's own default). ``progress``: draw progress on stderr (``None``: when it is
    a terminal), or on the given rich ``Console``.
    """
    import tidal
    from tidal.core.codeinfo import code_info

    project = project or tidal.get_project()
    pool = make_executor(executor, max_workers, ray_address)
    code = code_info(str(project.settings.project_dir))
    record = project.lineage.start_pipeline_run(
        pipeline.name, params=pipeline.params, code_commit=code.git_commit,
        code_dirty_hash=code.git_dirty_hash, actor=project.settings.actor,
        now=project.clock.now())
    result = PipelineResult(pipeline.name, record.id, _project=project)
    outputs: dict[int, str] = {}
    failure: StepFailedError | None = None
    running: dict[Future[Outcome], tuple[Node, str, dict[str, Any], dict[str, str], float]] = {}
    waiting = list(pipeline.nodes)
    display = PipelineProgress(pipeline.name, len(pipeline.nodes), enabled=progress)
    display.start()
    try:
        while waiting or running:
            progressed = True
            while progressed and failure is None:
                progressed = False
                for node in [n for n in waiting if all(u.index in outputs for u in n.upstream)]:
                    waiting.remove(node)
                    progressed = True
                    params, inputs = _identity(node, outputs)
                    key = cache_key(node.step.name, node.step.code_hash, params, inputs)
                    if _reuse(project, record.id, node, key, params, inputs, outputs, result):
                        display.finished(node.label, "CACHED")
                        continue
                    job = Job(node.step, _job_args(node.args, outputs),
                              {k: _job_value(v, outputs) for k, v in node.kwargs.items()},
                              project.settings.artifact_root)
                    running[pool.submit(execute, job)] = (node, key, params, inputs,
                                                          project.clock.now())
                    display.started(node.label)
            if not running:
                break
            finished, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in finished:
                node, key, params, inputs, started = running.pop(future)
                outcome = future.result()
                status = "FINISHED" if outcome.error is None else "FAILED"
                project.lineage.record_step(
                    record.id, step=node.step.name, cache_key=key,
                    code_hash=node.step.code_hash, params=params, inputs=_named(inputs),
                    output_sha256=outcome.sha256, output_size=outcome.size, cached=False,
                    status=status, started_at=started, ended_at=project.clock.now(),
                    error=outcome.trace)
                result.steps[node.label] = StepResult(
                    node.label, node.step.name, key, status, outcome.sha256, outcome.size,
                    outcome.seconds, outcome.error)
                display.finished(node.label, status, outcome.seconds)
                if outcome.error is None:
                    outputs[node.index] = outcome.sha256  # type: ignore[assignment]
                elif failure is None:
                    failure = StepFailedError(node.label, outcome.error_type or "Error",
                                              outcome.error, outcome.trace or "")
    except BaseException as exc:  # a bad parameter, Ctrl-C...: the run is over, say so
        project.lineage.finish_pipeline_run(record.id, status="FAILED", error=str(exc),
                                            now=project.clock.now())
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        display.stop()
    for node in waiting:
        result.steps[node.label] = StepResult(node.label, node.step.name, "", "SKIPPED")
    project.lineage.finish_pipeline_run(
        record.id, status="FAILED" if failure else "FINISHED",
        error=str(failure) if failure else None, now=project.clock.now())
    if failure is not None:
        raise failure
    return result


def _identity(node: Node, outputs: dict[int, str]) -> tuple[dict[str, Any], dict[str, str]]:
    """The node's parameters (canonical) and inputs (name → sha256), by argument name."""
    bound = node.step.signature.bind(*node.args, **node.kwargs)
    params: dict[str, Any] = {}
    inputs: dict[str, str] = {}
    for name, value in bound.arguments.items():
        if isinstance(value, Node):
            inputs[name] = outputs[value.index]
        elif isinstance(value, Stored):
            inputs[name] = value.sha256
        elif isinstance(value, list | tuple) and any(isinstance(v, Node) for v in value):
            for i, item in enumerate(value):
                if isinstance(item, Node):
                    inputs[f"{name}[{i}]"] = outputs[item.index]
                else:
                    params[f"{name}[{i}]"] = fingerprint(item, f"{node.label}.{name}[{i}]")
        else:
            params[name] = fingerprint(value, f"{node.label}.{name}")
    return params, inputs


def _reuse(project: Project, run_id: str, node: Node, key: str, params: dict[str, Any],
           inputs: dict[str, str], outputs: dict[int, str], result: PipelineResult) -> bool:
    """Take a cached execution's output when there is one and its bytes still exist."""
    if not node.step.cache:
        return False
    previous = project.lineage.cached_output(key)
    if previous is None or not project.artifacts.exists(previous.output_sha256):
        return False
    now = project.clock.now()
    project.lineage.record_step(
        run_id, step=node.step.name, cache_key=key, code_hash=node.step.code_hash,
        params=params, inputs=_named(inputs), output_sha256=previous.output_sha256,
        output_size=previous.output_size, cached=True, status="FINISHED", started_at=now,
        ended_at=now)
    outputs[node.index] = previous.output_sha256
    result.steps[node.label] = StepResult(node.label, node.step.name, key, "CACHED",
                                          previous.output_sha256, previous.output_size)
    return True


def _job_value(value: Any, outputs: dict[int, str]) -> Any:
    if isinstance(value, Node):
        return InputRef(outputs[value.index])
    if isinstance(value, Stored):
        return InputRef(value.sha256)
    if isinstance(value, list | tuple) and any(isinstance(v, Node) for v in value):
        return type(value)(_job_value(v, outputs) for v in value)
    return runtime_value(value)


def _job_args(args: tuple[Any, ...], outputs: dict[int, str]) -> tuple[Any, ...]:
    return tuple(_job_value(value, outputs) for value in args)


def _named(inputs: dict[str, str]) -> list[dict[str, str]]:
    return [{"name": name, "sha256": sha} for name, sha in inputs.items()]


__all__ = ["PipelineResult", "StepFailedError", "StepResult", "run_pipeline"]
