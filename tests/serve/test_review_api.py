"""The review queue over HTTP on a real server: list, claim, answer (a label becomes
feedback), agreement; a token is needed; mistakes get a 4xx naming them."""

from __future__ import annotations

from serve_harness import TOKEN, Running

from tidal.store.review import NewReviewItem

AUTH = {"authorization": f"Bearer {TOKEN}"}


def test_a_reviewer_claims_and_answers_items_over_http(served: Running):
    served.project.review.add([
        NewReviewItem("elec2", f"req-{i}", 0, 1_700_000_000.0 + i, "sample", {"feat_1": 0.5},
                      {"label": 1}) for i in range(3)]
        # an item of a deployment this server does not serve: invisible to it
        + [NewReviewItem("ghost", "req-g", 0, 1_700_000_000.0, "sample", {}, {})], now=1.0)
    ghost = served.project.review.items("ghost")[0].id
    with served.client() as http:
        assert http.get("/v1/review").status_code == 401
        listed = http.get("/v1/review", params={"deployment": "elec2"}, headers=AUTH)
        assert listed.status_code == 200 and [i["request_id"] for i in listed.json()] == [
            "req-0", "req-1", "req-2"]
        item = http.post("/v1/review/next", json={"deployment": "elec2", "reviewer": "ana"},
                         headers=AUTH).json()
        other = http.post("/v1/review/next", json={"deployment": "elec2", "reviewer": "ben"},
                          headers=AUTH).json()
        assert item["request_id"] == "req-0" and other["request_id"] == "req-1"
        answered = http.post(f"/v1/review/{item['id']}/answer", headers=AUTH,
                             json={"reviewer": "ana", "label": 0, "familiar": False})
        assert answered.status_code == 200 and answered.json()["status"] == "done"
        again = http.post(f"/v1/review/{item['id']}/answer", headers=AUTH,
                          json={"reviewer": "ana", "label": 1})
        assert again.status_code == 409
        unsure = http.post(f"/v1/review/{other['id']}/answer", headers=AUTH,
                           json={"reviewer": "ben", "unsure": True, "note": "blurry"})
        assert unsure.status_code == 200
        for path, body, status, words in [
                ("/v1/review/999/answer", {"reviewer": "ana", "label": 1}, 404, "999"),
                ("/v1/review/abc/answer", {"reviewer": "ana", "label": 1}, 404, "abc"),
                ("/v1/review/%C2%B2/answer", {"reviewer": "ana", "label": 1}, 404, "²"),
                ("/v1/review/99999999999999999999999/answer", {"reviewer": "ana",
                                                               "label": 1}, 404, "9999"),
                (f"/v1/review/{item['id']}/answer", {"reviewer": "cy"}, 400, "unsure"),
                (f"/v1/review/{item['id']}/answer", {"reviewer": "cy", "label": 1,
                                                     "familiar": "yes"}, 400, "familiar"),
                ("/v1/review/next", {"deployment": "nope", "reviewer": "ana"}, 404, "nope"),
                ("/v1/review/next", {"deployment": "elec2", "reviewer": ""}, 400, "reviewer")]:
            answer = http.post(path, json=body, headers=AUTH)
            assert answer.status_code == status, (path, body, answer.text)
            assert words in answer.json()["error"], answer.json()
        for path, body, status, words in [
                (f"/v1/review/{ghost}/answer", {"reviewer": "ana", "label": 1}, 404, "no review"),
                (f"/v1/review/{item['id']}/answer", {"reviewer": "cy", "label": "x" * 1001},
                 400, "label")]:
            answer = http.post(path, json=body, headers=AUTH)
            assert answer.status_code == status, (path, answer.text)
            assert words in answer.json()["error"], answer.json()
        assert [i["request_id"] for i in http.get("/v1/review", headers=AUTH).json()] == [
            "req-0", "req-1", "req-2"]
        for params in ({"deployment": "ghost"}, {"deployment": "nope"}):
            assert http.get("/v1/review", params=params, headers=AUTH).status_code == 404
            assert http.get("/v1/review/agreement", params=params,
                            headers=AUTH).status_code == 404
        assert http.post("/v1/review/next", content=b"[1", headers=AUTH).status_code == 400
        agreement = http.get("/v1/review/agreement", params={"deployment": "elec2"},
                             headers=AUTH)
        assert agreement.json() == {"items": 0, "pairs": [], "classes": []}
    labels = served.project.feedback.since("elec2")
    assert [(f.request_id, f.label, f.source, f.actor) for f in labels] == [
        ("req-0", 0, "review", "ana")]
    answers = served.project.review.answers("elec2")
    assert [(a["reviewer"], a["unsure"], a["familiar"], a["note"]) for a in answers] == [
        ("ana", False, False, None), ("ben", True, None, "blurry")]
