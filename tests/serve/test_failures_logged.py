"""Failed requests of a known deployment are logged (status, error, no rows) so that the
monitors can count error rates from the log; they never become predictions."""

from __future__ import annotations

from serve_harness import FEATURES, Running, wait_until

from tidal.serve.compaction import compact, read_predictions
from tidal.serve.predlog import read_log


def test_bad_requests_are_logged_as_failures_not_predictions(served: Running):
    log_folder = served.folder / ".tidal" / "predictions"
    good = {f: 0.5 for f in FEATURES}
    with served.client() as http:
        assert http.post("/v1/predict/elec2", json=[good]).status_code == 200
        bad = http.post("/v1/predict/elec2", json=[{**good, "feat_1": "high"}],
                        headers={"x-request-id": "bad-1"})
        assert bad.status_code == 400
        missing = http.post("/v2/models/elec2/infer", headers={"x-request-id": "bad-2"},
                            json={"inputs": []})
        assert missing.status_code == 400
        assert http.post("/v1/predict/nope", json=[good]).status_code == 404

    def failures_logged() -> bool:
        return {"bad-1", "bad-2"} <= {r.request_id for r in read_log(log_folder)}

    wait_until(failures_logged, timeout=5)  # failures are written without waiting
    records = {r.request_id: r for r in read_log(log_folder)}
    failed = records["bad-1"]
    assert (failed.status, failed.deployment, failed.inputs, failed.outputs) == \
        (400, "elec2", {}, {})
    assert "feat_1" in failed.error
    assert records["bad-2"].status == 400
    assert not any(r.deployment == "nope" for r in records.values())  # no such deployment
    assert sum(r.status == 200 for r in records.values()) == 1
    # compacted: a failure is one row with its status and no values
    into = served.folder / "compacted"
    compact(log_folder, into)
    table = read_predictions(into, "elec2")
    statuses = sorted(table.column("status").to_pylist())
    assert statuses == [200, 400, 400]
    ids = table.column("request_id").to_pylist()
    assert table.column("in.feat_1").to_pylist()[ids.index("bad-1")] is None
