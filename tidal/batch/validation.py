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


def split_valid(signature: dict[str, Any], columns: dict[str, np.ndarray]
                ) -> tuple[np.ndarray, dict[str, np.ndarray] | None, list[tuple[int, str]]]:
    """``(good row positions, their checked columns, [(bad row position, reason)])``."""
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
            if stop - start == 1:
                bad.append((start, str(error)))
                continue
            middle = (start + stop) // 2
            todo += [(middle, stop), (start, middle)]
    if not checked:
        return np.zeros(0, dtype=np.int64), None, bad
    merged = {name: np.concatenate([part[name] for part in checked]) for name in checked[0]}
    return np.concatenate(good), merged, bad
