"""Train/test splits: by time when there is time, stratified otherwise, balanced when small.

The second step of the standard pipeline. The split decides what the test metrics mean, so
each rule answers a way a naive random split lies:

- **by time** (``method="time"``) when a time column is named: a model is used on data
  that comes *after* its training data, and a random split lets it learn from the future
  (leakage through drift, seasonality and autocorrelation). Rows are ordered by the time
  column (ties keep row order) and the latest ``test_size`` share is the test set; no
  shuffling. All rows sharing the time value at the boundary go to one side, so every test
  row is strictly later than every train row: the side is whichever keeps the test share
  closest to ``test_size`` (the test side when both are equally close); if one side
  would be empty, the other.
- **stratified** (``method="stratified"``) for classification without time: a random
  split can leave a class under-represented in the test set, so the metric measures a
  different class mix than production. scikit-learn's ``train_test_split(stratify=…)``
  keeps each class's share the same in both sides. If scikit-learn refuses (more classes
  than test rows), the split falls back to an unstratified random one and says so in
  ``details["notes"]``.
- **balanced** (``method="balanced"``) for small classification data: fewer than
  :data:`SMALL_DATA_ROWS` rows, or a class with fewer than :data:`RARE_CLASS_ROWS` rows.
  There, proportional rounding can put all of a rare class on one side, and a class never
  seen in training, or never tested, makes the metrics meaningless for it. The rule: each
  class is split on its own; a class with at least 2 rows gets between 1 and ``n - 1``
  test rows, as close to ``test_size`` of its rows as the total allows (the total test
  count is ``ceil(test_size * rows)``, reached by largest-remainder rounding unless the
  one-row-each-side floors need more); a class with a single row goes to train (a test
  row it could never be trained on teaches nothing) and is named in the notes. Which rows
  of a class go to test is drawn with ``seed``.
- **random** (``method="random"``) for regression without time: a shuffle with ``seed``
  (there are no classes to balance).

Every split is deterministic for a given seed. ``train_index`` and ``test_index`` are
sorted ``int64`` numpy arrays that together cover every row exactly once, so
``table.take(index)`` keeps the source's row order. Rows whose target is missing are
kept (classification treats "missing" as one more class so they spread over both
sides): dropping rows is the training step's decision, not the split's.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from tidal.core.errors import ValidationError
from tidal.data.sources import open_source

#: Below this many rows, a classification split is "balanced" rather than plain stratified.
SMALL_DATA_ROWS = 1000
#: A class with fewer rows than this also makes a classification split "balanced".
RARE_CLASS_ROWS = 50

Task = Literal["classification", "regression"]
MISSING_LABEL = "<missing>"


@dataclass(frozen=True, eq=False)
class Split:
    """Which rows train and which rows test, how they were chosen, and why.

    ``method`` is ``"time"``, ``"stratified"``, ``"balanced"`` or ``"random"``.
    ``details`` is JSON-ready: row counts, the seed, per-class counts (classification),
    the time boundary (time splits) and ``notes`` on anything unusual.
    """

    train_index: np.ndarray
    test_index: np.ndarray
    method: str
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready summary for run records (without the indices themselves)."""
        return {"method": self.method, "train_rows": int(self.train_index.size),
                "test_rows": int(self.test_index.size), "details": self.details}


def split(data: Any, *, target: str, time_column: str | None = None,
          test_size: float = 0.2, seed: int = 0, task: Task) -> Split:
    """Split ``data`` (an Arrow table, a DataFrame, or a CSV/Parquet path) into train/test.

    Only the target and time columns are read. See the module docstring for the rules.
    Raises :class:`~tidal.core.errors.ValidationError` for a missing target or time
    column, a ``test_size`` outside (0, 1), fewer than 2 rows, an unknown task, a
    non-numeric regression target, or a time column with missing values or one value.
    """
    if task not in ("classification", "regression"):
        raise ValidationError(f"task must be 'classification' or 'regression', not {task!r}")
    if isinstance(test_size, bool) or not isinstance(test_size, int | float) \
            or not 0 < test_size < 1:
        raise ValidationError(f"test_size must be a fraction strictly between 0 and 1, "
                              f"got {test_size!r}")
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer):
        raise ValidationError(f"seed must be an integer, got {seed!r}")
    source = open_source(data)
    for role, name in (("target", target), ("time", time_column)):
        if name is not None and name not in source.names:
            raise ValidationError(f"{source.name}: no {role} column {name!r} "
                                  f"(it has {', '.join(source.names)})")
    rows = source.num_rows
    if rows < 2:
        raise ValidationError(f"{source.name}: {rows} row(s); a train/test split needs "
                              "at least 2")
    n_test = min(max(math.ceil(test_size * rows), 1), rows - 1)
    details: dict[str, Any] = {"rows": rows, "test_size": float(test_size), "task": task,
                               "target": target, "notes": []}
    labels = source.column(target)

    if task == "regression" and not _is_numeric(labels.type):
        raise ValidationError(f"{source.name}: the regression target {target!r} is "
                              f"{labels.type}, not numeric")
    if time_column is not None:
        test_mask = _by_time(source.name, source.column(time_column), n_test, details)
        details["time_column"] = time_column
        method = "time"
    elif task == "regression":
        test_mask = _random(rows, n_test, seed)
        details["seed"] = int(seed)
        method = "random"
    else:
        codes, names = _encode(labels)
        counts = np.bincount(codes, minlength=len(names))
        details["seed"] = int(seed)
        if rows < SMALL_DATA_ROWS or counts.min() < RARE_CLASS_ROWS:
            test_mask = _balanced(codes, counts, n_test, seed, names, details)
            method = "balanced"
        else:
            test_mask, method = _stratified(codes, n_test, seed, details)
    if task == "classification":
        details["classes"] = _class_counts(labels, test_mask)
        if method == "time":
            unseen = [name for name, (train, test) in details["classes"].items()
                      if test and not train]
            if unseen:
                details["notes"].append("classes in the test set never seen in training: "
                                        + ", ".join(unseen))
    train_index = np.flatnonzero(~test_mask).astype(np.int64)
    test_index = np.flatnonzero(test_mask).astype(np.int64)
    details["train_rows"] = int(train_index.size)
    details["test_rows"] = int(test_index.size)
    return Split(train_index, test_index, method, details)


# -- by time ----------------------------------------------------------------------------

def _by_time(label: str, times: Any, n_test: int, details: dict[str, Any]) -> np.ndarray:
    import pyarrow as pa
    import pyarrow.compute as pc

    rows = len(times)
    if times.null_count:
        raise ValidationError(f"{label}: the time column has {times.null_count} missing "
                              "value(s); a row without a time cannot be placed in time")
    if pa.types.is_floating(times.type) and pc.any(pc.is_nan(times)).as_py():
        raise ValidationError(f"{label}: the time column has NaN values")
    if pa.types.is_dictionary(times.type):
        times = times.cast(times.type.value_type)
    # the value at the cut: the first test row in time order (a stable sort)
    scalar = times[pc.sort_indices(times)[rows - n_test].as_py()]
    boundary = scalar.as_py()
    before = pc.sum(pc.less(times, scalar)).as_py() or 0  # train if the tie group tests
    through = pc.sum(pc.less_equal(times, scalar)).as_py() or 0  # train if it trains
    candidates = [cut for cut in (before, through) if 0 < cut < rows]
    if not candidates:
        raise ValidationError(f"{label}: every row has the same time ({boundary}); "
                              "a split by time needs at least two distinct times")
    cut = min(candidates, key=lambda c: abs((rows - c) - n_test))  # ties: first = before
    strict = cut == through  # the tied group trains: test rows are strictly after it
    test = pc.greater(times, scalar) if strict else pc.greater_equal(times, scalar)
    mask = test.to_numpy(zero_copy_only=False).astype(bool)
    if before != rows - n_test:  # the tied group straddled the intended cut
        details["notes"].append(f"{through - before} rows share the boundary time "
                                f"{boundary}; all of them went to the "
                                f"{'train' if strict else 'test'} side")
    train_times = pc.filter(times, pa.array(~mask))
    test_times = pc.filter(times, pa.array(mask))
    details["train_last_time"] = str(pc.max(train_times).as_py())
    details["test_first_time"] = str(pc.min(test_times).as_py())
    return mask


# -- classification --------------------------------------------------------------------

def _encode(labels: Any) -> tuple[np.ndarray, list[str]]:
    """Integer codes per row and the class names (missing values are one class)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if pa.types.is_dictionary(labels.type):
        labels = labels.cast(labels.type.value_type)
    encoded = pc.dictionary_encode(labels.combine_chunks(), null_encoding="encode")
    codes = encoded.indices.to_numpy(zero_copy_only=False).astype(np.int64)
    names = [MISSING_LABEL if value is None else str(value)
             for value in encoded.dictionary.to_pylist()]
    return codes, names


def _stratified(codes: np.ndarray, n_test: int, seed: int,
                details: dict[str, Any]) -> tuple[np.ndarray, str]:
    from sklearn.model_selection import train_test_split

    everything = np.arange(codes.size)
    try:
        _, test = train_test_split(everything, test_size=n_test, random_state=seed,
                                   shuffle=True, stratify=codes)
        method = "stratified"
    except ValueError as exc:  # e.g. more classes than test rows
        details["notes"].append(f"not stratified: {exc}")
        _, test = train_test_split(everything, test_size=n_test, random_state=seed,
                                   shuffle=True)
        method = "random"
    mask = np.zeros(codes.size, dtype=bool)
    mask[test] = True
    return mask, method


def _balanced(codes: np.ndarray, counts: np.ndarray, n_test: int, seed: int,
              names: list[str], details: dict[str, Any]) -> np.ndarray:
    allocation = _allocate(counts, n_test)
    singletons = [names[c] for c in np.flatnonzero(counts == 1)]
    if singletons:
        details["notes"].append("classes with a single row, kept in train: "
                                + ", ".join(singletons))
    if allocation.sum() != n_test:
        details["notes"].append(f"{int(allocation.sum())} test rows instead of {n_test}: "
                                "every class with 2 or more rows has at least one row on "
                                "each side")
    rng = np.random.default_rng(seed)
    mask = np.zeros(codes.size, dtype=bool)
    for code, take in enumerate(allocation):
        if take:
            members = np.flatnonzero(codes == code)
            mask[rng.permutation(members)[:take]] = True
    return mask


def _allocate(counts: np.ndarray, n_test: int) -> np.ndarray:
    """Test rows per class: near ``share`` of each class, 1..n-1 for classes of 2+ rows,
    summing to ``n_test`` by largest remainders unless the floors need more."""
    ideal = counts * (n_test / counts.sum())
    low = np.where(counts >= 2, 1, 0)
    high = np.where(counts >= 2, counts - 1, 0)
    allocation = np.clip(np.floor(ideal).astype(np.int64), low, high)
    while allocation.sum() != n_test:
        if allocation.sum() < n_test:
            room = allocation < high
            gap = np.where(room, ideal - allocation, -np.inf)
            step = 1
        else:
            room = allocation > low
            gap = np.where(room, allocation - ideal, -np.inf)
            step = -1
        if not room.any():
            break
        # the largest remainder first; equal remainders go to the earlier class (stable)
        allocation[int(np.argmax(gap))] += step
    return allocation


def _class_counts(labels: Any, test_mask: np.ndarray) -> dict[str, list[int]]:
    """{class: [train rows, test rows]}, for the run record and the notes."""
    codes, names = _encode(labels)
    test = np.bincount(codes[test_mask], minlength=len(names))
    total = np.bincount(codes, minlength=len(names))
    return {name: [int(total[i] - test[i]), int(test[i])] for i, name in enumerate(names)}


# -- regression ------------------------------------------------------------------------

def _random(rows: int, n_test: int, seed: int) -> np.ndarray:
    mask = np.zeros(rows, dtype=bool)
    mask[np.random.default_rng(seed).permutation(rows)[:n_test]] = True
    return mask


def _is_numeric(arrow_type: Any) -> bool:
    import pyarrow as pa

    return (pa.types.is_integer(arrow_type) or pa.types.is_floating(arrow_type)
            or pa.types.is_decimal(arrow_type))
