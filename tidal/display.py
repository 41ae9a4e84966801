"""Rendering for the command line: times, numbers, Rich tables and JSON output.

Kept apart from the commands so each command reads as "fetch, then show".
"""

from __future__ import annotations

import json
import math
import sys
from datetime import datetime
from typing import Any

from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from tidal.core.finite import finite_json

console = Console(highlight=False, markup=False)  # messages carry user text: no markup
errors = Console(stderr=True, highlight=False)


def when(epoch: float | None, short: bool = False) -> str:
    """Epoch seconds → local 'YYYY-MM-DD HH:MM:SS', or 'MM-DD HH:MM' (blank for None)."""
    if epoch is None:
        return ""
    return datetime.fromtimestamp(epoch).strftime("%m-%d %H:%M" if short else "%Y-%m-%d %H:%M:%S")


def number(value: float | None) -> str:
    if value is None:
        return ""
    if math.isnan(value) or math.isinf(value):
        return str(value)
    if value != 0 and (abs(value) >= 1e6 or abs(value) < 1e-4):
        return f"{value:.4g}"
    return f"{value:.4f}".rstrip("0").rstrip(".") if not float(value).is_integer() else str(
        int(value))


def duration(seconds: float | None) -> str:
    if seconds is None:
        return ""
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, rest = divmod(int(seconds), 60)
    return f"{minutes}m{rest:02d}s" if minutes < 60 else f"{minutes // 60}h{minutes % 60:02d}m"


def print_json(value: Any) -> None:
    """Write JSON to stdout (NaN and infinities become strings, times stay epoch seconds)."""
    sys.stdout.write(json.dumps(finite_json(value), indent=2, sort_keys=False, default=str) + "\n")




def table(
    title: str | None, columns: list[str], rows: list[list[str | Text]],
    no_wrap: tuple[str, ...] = (),
) -> Table:
    """A table of plain text: user-supplied strings are never read as Rich markup (a
    param value like ``[/tmp/x]`` must print as itself). Cells meant to be styled are
    passed as :class:`~rich.text.Text`, e.g. from :func:`styled`. Columns named in
    ``no_wrap`` (ids, times) are never folded."""
    grid = Table(title=None if title is None else Text(title), title_justify="left",
                 header_style="bold", box=box.SIMPLE_HEAD, pad_edge=False)
    for column in columns:
        grid.add_column(Text(column), overflow="ellipsis" if column in no_wrap else "fold",
                        no_wrap=column in no_wrap)
    for row in rows:
        grid.add_row(*(cell if isinstance(cell, Text) else Text(str(cell)) for cell in row))
    return grid


def styled(text: str, style: str) -> Text:
    """Plain ``text`` shown in ``style`` (no markup is interpreted in ``text``)."""
    return Text(text, style=style)
