"""A pipeline is the graph of step calls made while it is defined.

    with tidal.Pipeline("train") as pipeline:
        data = load("data.csv")
        model = fit(data, alpha=0.1)

Each step call adds a :class:`Node` whose arguments are plain values (parameters) or
other nodes (the outputs of earlier steps). Nodes can only refer to nodes created
before them, so creation order is already a valid execution order and cycles cannot be
written. ``Pipeline.build(function, *args)`` defines one from a function.
"""

from __future__ import annotations

import contextvars
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from tidal.core.errors import ValidationError

if TYPE_CHECKING:
    from tidal.pipeline.step import Step

_building: contextvars.ContextVar[Pipeline | None] = contextvars.ContextVar(
    "tidal_pipeline", default=None)


def current_pipeline() -> Pipeline | None:
    """The pipeline being defined in this context, if any."""
    return _building.get()


@dataclass(eq=False)
class Node:
    """One step call in a pipeline: the step, its arguments, and its place."""

    index: int
    step: Step
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    label: str = ""

    @property
    def upstream(self) -> list[Node]:
        """The nodes this one takes outputs from (directly or inside a list argument)."""
        found: list[Node] = []
        for value in (*self.args, *self.kwargs.values()):
            items = value if isinstance(value, list | tuple) else (value,)
            found += [item for item in items if isinstance(item, Node)]
        return found

    def __repr__(self) -> str:
        return f"<node {self.label}>"


@dataclass(eq=False)
class Pipeline:
    """A named graph of step calls, built with ``with Pipeline(name): ...``."""

    name: str
    params: dict[str, Any] = field(default_factory=dict)
    nodes: list[Node] = field(default_factory=list)
    _token: Any = field(default=None, repr=False)

    def __enter__(self) -> Pipeline:
        if _building.get() is not None:
            raise ValidationError("pipelines cannot be defined inside another pipeline")
        self._token = _building.set(self)
        return self

    def __exit__(self, *_: object) -> None:
        _building.reset(self._token)

    def add(self, step: Step, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Node:
        for value in Node(-1, step, tuple(args), dict(kwargs)).upstream:
            if value.index >= len(self.nodes) or self.nodes[value.index] is not value:
                raise ValidationError(f"step {step.name!r} was given the output of a step "
                                      "from another pipeline")
        same_name = sum(1 for node in self.nodes if node.step.name == step.name)
        label = node_label(step.name, same_name)
        node = Node(len(self.nodes), step, tuple(args), dict(kwargs), label)
        self.nodes.append(node)
        return node

    @classmethod
    def build(cls, function: Callable[..., Any], *args: Any, name: str | None = None,
              **kwargs: Any) -> Pipeline:
        """The pipeline that calling ``function(*args, **kwargs)`` defines.

            def train(path: str, alpha: float = 0.1):
                fit(load(tidal.File(path)), alpha=alpha)

            tidal.run_pipeline(tidal.Pipeline.build(train, "data.csv"))
        """
        built = cls(name or function.__name__, params=_describe(args, kwargs))
        with built:
            function(*args, **kwargs)
        if not built.nodes:
            raise ValidationError(f"pipeline {built.name!r} calls no step")
        return built



def node_label(step_name: str, index: int) -> str:
    """The label of the ``index``-th call (from 0) of a step in one pipeline: ``fit``,
    ``fit#2``, ``fit#3``..."""
    return f"{step_name}#{index + 1}" if index else step_name


def _describe(args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
    described = {f"arg{i}": value for i, value in enumerate(args)}
    described.update(kwargs)
    return {key: value if isinstance(value, str | int | float | bool | None) else repr(value)
            for key, value in described.items()}
