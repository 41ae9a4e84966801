"""POST /v1/feedback on a real server: labels by request id or by key and time, stored
with their duplicates counted; a token is needed; bad labels get a 400 naming the field."""

from __future__ import annotations

from serve_harness import TOKEN, Running

AUTH = {"authorization": f"Bearer {TOKEN}"}


def _predict(http, request_id: str, row: dict) -> None:
    answer = http.post("/v1/predict/elec2", json=[row], headers={"x-request-id": request_id})
    assert answer.status_code == 200, answer.text


def test_labels_are_stored_and_a_later_label_supersedes(served: Running):
    row = served.rows.drop(columns=["target"]).iloc[0].to_dict()
    with served.client() as http:
        _predict(http, "req-1", row)
        first = http.post("/v1/feedback", json={"request_id": "req-1", "label": 1},
                          headers=AUTH)
        assert first.status_code == 200 and first.json() == {"added": 1, "superseded": 0}
        # a list, with a correction of req-1, a label by key and time, and one for a
        # request this server never saw (stored: the join reports it, nothing is lost)
        again = http.post("/v1/feedback", headers=AUTH, json={"deployment": "elec2", "labels": [
            {"request_id": "req-1", "label": 0},
            {"key": "customer-7", "event_time": 1_700_000_000, "label": 1},
            {"request_id": "never-seen", "row": 2, "label": 0}]})
        assert again.status_code == 200 and again.json() == {"added": 3, "superseded": 1}
    stored = served.project.feedback.since("elec2")
    assert [(s.request_id, s.row, s.entity_key, s.label, s.source) for s in stored] == [
        ("req-1", 0, None, 1, "api"), ("req-1", 0, None, 0, "api"),
        (None, 0, "customer-7", 1, "api"), ("never-seen", 2, None, 0, "api")]


def test_bad_labels_are_refused_with_the_field_named_and_nothing_stored(served: Running):
    with served.client() as http:
        cases = [
            ({"label": 1}, 400, "request_id"),
            ({"request_id": "r", "label": None}, 400, "'label'"),
            ({"request_id": "r", "label": [1]}, 400, "'label'"),
            ({"request_id": "r", "label": 1, "row": -1}, 400, "'row'"),
            ({"request_id": "r", "label": 1, "row": 2**63}, 400, "'row'"),
            ({"key": "k", "label": 1}, 400, "'event_time'"),
            ({"request_id": "r", "key": "k", "event_time": 1, "label": 1}, 400, "either"),
            ({"request_id": "r\nx", "label": 1}, 400, "'request_id'"),
            ({"request_id": "r", "label": 1, "colour": "red"}, 400, "colour"),
            ([{"request_id": "r", "label": 1}, {"label": 2}], 400, "label 1"),
            ([], 400, "send a label"),
            ({"deployment": "nope", "request_id": "r", "label": 1}, 404, "nope"),
        ]
        for body, status, words in cases:
            answer = http.post("/v1/feedback", json=body, headers=AUTH)
            assert answer.status_code == status, (body, answer.text)
            assert words in answer.json()["error"], (body, answer.json())
        limit = served.project.settings.serve.max_body_bytes

        def chunks():  # no Content-Length: the server must count as the body arrives
            yield b'{"request_id": "r", "label": "'
            for _ in range(limit // 2**16 + 1):
                yield b"x" * 2**16
            yield b'"}'
        chunked = http.post("/v1/feedback", content=chunks(), headers=AUTH)
        assert chunked.status_code == 413 and "limit" in chunked.json()["error"]
        broken = http.post("/v1/feedback", content=b"{not json", headers=AUTH)
        assert broken.status_code == 400 and "JSON" in broken.json()["error"]
        assert http.post("/v1/feedback", json={"request_id": "r", "label": 1}
                         ).status_code == 401
        assert http.post("/v1/feedback", json={"request_id": "r", "label": 1},
                         headers={"authorization": "Bearer wrong"}).status_code == 401
    assert served.project.feedback.count("elec2") == 0


def test_the_entity_key_is_logged_for_labels_to_join_on(served: Running):
    from tidal.serve.predlog import read_log

    row = served.rows.drop(columns=["target"]).iloc[0].to_dict()
    with served.client() as http:
        keyed = http.post("/v1/predict/elec2", json={"records": [row], "key": "customer-7"})
        assert keyed.status_code == 200
        by_header = http.post("/v1/predict/elec2", json=[row],
                              headers={"x-tidal-route-key": "customer-8"})
        assert by_header.status_code == 200
        bad = http.post("/v1/predict/elec2", json=[row], headers={"x-tidal-route-key": "a\tb"})
        assert bad.status_code == 400 and "key" in bad.json()["error"]
    logged = {r.request_id: r.key for r in read_log(served.project.settings.serve.log_path(
        served.folder))}
    assert logged[keyed.headers["x-request-id"]] == "customer-7"
    assert logged[by_header.headers["x-request-id"]] == "customer-8"


def test_a_feedback_token_alone_is_enough_and_no_token_turns_feedback_off(
        trained_project, monkeypatch):
    from tidal.project import Project
    from tidal.serve.server import AdminRefused, Server

    monkeypatch.delenv("TIDAL_ADMIN_TOKEN", raising=False)
    monkeypatch.delenv("TIDAL_FEEDBACK_TOKEN", raising=False)
    with Project(trained_project) as project:
        closed = Server(project)
        try:
            closed.check_feedback("Bearer anything")
        except AdminRefused as refused:
            assert refused.status == 403 and "TIDAL_FEEDBACK_TOKEN" in str(refused)
        else:
            raise AssertionError("feedback must be off without a token")
        monkeypatch.setenv("TIDAL_FEEDBACK_TOKEN", "labels-only")
        server = Server(project)
        server.check_feedback("Bearer labels-only")  # accepted
        for wrong in (None, "Bearer nope", "labels-only"):
            try:
                server.check_feedback(wrong)
            except AdminRefused as refused:
                assert refused.status == 401
            else:
                raise AssertionError(f"{wrong!r} must be refused")
        try:  # the feedback token is not an admin token
            server.check_admin("Bearer labels-only")
        except AdminRefused as refused:
            assert refused.status == 403
        else:
            raise AssertionError("the feedback token must not open admin endpoints")
