"""Steps used by the pipeline tests; module-level so worker processes can import them."""

from __future__ import annotations

import os

import tidal

CALLS_FILE = "calls.log"


def _note(name: str) -> None:
    """Append the step's name to calls.log in the working folder: which steps really ran."""
    with open(CALLS_FILE, "a") as handle:
        handle.write(name + "\n")


@tidal.step
def load(path: str) -> list[float]:
    _note("load")
    with open(path) as handle:
        return [float(line) for line in handle if line.strip()]


@tidal.step
def scale(values: list[float], factor: float = 1.0) -> list[float]:
    _note("scale")
    return [value * factor for value in values]


@tidal.step
def total(values: list[float]) -> float:
    _note("total")
    return sum(values)


@tidal.step
def where(values: list[float]) -> int:
    """The process that ran it (to see fan-out across workers)."""
    _note("where")
    return os.getpid()


@tidal.step
def combine(parts: list[float]) -> float:
    _note("combine")
    return sum(parts)


@tidal.step
def explode(values: list[float], fail: bool = True) -> float:
    _note("explode")
    if fail:
        raise ValueError(f"cannot handle {len(values)} values")
    return max(values)


@tidal.step(cache=False)
def fresh(values: list[float]) -> int:
    _note("fresh")
    return len(values)


def numbers_pipeline(path: str, factor: float = 2.0) -> None:
    values = load(tidal.File(path))
    total(scale(values, factor=factor))


def fan_out_pipeline(path: str) -> None:
    """Six independent branches joined by one step, and four independent leaves."""
    values = load(tidal.File(path))
    parts = [total(scale(values, factor=float(i))) for i in range(6)]
    combine(parts)
    for _ in range(4):
        where(values)
