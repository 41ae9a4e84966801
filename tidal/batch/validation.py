"""Which rows of a partition the model can take, and why the others cannot.

The server's checks (:func:`tidal.runtime.inputs.check_columns`) judge a whole request
and stop at the first bad value. A batch keeps its good rows and reports each bad one,
so a partition that fails is split in halves until each failing half is one row: the
usual case (every row good) costs one vectorised check, and k bad rows among n cost
about k·log2(n) small checks instead of n.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from tidal.runtime.inputs import InputError, check_columns

NUMERIC = frozenset({"FP64", "FP32", "INT64", "INT32", "UINT64"})


def split_valid(signature: dict[str, Any], columns: dict[str, np.ndarray]
                ) -> tuple[np.ndarray, dict[str, np.ndarray] | None, list[tuple[int, str]]]:
    """``(good row positions, their checked columns, [(bad row position, reason)])``."""
    columns = numbers_from_text(signature, columns)
    rows = len(next(iter(columns.values()))) if columns else 0
    good: list[np.ndarray] = []
    bad: list[tuple[int, str]] = []
    checked: list[dict[str, np.ndarray]] = []
    # halves to check, the next on top; a loop, not a recursive closure: a closure that
    # calls itself is a reference cycle, and it kept every partition's columns alive
    # until the garbage collector happened to run (hundreds of MB on a large job)
    todo = [(0, rows)] if rows else []
    while todo:
        start, stop = todo.pop()
        part = {name: values[start:stop] for name, values in columns.items()}
        try:
            checked.append(check_columns(signature, part))
            good.append(np.arange(start, stop))
        except InputError as error:
            if stop - start == 1:  # the row is the reject's own; "row 0" of a 1-row part
                bad.append((start, str(error).replace(" at row 0", "")))  # misleads
                continue
            middle = (start + stop) // 2
            todo += [(middle, stop), (start, middle)]
    if not checked:
        return np.zeros(0, dtype=np.int64), None, bad
    merged = {name: np.concatenate([part[name] for part in checked]) for name in checked[0]}
    return np.concatenate(good), merged, bad


def numbers_from_text(signature: dict[str, Any], columns: dict[str, np.ndarray]
                      ) -> dict[str, np.ndarray]:
    """Numeric inputs that arrived as text, as numbers where the text is one.

    A CSV reader types a column by its values, so one "abc" among a million numbers
    makes the whole column text, and every row would be rejected for it. Each text that
    reads as a number becomes that number; the others stay text, so only their rows are
    rejected (with the text in the reason).
    """
    numeric = {i["name"] for i in signature.get("inputs", []) if i.get("datatype") in NUMERIC}
    texts = [name for name, values in columns.items()
             if name in numeric and values.dtype == object]
    if not texts:
        return columns
    import pandas as pd  # only for the rare partition that needs it

    converted = dict(columns)
    for name in texts:
        values = columns[name]
        numbers = pd.to_numeric(pd.Series(values), errors="coerce").to_numpy(dtype=object)
        keep_text = np.array([isinstance(v, str) and v.strip() != "" for v in values]) & \
            pd.isna(numbers)
        numbers[keep_text] = values[keep_text]
        numbers[pd.isna(numbers) & ~keep_text] = None
        converted[name] = numbers
    return converted
