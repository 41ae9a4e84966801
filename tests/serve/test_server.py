"""The model server over real HTTP on 127.0.0.1: the V2 protocol through an independent
client (tritonclient), JSON records, every kind of bad input, the prediction log, routing
(canary split, stickiness, shadow), hot swaps, metrics, admin and OpenAPI."""

from __future__ import annotations

import concurrent.futures
import math
import threading
import time

import numpy as np
import pytest
import tritonclient.http as triton
from serve_harness import FEATURES, TOKEN, Running, wait_until

from tidal.serve.predlog import read_log


def _records(served: Running, rows: slice) -> list[dict]:
    return served.rows.iloc[rows][FEATURES].to_dict("records")


def _native_proba(served: Running, version: int, rows: slice) -> np.ndarray:
    model = served.project.load_model(f"elec2:{version}")
    return model.predict_proba(served.rows.iloc[rows][FEATURES])


@pytest.mark.parametrize("binary", [True, False])
def test_tritonclient_speaks_v2_to_it_unchanged(served: Running, binary: bool):
    client = triton.InferenceServerClient(served.url.removeprefix("http://"))
    assert client.is_server_live() and client.is_server_ready()
    assert client.is_model_ready("elec2")
    metadata = client.get_model_metadata("elec2")
    assert [i["name"] for i in metadata["inputs"]] == FEATURES
    assert metadata["platform"] == "tidal-onnx"

    frame = served.rows.iloc[:5]
    inputs = []
    for name in FEATURES:
        tensor = triton.InferInput(name, [5], "FP64")
        tensor.set_data_from_numpy(frame[name].to_numpy(np.float64), binary_data=binary)
        inputs.append(tensor)
    outputs = [triton.InferRequestedOutput(name, binary_data=binary)
               for name in ("label", "probabilities")]
    result = client.infer("elec2", inputs, outputs=outputs, request_id="req-1")
    assert result.get_response()["id"] == "req-1"
    probabilities = result.as_numpy("probabilities")
    assert probabilities.shape == (5, 2)
    np.testing.assert_allclose(probabilities, _native_proba(served, 1, slice(0, 5)),
                               atol=1e-5)
    assert set(result.as_numpy("label").tolist()) <= {0, 1}
    # no outputs named: tritonclient asks for every output in binary
    every = client.infer("elec2", inputs)
    np.testing.assert_allclose(every.as_numpy("probabilities"), probabilities)


def test_json_records_and_request_ids(served: Running):
    with served.client() as http:
        answer = http.post("/v1/predict", json=_records(served, slice(0, 3)))
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert body["deployment"] == "elec2" and body["version"] == 1
        assert body["route"] == "stable" and len(body["predictions"]) == 3
        assert answer.headers["x-request-id"] == body["request_id"]
        row = body["predictions"][0]
        assert set(row["probabilities"]) == {"0", "1"}
        assert math.isclose(sum(row["probabilities"].values()), 1.0, rel_tol=1e-6)
        mine = http.post("/v1/predict/elec2", json={"records": _records(served, slice(0, 1)),
                                                     "id": "my-id", "event_time": 1.5e9})
        assert mine.headers["x-request-id"] == "my-id"


BAD = [
    # (description, path, body or raw bytes, status, words the error must contain)
    ("missing feature", "/v1/predict/elec2", [{"feat_1": 0.1}], 400, "feat_2"),
    ("wrong type", "/v1/predict/elec2",
     [{**{f: 0.1 for f in FEATURES}, "feat_3": "high"}], 400, "feat_3"),
    ("unexpected field", "/v1/predict/elec2",
     [{**{f: 0.1 for f in FEATURES}, "feat_9": 1}], 400, "feat_9"),
    ("not finite", "/v2/models/elec2/infer",
     {"inputs": [{"name": f, "shape": [1], "datatype": "FP64",
                  "data": ["Infinity" if f == "feat_2" else 0.1]} for f in FEATURES]},
     400, "feat_2"),
    ("wrong shape", "/v2/models/elec2/infer",
     {"inputs": [{"name": f, "shape": [2], "datatype": "FP64", "data": [0.1]}
                 for f in FEATURES]}, 400, "shape"),
    ("two columns in one input", "/v2/models/elec2/infer",
     {"inputs": [{"name": f, "shape": [1, 2], "datatype": "FP64", "data": [0.1, 0.2]}
                 for f in FEATURES]}, 400, "one column"),
    ("wrong datatype", "/v2/models/elec2/infer",
     {"inputs": [{"name": f, "shape": [1], "datatype": "BYTES", "data": ["x"]}
                 for f in FEATURES]}, 400, "datatype"),
    ("no inputs", "/v2/models/elec2/infer", {"inputs": []}, 400, "inputs"),
    ("event time beyond year 9999", "/v1/predict/elec2",
     {"records": [{f: 0.1 for f in FEATURES}], "event_time": 1e300}, 400, "event time"),
    ("parameters that are not an object", "/v2/models/elec2/infer",
     {"inputs": [{"name": f, "shape": [1], "datatype": "FP64", "data": [0.1],
                  "parameters": [1]} for f in FEATURES]}, 400, "parameters"),
    ("request id with a line break", "/v1/predict/elec2",
     {"records": [{f: 0.1 for f in FEATURES}], "id": "a\r\nSet-Cookie: x=1"}, 400,
     "request id"),
    ("bad JSON", "/v2/models/elec2/infer", b"{not json", 400, "JSON"),
    ("empty records", "/v1/predict/elec2", [], 400, "record"),
    ("unknown deployment", "/v2/models/nope/infer", {"inputs": []}, 404, "nope"),
    ("unknown version", "/v2/models/elec2/versions/7/infer", {"inputs": []}, 404, "7"),
    ("a version spelled with a leading zero", "/v2/models/elec2/versions/01/infer",
     {"inputs": []}, 404, "'01'"),
    ("a version in non-ASCII digits", "/v2/models/elec2/versions/\u0661/infer",
     {"inputs": []}, 404, "version"),
    ("parameters that are an empty list", "/v2/models/elec2/infer",
     {"parameters": [], "inputs": [{"name": f, "shape": [1], "datatype": "FP64",
                                    "data": [0.1]} for f in FEATURES]}, 400, "parameters"),
    ("an output asked for twice", "/v2/models/elec2/infer",
     {"outputs": [{"name": "probabilities"}] * 2,
      "inputs": [{"name": f, "shape": [1], "datatype": "FP64", "data": [0.1]}
                 for f in FEATURES]}, 400, "more than once"),
    ("a value beyond what the model computes in", "/v1/predict/elec2",
     [{**{f: 0.1 for f in FEATURES}, "feat_4": 1e308}], 400, "feat_4"),
    ("unknown endpoint", "/v3/whatever", {}, 404, "no such endpoint"),
]


@pytest.mark.parametrize("case", BAD, ids=[case[0] for case in BAD])
def test_bad_input_gets_a_4xx_json_error_naming_the_problem(served: Running, case):
    _, path, body, status, words = case
    with served.client() as http:
        if isinstance(body, bytes):
            answer = http.post(path, content=body, headers={"content-type": "application/json"})
        else:
            answer = http.post(path, json=body)
        assert answer.status_code == status, answer.text
        assert words in answer.json()["error"]


def test_an_oversized_body_and_a_wrong_method_are_refused(served: Running):
    with served.client() as http:
        huge = b"[" + b"0," * (5 * 2**20) + b"0]"
        assert http.post("/v1/predict/elec2", content=huge).status_code == 413
        wrong = http.get("/v2/models/elec2/infer")
        assert wrong.status_code == 405 and "GET" in wrong.json()["error"]


def test_every_answered_request_is_in_the_prediction_log(served: Running):
    with served.client() as http:
        ids = []
        for i in range(20):
            answer = http.post("/v1/predict/elec2", json=_records(served, slice(i, i + 2)),
                               headers={"x-event-time": "2026-11-23T10:00:00Z"})
            ids.append(answer.headers["x-request-id"])
    # acknowledged durability: logged before each response was sent
    logged = {r.request_id: r for r in read_log(served.folder / ".tidal" / "predictions")}
    assert set(ids) <= set(logged)
    record = logged[ids[3]]
    assert (record.deployment, record.model, record.version, record.route) == (
        "elec2", "elec2", 1, "stable")
    assert record.inputs["feat_1"] == served.rows["feat_1"].iloc[3:5].tolist()
    assert len(record.outputs["probabilities"]) == 2 and record.latency_ms > 0
    assert record.event_time == pytest.approx(1795428000.0)  # 2026-11-23T10:00Z


def test_lone_requests_sync_their_own_records_and_concurrent_ones_share(served: Running,
                                                                         monkeypatch):
    """One request at a time: each record is synced on the event loop's thread (no
    writer hand-off). Many at once: group commit, far fewer syncs than requests."""
    import tidal.serve.predlog as predlog

    # a loaded machine can make a sync look slow, which sends a lone write through the
    # writer on purpose (tested in test_predlog); here: the lone path itself
    monkeypatch.setattr(predlog, "LONE_SYNC_MAX", 10.0)
    admin = {"authorization": f"Bearer {TOKEN}"}

    def log_stats(http) -> dict:
        return http.get("/admin/status", headers=admin).json()["prediction_log"]

    with served.client() as http:
        before = log_stats(http)
        for i in range(10):
            assert http.post("/v1/predict/elec2",
                             json=_records(served, slice(i, i + 1))).status_code == 200
        after = log_stats(http)
    assert after["lone_commits"] - before["lone_commits"] == 10
    assert after["records_written"] - before["records_written"] == 10

    def burst(worker: int) -> list[int]:
        with served.client() as http:
            return [http.post("/v1/predict/elec2",
                              json=_records(served, slice(i, i + 1))).status_code
                    for i in range(25)]

    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        statuses = [s for done in pool.map(burst, range(16)) for s in done]
    with served.client() as http:
        final = log_stats(http)
    assert statuses == [200] * 400
    assert final["records_written"] - after["records_written"] == 400
    assert final["batches_written"] - after["batches_written"] < 300  # about 150 here


def test_canary_split_is_within_tolerance_and_sticky_by_key(served: Running):
    served.project.set_deployment("elec2", "elec2:1", canary=2, canary_weight=0.3)
    with served.client() as http:
        http.post("/admin/reload", headers={"authorization": f"Bearer {TOKEN}"})
        versions = []
        for i in range(600):
            answer = http.post("/v1/predict/elec2", json={
                "records": _records(served, slice(0, 1)), "key": f"user-{i}"})
            versions.append(answer.json()["version"])
        share = versions.count(2) / len(versions)
        # binomial(600, 0.3): sd 0.019; 4 sd either way
        assert abs(share - 0.3) < 4 * math.sqrt(0.3 * 0.7 / 600), share
        again = [http.post("/v1/predict/elec2", json={
            "records": _records(served, slice(0, 1)), "key": f"user-{i}"}).json()["version"]
            for i in range(50)]
        assert again == versions[:50]  # the same user stays on the same version


def test_shadow_never_alters_responses_and_is_logged(served: Running):
    payload = {"records": _records(served, slice(0, 4))}
    with served.client() as http:
        before = http.post("/v1/predict/elec2", json=payload).json()["predictions"]
        served.project.set_deployment("elec2", "elec2:1", shadow=2)
        http.post("/admin/reload", headers={"authorization": f"Bearer {TOKEN}"})
        answer = http.post("/v1/predict/elec2", json=payload)
        assert answer.json()["predictions"] == before and answer.json()["version"] == 1
        request_id = answer.headers["x-request-id"]
    folder = served.folder / ".tidal" / "predictions"

    def shadow_logged() -> bool:
        return any(r.request_id == request_id and r.route == "shadow" for r in read_log(folder))
    wait_until(shadow_logged, timeout=5)
    shadow = next(r for r in read_log(folder) if r.request_id == request_id
                  and r.route == "shadow")
    assert shadow.version == 2
    np.testing.assert_allclose(shadow.outputs["probabilities"],
                               _native_proba(served, 2, slice(0, 4)), atol=1e-5)


def test_a_new_stable_version_is_served_within_a_second_with_no_failed_request(
        served: Running):
    stop = threading.Event()
    results: list[tuple[int, int | None]] = []

    def load() -> None:
        with served.client() as http:
            while not stop.is_set():
                answer = http.post("/v1/predict/elec2", json=_records(served, slice(0, 1)))
                version = answer.json().get("version") if answer.status_code == 200 else None
                results.append((answer.status_code, version))

    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        workers = [pool.submit(load) for _ in range(4)]
        time.sleep(0.5)
        served.project.set_deployment("elec2", "elec2:2")
        switched = time.monotonic()
        seen = wait_until(lambda: any(v == 2 for _, v in results[-8:]), timeout=10)
        time.sleep(0.5)
        stop.set()
        for worker in workers:
            worker.result()
    assert seen < 1.5, f"the new version was served {seen:.2f} s after the change"
    assert all(status == 200 for status, _ in results), \
        {status for status, _ in results if status != 200}
    assert {v for _, v in results} == {1, 2} and time.monotonic() > switched


def test_metrics_admin_and_openapi(served: Running):
    with served.client() as http:
        http.post("/v1/predict/elec2", json=_records(served, slice(0, 2)))
        http.post("/v1/predict/elec2", json=[{"feat_1": 1}])
        text = http.get("/metrics").text
        assert 'tidal_requests_total{deployment="elec2",route="stable",status="2xx",' \
               'version="1"}' in text
        assert 'status="4xx"' in text
        assert 'tidal_request_duration_seconds_bucket{deployment="elec2",le="0.025"}' in text
        assert "tidal_batch_rows_bucket" in text and "tidal_model_loads_total" in text

        assert http.get("/admin/status").status_code == 401
        assert http.get("/admin/status", headers={"authorization": "Bearer wrong"}
                        ).status_code == 401
        status = http.get("/admin/status", headers={"authorization": f"Bearer {TOKEN}"})
        assert status.status_code == 200
        assert status.json()["deployments"][0]["runtimes"] == {"1": "onnx"}

        document = http.get("/openapi.json").json()
        assert document["openapi"].startswith("3.")
        assert "/v2/models/{name}/infer" in document["paths"]
        assert http.post("/v1/feedback", json={}).status_code == 401  # labels need a token


def test_the_log_compacts_into_parquet_from_the_command_line(served: Running):
    import json
    import os
    import subprocess
    import sys

    from tidal.serve.compaction import read_predictions

    with served.client() as http:
        for i in range(5):
            http.post("/v1/predict/elec2", json=_records(served, slice(i, i + 3)))
    command = [sys.executable, "-m", "tidal", "predictions", "compact", "--json"]
    env = {**os.environ, "TIDAL_PROJECT_DIR": str(served.folder)}
    first = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    assert first.returncode == 0, first.stderr
    summary = json.loads(first.stdout)
    assert summary["records"] == 5 and summary["rows"] == 15
    table = read_predictions(summary["into"], "elec2")
    assert table.num_rows == 15 and "in.feat_1" in table.column_names
    again = json.loads(subprocess.run(command, env=env, capture_output=True, text=True,
                                      timeout=120).stdout)
    assert again["rows"] == 0  # exactly once


def test_unknown_outputs_are_refused_before_the_model_runs(served: Running):
    body = {"id": "asks-for-nothing-real", "outputs": [{"name": "explanation"}],
            "inputs": [{"name": f, "shape": [1], "datatype": "FP64", "data": [0.1]}
                       for f in FEATURES]}
    with served.client() as http:
        answer = http.post("/v2/models/elec2/infer", json=body)
        assert answer.status_code == 400 and "explanation" in answer.json()["error"]
        http.post("/v1/predict/elec2", json=_records(served, slice(0, 1)))  # log exists
    logged = {r.request_id for r in read_log(served.folder / ".tidal" / "predictions")}
    assert "asks-for-nothing-real" not in logged


def test_a_version_has_one_role_in_a_deployment(served: Running):
    from tidal.core.errors import ValidationError

    with pytest.raises(ValidationError, match="one role"):
        served.project.set_deployment("elec2", "elec2:1", canary=2, canary_weight=0.1,
                                      shadow=2)


def test_the_request_id_in_the_body_is_echoed_in_the_body(served: Running):
    """The protocol echoes the request's own id; X-Request-Id, when given, is the id the
    prediction is logged (and answered in the header) under."""
    body = {"id": "body-id", "inputs": [{"name": f, "shape": [1], "datatype": "FP64",
                                         "data": [0.1]} for f in FEATURES]}
    with served.client() as http:
        answer = http.post("/v2/models/elec2/infer", json=body,
                           headers={"x-request-id": "header-id"})
        assert answer.status_code == 200, answer.text
        assert (answer.json()["id"], answer.headers["x-request-id"]) == ("body-id",
                                                                         "header-id")
        alone = http.post("/v2/models/elec2/infer", json=body)
        assert alone.json()["id"] == alone.headers["x-request-id"] == "body-id"


def test_a_version_that_cannot_load_holds_back_only_its_own_deployment(served: Running):
    """A corrupt artifact fails its deployment's change (which keeps serving its previous
    routing, and says so), while every other deployment moves on."""
    import os

    project = served.project
    project.set_deployment("other", "elec2:1")
    headers = {"authorization": f"Bearer {TOKEN}"}
    with served.client() as http:
        wait_until(lambda: http.get("/v2/models/other/ready").status_code == 200)
        broken = project.model_version("elec2:2")
        for digest in (broken.artifact_sha256, broken.metrics["onnx"]["sha256"]):
            path = project.artifacts.path_of(digest)
            os.chmod(path, 0o644)
            with open(path, "wb") as handle:
                handle.write(b"not the model any more")
        project.set_deployment("other", "elec2:2")  # cannot load
        moved = project.set_deployment("elec2", "elec2:1", max_batch_size=16)  # can

        def status() -> dict:
            return {d["name"]: d for d in http.get("/admin/status",
                                                   headers=headers).json()["deployments"]}
        wait_until(lambda: status()["elec2"]["revision"] == moved.revision)
        other = status()["other"]
        assert other["stable"] == 1 and "IntegrityError" in other["error"]
        assert status()["elec2"]["error"] is None
        ready = http.get("/v2/models/other/ready")
        assert ready.status_code == 503 and "IntegrityError" in ready.json()["error"]
        assert http.get("/v2/models/elec2/ready").status_code == 200
        answer = http.post("/v1/predict/other", json=_records(served, slice(0, 1)))
        assert answer.status_code == 200 and answer.json()["version"] == 1
