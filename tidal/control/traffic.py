"""A deployment's logged traffic over a period, by route, for a rollout's analysis.

The analysis reads the compacted prediction log (compacting what the servers wrote since
the last time first), through the monitor's hour reader: the stable, canary and shadow
rows of ``[start, end)``, failed requests included (batch scoring's canary and shadow rows
count as the canary's and the shadow's).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.compute as pc

from tidal.monitor.job import HourReader
from tidal.serve.compaction import compact
from tidal.serve.router import CANARY_ROUTES

if TYPE_CHECKING:
    from tidal.project import Project


@dataclass(frozen=True)
class Traffic:
    stable: pa.Table
    canary: pa.Table
    shadow: pa.Table

    def version(self, route: str, version: int) -> pa.Table:
        """The rows of ``route`` answered by ``version``."""
        table = getattr(self, route)
        if table.num_rows == 0 or "version" not in table.column_names:
            return table
        return table.filter(pc.equal(table.column("version"), version))


def read_traffic(project: Project, deployment: str, start: float, end: float) -> Traffic:
    """The deployment's rows with event times in ``[start, end)``, by route."""
    settings = project.settings
    log_folder = settings.serve.log_path(settings.project_dir)
    compacted = settings.monitor.compacted_path(settings.project_dir, log_folder)
    if log_folder.is_dir():
        compact(log_folder, compacted)
    served, shadow = HourReader(compacted, deployment, since=start).window_and_shadow(
        start, end)
    if served.num_rows == 0 or "route" not in served.column_names:
        return Traffic(served, served.slice(0, 0), shadow)
    is_canary = pc.fill_null(pc.is_in(served.column("route"), pa.array(CANARY_ROUTES)),
                             False)
    return Traffic(served.filter(pc.invert(is_canary)), served.filter(is_canary), shadow)
