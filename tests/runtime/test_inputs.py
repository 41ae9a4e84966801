"""Request inputs checked against a signature: every rule, its message and its field, on
lists (the protocol layer's flat lists), numpy arrays and long columns (vectorised)."""

from __future__ import annotations

import json
import math
import subprocess
import sys
import timeit

import numpy as np
import pytest

from tidal.core.errors import ValidationError
from tidal.runtime.inputs import InputError, check_columns, columns_from_records

ELEC2 = {
    "inputs": [{"name": f"feat_{i}", "datatype": "FP64", "nullable": False}
               for i in range(1, 7)],
    "outputs": [{"name": "label", "datatype": "INT64"},
                {"name": "probabilities", "datatype": "FP64"}],
    "task": "classification",
}

MIXED = {
    "inputs": [
        {"name": "price", "datatype": "FP64", "nullable": False},
        {"name": "count", "datatype": "INT64", "nullable": False},
        {"name": "flag", "datatype": "BOOL", "nullable": False},
        {"name": "city", "datatype": "BYTES", "nullable": False},
        {"name": "maybe_price", "datatype": "FP64", "nullable": True},
        {"name": "maybe_count", "datatype": "INT64", "nullable": True},
        {"name": "maybe_flag", "datatype": "BOOL", "nullable": True},
        {"name": "maybe_city", "datatype": "BYTES", "nullable": True},
    ],
    "outputs": [{"name": "prediction", "datatype": "FP64"}],
    "task": "regression",
}


def mixed_columns(rows: int = 3) -> dict[str, list]:
    return {
        "price": [0.5, 2, -1.25][:rows] * (rows // 3 or 1),
        "count": [1, 3.0, -7][:rows] * (rows // 3 or 1),
        "flag": [True, False, True][:rows] * (rows // 3 or 1),
        "city": ["Lyon", "Oslo", ""][:rows] * (rows // 3 or 1),
        "maybe_price": [None, 1.5, math.nan][:rows] * (rows // 3 or 1),
        "maybe_count": [4, None, 6][:rows] * (rows // 3 or 1),
        "maybe_flag": [None, True, False][:rows] * (rows // 3 or 1),
        "maybe_city": ["Rome", None, "Nice"][:rows] * (rows // 3 or 1),
    }


def test_valid_columns_become_typed_arrays() -> None:
    out = check_columns(MIXED, mixed_columns())
    assert list(out) == [spec["name"] for spec in MIXED["inputs"]]
    assert out["price"].dtype == np.float64 and out["price"].tolist() == [0.5, 2.0, -1.25]
    assert out["count"].dtype == np.int64 and out["count"].tolist() == [1, 3, -7]
    assert out["flag"].dtype == np.bool_ and out["flag"].tolist() == [True, False, True]
    assert out["city"].dtype == object and out["city"].tolist() == ["Lyon", "Oslo", ""]
    # missing values: NaN for numbers (an integer input with one becomes float64),
    # None for strings and booleans
    assert out["maybe_price"].dtype == np.float64
    assert np.isnan(out["maybe_price"][[0, 2]]).all() and out["maybe_price"][1] == 1.5
    assert out["maybe_count"].dtype == np.float64
    assert out["maybe_count"][[0, 2]].tolist() == [4.0, 6.0] and np.isnan(out["maybe_count"][1])
    assert out["maybe_flag"].dtype == object
    assert out["maybe_flag"].tolist() == [None, True, False]
    assert out["maybe_city"].tolist() == ["Rome", None, "Nice"]
    # without missing values a nullable integer input stays int64
    row = {name: values[:1] for name, values in mixed_columns().items()}
    row["maybe_count"] = [4]
    assert check_columns(MIXED, row)["maybe_count"].dtype == np.int64


def test_numpy_arrays_and_long_columns_give_the_same_arrays() -> None:
    lists = mixed_columns(300)
    assert len(lists["price"]) == 300
    arrays = {name: np.array(values, dtype=object) if name.startswith("maybe") or
              name == "city" else np.array(values) for name, values in lists.items()}
    short = check_columns(MIXED, mixed_columns())
    for columns in (lists, arrays):
        out = check_columns(MIXED, columns)
        for name, values in out.items():
            assert values.dtype == short[name].dtype, name
            assert len(values) == 300
            np.testing.assert_array_equal(values[:3], short[name])
    # [n, 1] arrays (a tensor's shape) are accepted; other shapes are not
    column = np.arange(4, dtype=np.float64).reshape(-1, 1)
    out = check_columns(ELEC2, {f"feat_{i}": column for i in range(1, 7)})
    assert out["feat_1"].shape == (4,)
    with pytest.raises(InputError, match=r"input 'feat_1' must be a flat list of values, got "
                                         r"an array of shape \[2, 2\]") as error:
        check_columns(ELEC2, {f"feat_{i}": np.zeros((2, 2)) for i in range(1, 7)})
    assert error.value.field == "feat_1"


BAD_VALUES = [
    # (input, value, message)
    ("price", "abc", "input 'price': expected a number, got 'abc' at row 1"),
    ("price", True, "input 'price': expected a number, got true at row 1"),
    ("price", [1.0], "input 'price': expected a number, got a list at row 1"),
    ("price", math.inf, "input 'price': got Infinity at row 1, which is not finite"),
    ("maybe_price", -math.inf, "input 'maybe_price': got -Infinity at row 1, which is not "
                               "finite"),
    ("price", None, "input 'price': got null at row 1, but the input is not nullable"),
    ("price", math.nan, "input 'price': got NaN at row 1, but the input is not nullable"),
    ("count", 2.5, "input 'count': expected an integer, got 2.5 at row 1"),
    ("count", False, "input 'count': expected an integer, got false at row 1"),
    ("count", "3", "input 'count': expected an integer, got '3' at row 1"),
    ("count", math.inf, "input 'count': got Infinity at row 1, which is not finite"),
    ("maybe_count", math.inf, "input 'maybe_count': got Infinity at row 1, which is not "
                              "finite"),
    ("count", None, "input 'count': got null at row 1, but the input is not nullable"),
    ("count", 2**70, "input 'count': 1180591620717411303424 at row 1 is out of range for a "
                     "64-bit integer"),
    ("flag", 1, "input 'flag': expected true or false, got 1 at row 1"),
    ("flag", "true", "input 'flag': expected true or false, got 'true' at row 1"),
    ("flag", None, "input 'flag': got null at row 1, but the input is not nullable"),
    ("city", 3, "input 'city': expected a string, got 3 at row 1"),
    ("city", {"a": 1}, "input 'city': expected a string, got an object at row 1"),
    ("city", None, "input 'city': got null at row 1, but the input is not nullable"),
    ("maybe_city", 4.5, "input 'maybe_city': expected a string, got 4.5 at row 1"),
]


@pytest.mark.parametrize(("field", "value", "message"), BAD_VALUES)
def test_a_bad_value_names_its_input_row_and_problem(field: str, value, message: str) -> None:
    columns = mixed_columns()
    columns[field] = list(columns[field])
    columns[field][1] = value
    with pytest.raises(InputError) as error:
        check_columns(MIXED, columns)
    assert str(error.value).startswith(message), str(error.value)
    assert error.value.field == field
    # the same mistake in a record, and deep in a long column (the vectorised path)
    records = [dict(zip(columns, row, strict=True)) for row in zip(*columns.values(),
                                                                   strict=True)]
    with pytest.raises(InputError) as error:
        columns_from_records(MIXED, records)
    assert str(error.value).startswith(message) and error.value.field == field
    long = mixed_columns(300)
    long[field] = list(long[field])
    long[field][241] = value
    with pytest.raises(InputError) as error:
        check_columns(MIXED, long)
    assert str(error.value).startswith(message.replace("row 1", "row 241"))


@pytest.mark.parametrize(("array", "message"), [
    (np.array([0.1, np.inf, 0.3]), "got Infinity at row 1, which is not finite"),
    (np.array([0.1, np.nan, 0.3]), "got NaN at row 1, but the input is not nullable"),
    (np.array([True, False, True]), "expected a number, got true at row 0"),
    (np.array(["a", "b", "c"]), "expected a number, got 'a' at row 0"),
    (np.array([1.0, 2.0, "x"], dtype=object), "expected a number, got 'x' at row 2"),
])
def test_numpy_columns_are_checked_too(array: np.ndarray, message: str) -> None:
    columns = {f"feat_{i}": np.array([0.1, 0.2, 0.3]) for i in range(1, 7)}
    columns["feat_2"] = array
    with pytest.raises(InputError, match=f"^input 'feat_2': {message}") as error:
        check_columns(ELEC2, columns)
    assert error.value.field == "feat_2"


def test_numpy_integer_columns() -> None:
    signature = {"inputs": [{"name": "n", "datatype": "INT64", "nullable": True},
                            {"name": "x", "datatype": "FP64", "nullable": True}]}
    out = check_columns(signature, {"n": np.array([1.0, 2.0]), "x": np.array([1, 2])})
    assert out["n"].dtype == np.int64 and out["x"].dtype == np.float64
    out = check_columns(signature, {"n": np.array([1.0, np.nan]), "x": np.array([1.0, np.nan])})
    assert out["n"].dtype == np.float64 and np.isnan(out["n"][1])
    with pytest.raises(InputError, match="input 'n': expected an integer, got 1.5 at row 1"):
        check_columns(signature, {"n": np.array([1.0, 1.5]), "x": np.array([1, 2])})
    big = np.array([2**64 - 1, 1], dtype=np.uint64)
    with pytest.raises(InputError, match="input 'n': 18446744073709551615 at row 0 is out of "
                                         "range"):
        check_columns(signature, {"n": big, "x": np.array([1, 2])})


def test_missing_unexpected_and_misshapen_inputs() -> None:
    columns = {f"feat_{i}": [0.5, 0.25] for i in range(1, 7)}
    missing = {k: v for k, v in columns.items() if k != "feat_3"}
    with pytest.raises(InputError, match=r"^missing input 'feat_3' \(the model takes feat_1, "
                                         r"feat_2, feat_3") as error:
        check_columns(ELEC2, missing)
    assert error.value.field == "feat_3"

    with pytest.raises(InputError, match="^unexpected input 'colour'") as error:
        check_columns(ELEC2, {**columns, "colour": ["red", "blue"]})
    assert error.value.field == "colour"

    with pytest.raises(InputError, match="input 'feat_4' has 3 values but 'feat_1' has 2") as e:
        check_columns(ELEC2, {**columns, "feat_4": [1.0, 2.0, 3.0]})
    assert e.value.field == "feat_4"

    with pytest.raises(InputError, match="input 'feat_1' has no values") as e:
        check_columns(ELEC2, {name: [] for name in columns})
    assert e.value.field == "feat_1"

    with pytest.raises(InputError, match="input 'feat_2' must be a list of values, got 0.5") as e:
        check_columns(ELEC2, {**columns, "feat_2": 0.5})
    assert e.value.field == "feat_2"

    with pytest.raises(InputError, match="inputs must be an object of named columns, got a "
                                         "list") as e:
        check_columns(ELEC2, [[0.5] * 6])  # type: ignore[arg-type]
    assert e.value.field is None


def test_row_limit() -> None:
    columns = {f"feat_{i}": [0.5] * 5 for i in range(1, 7)}
    assert len(check_columns(ELEC2, columns, max_rows=5)["feat_1"]) == 5
    with pytest.raises(InputError, match="the request has 5 rows; at most 4 are accepted") as e:
        check_columns(ELEC2, columns, max_rows=4)
    assert e.value.field is None
    records = [{f"feat_{i}": 0.5 for i in range(1, 7)}] * 5
    with pytest.raises(InputError, match="the request has 5 records; at most 4 are accepted"):
        columns_from_records(ELEC2, records, max_rows=4)


def test_records() -> None:
    records = [{"feat_1": 0.1, "feat_2": 0.2, "feat_3": 0.3, "feat_4": 0.4, "feat_5": 0.5,
                "feat_6": 1}, {f"feat_{i}": 0.0 for i in range(6, 0, -1)}]
    out = columns_from_records(ELEC2, records)
    assert list(out) == [f"feat_{i}" for i in range(1, 7)]
    assert out["feat_6"].tolist() == [1.0, 0.0] and out["feat_6"].dtype == np.float64

    for bad, message in [({"records": records}, "records must be a list of JSON objects, got "
                                                "an object"),
                         ([], "records is empty: send at least one record"),
                         ([records[0], [0.1] * 6], "record 1 is not a JSON object (got a "
                                                   "list)"),
                         ([records[0], "x"], "record 1 is not a JSON object (got 'x')")]:
        with pytest.raises(InputError) as error:
            columns_from_records(ELEC2, bad)
        assert str(error.value) == message and error.value.field is None

    without = {k: v for k, v in records[1].items() if k != "feat_5"}
    with pytest.raises(InputError, match="record 1 has no 'feat_5'") as error:
        columns_from_records(ELEC2, [records[0], without])
    assert error.value.field == "feat_5"
    # one key renamed: the record has the right number of keys but not the right ones
    renamed = {**without, "feat_50": 0.5}
    with pytest.raises(InputError, match="record 1 has no 'feat_5'") as error:
        columns_from_records(ELEC2, [records[0], renamed])
    assert error.value.field == "feat_5"
    with pytest.raises(InputError, match=r"unexpected input 'extra' in record 0 \(the model "
                                         "takes feat_1") as error:
        columns_from_records(ELEC2, [{**records[0], "extra": 1}, records[1]])
    assert error.value.field == "extra"


def test_older_signatures_and_bad_signatures() -> None:
    # no "nullable" (versions registered before it existed): treated as nullable
    old = {"inputs": [{"name": "x", "datatype": "FP64"}, {"name": "s", "dtype": "BYTES"}],
           "outputs": []}
    out = check_columns(old, {"x": [None], "s": [None]})
    assert np.isnan(out["x"][0]) and out["s"].tolist() == [None]
    with pytest.raises(ValidationError, match="lists no inputs"):
        check_columns({"inputs": []}, {"x": [1.0]})
    with pytest.raises(ValidationError, match="gives input 'x' the datatype 'COMPLEX'"):
        check_columns({"inputs": [{"name": "x", "datatype": "COMPLEX"}]}, {"x": [1.0]})


def test_input_error_is_a_validation_error() -> None:
    error = InputError("input 'x': expected a number, got 'a' at row 0", field="x")
    assert isinstance(error, ValidationError) and isinstance(error, ValueError)
    assert error.field == "x" and InputError("too many rows").field is None


def test_one_row_is_checked_fast() -> None:
    """The server's hot path: one row of six inputs, from columns or from a record."""
    columns = {f"feat_{i}": [0.1 * i] for i in range(1, 7)}
    record = [{f"feat_{i}": 0.1 * i for i in range(1, 7)}]
    check_columns(ELEC2, columns)
    for call in (lambda: check_columns(ELEC2, columns),
                 lambda: columns_from_records(ELEC2, record)):
        best = min(timeit.repeat(call, number=2_000, repeat=7)) / 2_000
        print(f"{best * 1e6:.1f} µs per one-row request")
        assert best < 100e-6  # ~15-25 µs measured; generous for a busy test machine


def test_the_runtime_imports_no_dataframe_or_model_library() -> None:
    code = ("import json, sys; import tidal.runtime.inputs, tidal.runtime.loaded, "
            "tidal.runtime.onnx; print(json.dumps([m for m in ['pandas', 'sklearn', "
            "'onnxruntime', 'onnx', 'tidal.train', 'tidal.pipeline', 'tidal.serve'] "
            "if m in sys.modules]))")
    loaded = json.loads(subprocess.check_output([sys.executable, "-c", code], text=True))
    assert loaded == []
