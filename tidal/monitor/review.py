"""Routing predictions to the review queue, and what a reviewer's answer feeds.

When the window job computes a window it also picks the predictions people should look
at (``[monitor.review]``): a classifier's answers whose top probability is below
``confidence_below``; those where the shadow version's label differs from the stable
one; those in an *alerting slice* (a slice value whose ``quality_slice_drop`` check is
in alert: people label where the model is known to be failing); and a ``sample_rate``
share chosen by a hash of the request id (so a rerun picks the same ones). At most
``max_per_window`` per window, the least confident first, then the disagreements, then
the alerting slices, then the sample. Each item carries its inputs and both versions'
outputs, so a reviewer needs nothing else.

:func:`answer` records a reviewer's answer; a label (not "unsure") also becomes feedback
(source ``review``), so reviewed predictions count in labelled quality and in the
labelled training data like any label.
"""

from __future__ import annotations

import hashlib
import math
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from tidal.core.config import ReviewSection, SliceSection
from tidal.monitor.outputs import CONFIDENCE, LABEL
from tidal.store.review import NewReviewItem, ReviewItemRecord, answer_with_feedback

if TYPE_CHECKING:
    from tidal.project import Project

LOW_CONFIDENCE, DISAGREEMENT, SAMPLE = "low_confidence", "shadow_disagreement", "sample"
ALERTING_SLICE = "alerting_slice"


def pick(deployment: str, window: pa.Table, frame: pa.Table, shadow: pa.Table | None,
         rules: ReviewSection, alerting: np.ndarray | None = None) -> list[NewReviewItem]:
    """The window's predictions to review. ``window``: its stable/canary rows as logged;
    ``frame``: the same rows' monitored outputs (``out.confidence``, ...); ``shadow``:
    the shadow rows, if any; ``alerting``: which rows lie in an alerting slice (see
    :func:`alerting_slice_rows`)."""
    if rules.max_per_window == 0 or window.num_rows == 0:
        return []
    if shadow is not None and (shadow.num_rows == 0
                               or "request_id" not in shadow.column_names):
        shadow = None  # no shadow served in this window
    ids = window.column("request_id").to_pylist()
    rows = _rows(window)
    chosen: dict[int, str] = {}
    if rules.confidence_below is not None and CONFIDENCE in frame.column_names:
        confidence = frame.column(CONFIDENCE).to_numpy(zero_copy_only=False)
        low = np.flatnonzero(np.isfinite(confidence) & (confidence < rules.confidence_below))
        for i in low[np.argsort(confidence[low], kind="stable")]:
            chosen.setdefault(int(i), LOW_CONFIDENCE)
    if rules.shadow_disagreement and shadow is not None and shadow.num_rows \
            and LABEL in window.column_names and LABEL in shadow.column_names:
        theirs = {(r, n): label for r, n, label in zip(
            shadow.column("request_id").to_pylist(), _rows(shadow),
            shadow.column(LABEL).to_pylist(), strict=True)}
        ours = window.column(LABEL).to_pylist()
        for i, key in enumerate(zip(ids, rows, strict=True)):
            if key in theirs and str(theirs[key]) != str(ours[i]):
                chosen.setdefault(i, DISAGREEMENT)
    if rules.alerting_slices and alerting is not None:
        # in hash order: a slice larger than the budget gives a spread, not its first rows
        for i in sorted(np.flatnonzero(alerting).tolist(),
                        key=lambda i: _fraction(ids[i], rows[i])):
            chosen.setdefault(i, ALERTING_SLICE)
    if rules.sample_rate > 0:
        for i, request_id in enumerate(ids):
            if _fraction(request_id, rows[i]) < rules.sample_rate:
                chosen.setdefault(i, SAMPLE)
    picked = list(chosen.items())[:rules.max_per_window]
    if not picked:
        return []
    shadow_outputs = _by_prediction(shadow) if shadow is not None else {}
    inputs = [n for n in window.column_names if n.startswith("in.")]
    outputs = [n for n in window.column_names if n.startswith("out.")]
    times = window.column("event_time").cast(pa.int64()).to_pylist()
    items = []
    for i, reason in picked:
        items.append(NewReviewItem(
            deployment, ids[i], rows[i], times[i] / 1e6, reason,
            {n[3:]: _plain(window.column(n)[i].as_py()) for n in inputs},
            {n[4:]: _plain(window.column(n)[i].as_py()) for n in outputs},
            shadow_outputs.get((ids[i], rows[i]))))
    return items


def alerting_slice_rows(window: pa.Table, subjects: list[str],
                        slices: list[SliceSection]) -> np.ndarray | None:
    """Which rows of ``window`` lie in a slice value named by ``subjects`` (the
    ``"<column>=<value>"`` subjects of ``quality_slice_drop`` states in alert), cut as
    training cuts them; None when no configured slice is alerting."""
    wanted: dict[str, set[str]] = {}
    for subject in subjects:
        for spec in slices:
            if subject.startswith(f"{spec.column}="):
                wanted.setdefault(spec.column, set()).add(subject[len(spec.column) + 1:])
    present = [s for s in slices if s.column in wanted and f"in.{s.column}" in
               window.column_names]
    if not present:
        return None
    from tidal.train.evaluate import Slice  # brings scikit-learn: only when needed

    mask = np.zeros(window.num_rows, dtype=bool)
    for spec in present:
        frame = window.select([f"in.{spec.column}"]).to_pandas()
        frame.columns = [spec.column]
        values = Slice.of({"column": spec.column, "bins": spec.bins}).labels(frame)
        mask |= np.isin(values.astype(str).to_numpy(), sorted(wanted[spec.column]))
    return mask


def answer(project: Project, item_id: int, reviewer: str, *, label: Any = None,
           unsure: bool = False, familiar: bool | None = None, note: str | None = None
           ) -> ReviewItemRecord:
    """Record an answer; a label also becomes feedback for the prediction."""
    return answer_with_feedback(
        project.review, item_id, reviewer, label=label, unsure=unsure,
        familiar=familiar, note=note, now=project.clock.now(),
        required=project.settings.monitor.review.reviewers_per_item)


def _rows(table: pa.Table) -> list[int]:
    return [n or 0 for n in table.column("row").to_pylist()] if "row" in table.column_names \
        else [0] * table.num_rows


def _by_prediction(shadow: pa.Table) -> dict[tuple[str, int], dict[str, Any]]:
    outputs = [n for n in shadow.column_names if n.startswith("out.")]
    found = {}
    for i, key in enumerate(zip(shadow.column("request_id").to_pylist(), _rows(shadow),
                                strict=True)):
        found[key] = {n[4:]: _plain(shadow.column(n)[i].as_py()) for n in outputs} | {
            "version": shadow.column("version")[i].as_py()}
    return found


def _fraction(request_id: str, row: int) -> float:
    digest = hashlib.blake2b(f"{request_id}/{row}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


def _plain(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
