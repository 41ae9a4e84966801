"""``@tidal.step``: a function whose executions are cached and recorded as lineage.

A step is identified by its name and a hash of its code. The code hash covers the
function's own source (dedented, decorators stripped) and an optional ``version`` the
author bumps when something the source does not show changed (a helper it calls, a
file it reads). Hashing the whole call graph would be more complete, but it would also
invalidate every cache on any unrelated edit to a shared module, which users find
worse than an explicit version.

Called inside a pipeline definition a step returns a :class:`~tidal.pipeline.graph.Node`
(nothing runs yet); called anywhere else it is the plain function, so a step can be
tried in a notebook or a unit test as it is.
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import textwrap
from collections.abc import Callable
from typing import Any, overload

from tidal.core.errors import ValidationError


class Step:
    """A function plus what identifies its executions: name, code hash, cache flag."""

    def __init__(self, function: Callable[..., Any], *, name: str | None = None,
                 version: str | None = None, cache: bool = True) -> None:
        if not callable(function):
            raise ValidationError(f"@step needs a function, got {type(function).__name__}")
        self.function = function
        self.name = name or function.__name__
        self.version = version
        self.cache = cache
        self.code_hash = code_hash(function, version)
        self.signature = inspect.signature(function)
        functools.update_wrapper(self, function)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        from tidal.pipeline.graph import current_pipeline

        building = current_pipeline()
        if building is None:
            return self.function(*args, **kwargs)
        try:
            self.signature.bind(*args, **kwargs)
        except TypeError as exc:
            raise ValidationError(f"step {self.name!r}: {exc}") from None
        return building.add(self, args, kwargs)

    def __repr__(self) -> str:
        return f"<step {self.name} code {self.code_hash[:12]}>"

    def __reduce__(self) -> tuple[Any, ...]:
        # pickled by reference to the module attribute, like a plain function
        return (_step_by_reference, (self.function.__module__, self.function.__qualname__))


@overload
def step(function: Callable[..., Any]) -> Step: ...


@overload
def step(*, name: str | None = None, version: str | None = None,
         cache: bool = True) -> Callable[[Callable[..., Any]], Step]: ...


def step(function: Callable[..., Any] | None = None, *, name: str | None = None,
         version: str | None = None, cache: bool = True) -> Any:
    """Make a function a pipeline step: ``@tidal.step`` or ``@tidal.step(version="2")``.

    ``cache=False`` re-runs the step every time (for steps that read something outside
    Tidal's view, such as "the latest rows of a table").
    """
    if function is not None:
        return Step(function)
    return lambda fn: Step(fn, name=name, version=version, cache=cache)


def code_hash(function: Callable[..., Any], version: str | None = None) -> str:
    """sha256 of the function's source without decorator lines, plus ``version``."""
    try:
        source = textwrap.dedent(inspect.getsource(function))
    except (OSError, TypeError):  # defined in a REPL: fall back to the bytecode
        source = repr(getattr(function, "__code__", function).co_code
                      if hasattr(function, "__code__") else function)
    lines = source.splitlines()
    while lines and lines[0].lstrip().startswith("@"):
        lines.pop(0)
    payload = "\n".join(lines) + f"\n#version={version or ''}"
    return hashlib.sha256(payload.encode()).hexdigest()


def _step_by_reference(module: str, qualname: str) -> Any:
    import importlib

    value: Any = importlib.import_module(module)
    for part in qualname.split("."):
        value = getattr(value, part)
    return value
