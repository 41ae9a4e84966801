"""Triage: the scored rows that need people (the top K by a column, or those above a
threshold), kept as the job goes, then written to their own Parquet file and, on request,
queued for review and POSTed to a webhook.

The top K over the whole input are kept with at most K rows in memory (each partition's
rows merged with those kept so far); rows above a threshold are all kept, so a threshold
that picks most of a huge input costs memory (say so with a tighter one, or use top K).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from tidal.core.errors import ValidationError

if TYPE_CHECKING:
    from tidal.project import Project

#: triaged rows per webhook request
WEBHOOK_ROWS = 1_000


@dataclass(frozen=True)
class Triage:
    """Which scored rows need people: the ``top`` rows by ``by`` (highest first), or
    every row whose ``by`` is at least ``above``; written to ``output`` and, with
    ``review``, queued for human review; with ``webhook``, POSTed there as JSON."""

    by: str
    output: Path
    top: int | None = None
    above: float | None = None
    review: bool = False
    webhook: str | None = None

    def check(self, columns: list[str]) -> None:
        """Refuse a triage that cannot work, before any row is scored."""
        if (self.top is None) == (self.above is None):
            raise ValidationError("triage takes --top K or --above X (one of them) with --by")
        if self.top is not None and self.top < 1:
            raise ValidationError("--top must be at least 1")
        if self.by not in columns:
            raise ValidationError(f"--by {self.by!r} is not an output column (they are "
                                  f"{', '.join(columns)})")
        if self.webhook is not None and not self.webhook.startswith(("http://", "https://")):
            raise ValidationError(f"--webhook {self.webhook!r}: give an http(s) URL")

    @property
    def reason(self) -> str:
        return (f"top {self.top} by {self.by}" if self.top is not None
                else f"{self.by} at least {self.above:g}")


class Picker:
    """The rows chosen so far; :meth:`add` takes each partition's scored rows."""

    def __init__(self, triage: Triage) -> None:
        self.triage = triage
        self.picked: pa.Table | None = None

    def add(self, table: pa.Table) -> None:
        triage, picked = self.triage, self.picked
        if triage.above is not None:
            chosen = table.filter(pc.greater_equal(table.column(triage.by), triage.above))
            self.picked = chosen if picked is None else pa.concat_tables([picked, chosen])
            return
        both = table if picked is None else pa.concat_tables([picked, table])
        order = pc.sort_indices(both, sort_keys=[(triage.by, "descending")])
        self.picked = both.take(order[:triage.top])

    def partial(self, job: str) -> Path:
        return self.triage.output.with_name(f".{self.triage.output.name}.{job}.partial")

    def write(self, job: str) -> int:
        """The chosen rows to the triage output (atomically); how many."""
        if self.picked is None:
            return 0
        pq.write_table(self.picked, self.partial(job))
        os.replace(self.partial(job), self.triage.output)
        return self.picked.num_rows


def queue_for_review(project: Project, deployment: str, picked: pa.Table,
                     inputs: list[str], *, reason: str) -> None:
    """The chosen rows into the review queue, each with its logged request id and row
    (a reviewer's label then joins the prediction like any feedback)."""
    from tidal.store.review import NewReviewItem

    now = project.clock.now()
    outputs = {"label", "prediction"}
    project.review.add([NewReviewItem(
        deployment=deployment, request_id=row["request_id"], row=int(row["row"]),
        event_time=now, reason=f"batch triage: {reason}",
        inputs={k: row[k] for k in inputs},
        outputs={k: v for k, v in row.items() if k in outputs or k.startswith("proba_")})
        for row in picked.to_pylist()], now=now)


def post_to_webhook(url: str, picked: pa.Table, about: dict[str, Any]) -> str | None:
    """The chosen rows as JSON (``about`` plus ``rows``), at most ``WEBHOOK_ROWS`` per
    request; None when every request was delivered, else the first failure."""
    from tidal.core.webhooks import post_json

    batches = max(1, -(-picked.num_rows // WEBHOOK_ROWS))
    for number, start in enumerate(range(0, max(picked.num_rows, 1), WEBHOOK_ROWS)):
        rows = picked.slice(start, WEBHOOK_ROWS).to_pylist()
        body = {**about, "part": number + 1, "parts": batches, "rows": rows}
        error = post_json(url, body, user_agent="tidal-batch", attempts=3)
        if error is not None:
            return f"{url}: {error} (part {number + 1} of {batches})"
    return None
