"""Helpers of the dashboard tests."""

from __future__ import annotations

from typing import Any


def add_review_items(project: Any, count: int) -> list[dict[str, Any]]:
    """Queue the first ``count`` served predictions of deployment ``live`` for review;
    returns their logged rows."""
    from tidal.control.traffic import read_traffic
    from tidal.store.review import NewReviewItem

    served = read_traffic(project, "live", 0, 4e9).stable.slice(0, count).to_pylist()
    project.review.add([NewReviewItem(
        deployment="live", request_id=row["request_id"], row=row["row"],
        event_time=row["event_time"].timestamp(), reason="a sample for the test",
        inputs={"feat_2": row["in.feat_2"]}, outputs={"label": row["out.label"]})
        for row in served], now=project.clock.now())
    return served
