"""Bad input never gets a 5xx: generated request bodies, from arbitrary JSON to near-valid
V2 tensors and records, sent to a live server; every answer is a 2xx or a 4xx with a JSON
``{"error": ...}`` body."""

from __future__ import annotations

import json
import string

import httpx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from serve_harness import FEATURES, Running

#: any JSON value, including the NaN and Infinity tokens Python's json writes (not JSON)
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=6),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(max_size=6), children, max_size=4),
    max_leaves=12)
NAMES = st.sampled_from([*FEATURES, "feat_0", "", "FEAT_1"])
NUMBERS = st.integers(-2**70, 2**70) | st.floats() | st.none() | st.booleans() \
    | st.text(max_size=4)

TENSOR = st.fixed_dictionaries(
    {"name": NAMES | JSON_VALUES,
     "shape": st.lists(st.integers(-2, 3), max_size=3) | JSON_VALUES,
     "datatype": st.sampled_from(["FP64", "FP32", "FP16", "INT64", "UINT8", "BOOL",
                                  "BYTES", "fp64", "COMPLEX"]) | JSON_VALUES,
     "data": st.lists(NUMBERS | st.lists(NUMBERS, max_size=2), max_size=3) | JSON_VALUES},
    optional={"parameters": st.fixed_dictionaries(
        {}, optional={"binary_data_size": st.integers(-8, 64) | JSON_VALUES})
        | JSON_VALUES})
V2_BODY = st.fixed_dictionaries(
    {"inputs": st.lists(TENSOR, max_size=8) | JSON_VALUES},
    optional={"id": JSON_VALUES, "parameters": JSON_VALUES,
              "outputs": st.lists(st.fixed_dictionaries({"name": NAMES | JSON_VALUES}),
                                  max_size=2) | JSON_VALUES}) | JSON_VALUES
RECORDS = st.lists(st.dictionaries(NAMES, NUMBERS, max_size=8), max_size=3) | JSON_VALUES
V1_BODY = RECORDS | st.fixed_dictionaries(
    {"records": RECORDS}, optional={"id": JSON_VALUES, "key": JSON_VALUES,
                                    "event_time": JSON_VALUES, "deployment": JSON_VALUES})
SHORT_TEXT = st.text(max_size=30) | st.text(string.printable, max_size=30)
HEADERS = st.fixed_dictionaries({}, optional={
    "x-event-time": SHORT_TEXT,
    "x-tidal-route-key": SHORT_TEXT,
    "x-request-id": SHORT_TEXT,
    "inference-header-content-length": st.integers(-5, 400).map(str) | st.text(max_size=5),
})


@st.composite
def _value(draw) -> object:
    """A feature value: a plain number mostly, anything now and then."""
    if draw(st.integers(0, 9)) == 0:
        return draw(NUMBERS)
    return draw(st.floats(-1e6, 1e6) | st.integers(-1000, 1000))


@st.composite
def near_valid_v2(draw) -> dict:
    """A V2 request for the six features, right more often than not, so the checks past
    parsing (ids, keys, event times, outputs, the model, the log) are reached too."""
    rows = draw(st.integers(1, 3))
    body: dict = {"inputs": [{"name": f, "shape": [rows], "datatype": "FP64",
                              "data": [draw(_value()) for _ in range(rows)]}
                             for f in FEATURES]}
    body.update(draw(st.fixed_dictionaries({}, optional={
        "id": SHORT_TEXT | JSON_VALUES,
        "parameters": st.fixed_dictionaries({}, optional={
            "event_time": SHORT_TEXT | NUMBERS, "binary_data_output": JSON_VALUES}),
        "outputs": st.lists(st.fixed_dictionaries({"name": st.sampled_from(
            ["label", "probabilities", "nope"])}), max_size=2)})))
    return body


@st.composite
def near_valid_records(draw) -> dict:
    records = [{f: draw(_value()) for f in FEATURES}
               for _ in range(draw(st.integers(1, 3)))]
    body: dict = {"records": records}
    body.update(draw(st.fixed_dictionaries({}, optional={
        "id": SHORT_TEXT | JSON_VALUES, "key": SHORT_TEXT | JSON_VALUES,
        "event_time": SHORT_TEXT | NUMBERS})))
    return body
FUZZ = settings(max_examples=250, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.function_scoped_fixture])


def _check(answer: httpx.Response) -> None:
    assert answer.status_code < 500, (answer.status_code, answer.text)
    if answer.status_code >= 400:
        assert isinstance(answer.json()["error"], str) and answer.json()["error"]


def _printable(headers: dict[str, str]) -> dict[str, str]:
    """Header values an HTTP client can send: printable ASCII without surrounding
    whitespace (the client itself refuses the rest)."""
    return {k: v for k, v in headers.items()
            if v.isprintable() and v.isascii() and v == v.strip()}


@FUZZ
@given(body=V2_BODY | near_valid_v2(), headers=HEADERS,
       binary_tail=st.just(b"") | st.binary(max_size=24))
def test_generated_v2_requests_never_get_a_5xx(served: Running, body, headers, binary_tail):
    text = json.dumps(body).encode()  # NaN/Infinity become tokens JSON does not allow
    with served.client() as http:
        _check(http.post("/v2/models/elec2/infer", content=text + binary_tail,
                         headers={"content-type": "application/json",
                                  **_printable(headers)}))


@FUZZ
@given(body=V1_BODY | near_valid_records(), headers=HEADERS)
def test_generated_records_never_get_a_5xx(served: Running, body, headers):
    with served.client() as http:
        _check(http.post("/v1/predict/elec2", content=json.dumps(body).encode(),
                         headers={"content-type": "application/json",
                                  **_printable(headers)}))
