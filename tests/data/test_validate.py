"""Validating real batches: each anomaly found with its count and examples; bad files raise."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tidal.core.config import load_settings
from tidal.core.errors import ValidationError
from tidal.data import (
    ColumnSchema,
    DataReadError,
    Schema,
    ValidationResult,
    infer_schema,
    validate,
)

DATA_DIR = Path(__file__).resolve().parents[3] / "shared" / "data"
BIKE = DATA_DIR / "bike_sharing_hourly.csv.gz"
CENSUS_2015 = DATA_DIR / "us_census_ma_employment_2015_reference.parquet"
CENSUS_LATER = DATA_DIR / "us_census_ma_employment_2016_2018_analysis.parquet"


@pytest.fixture(scope="module")
def bike() -> pd.DataFrame:
    return pd.read_csv(BIKE, parse_dates=["dteday"])


@pytest.fixture(scope="module")
def bike_2011(bike: pd.DataFrame) -> pd.DataFrame:
    return bike[bike["dteday"].dt.year == 2011].reset_index(drop=True)


@pytest.fixture(scope="module")
def schema(bike_2011: pd.DataFrame) -> Schema:
    return infer_schema(bike_2011, target="cnt",
                        roles={"casual": "metadata", "registered": "metadata"})


def only(result: ValidationResult, kind: str, column: str | None = None):
    found = result.find(kind, column)
    assert len(found) == 1, result.summary()
    return found[0]


def test_2012_flags_only_what_really_changed(bike, bike_2011, schema):
    """Demand grew ~60 % in 2012 and a few hours were hotter than any of 2011."""
    bike_2012 = bike[bike["dteday"].dt.year == 2012]
    result = validate(bike_2012, schema)
    assert {a.kind for a in result.anomalies} == {"out_of_range"}, result.summary()
    expected = {
        name: int((bike_2012[name] > bike_2011[name].max()).sum()
                  + (bike_2012[name] < bike_2011[name].min()).sum())
        for name in ("temp", "atemp", "hum", "windspeed", "casual", "registered", "cnt")
    }
    assert {a.column: a.count for a in result.anomalies} == {
        name: count for name, count in expected.items() if count
    }
    cnt = only(result, "out_of_range", "cnt")
    assert cnt.count > 100 and all(v > 651 for v in cnt.examples)
    assert 1 <= len(cnt.examples) <= 5
    # the reference itself is clean
    assert validate(bike_2011, schema).ok


def make_bad_batch(bike_2011: pd.DataFrame, schema: Schema) -> pd.DataFrame:
    batch = bike_2011.iloc[:2000].copy()
    # weathersit: 30 % missing, above the inferred allowance
    batch.loc[batch.index[:600], "weathersit"] = None
    # season: an unknown category in 7 rows
    batch.loc[batch.index[1000:1007], "season"] = "monsoon"
    # temp: 3 readings above the 2011 maximum, 1 below the minimum
    batch.loc[batch.index[[1500, 1501, 1502]], "temp"] = [60.0, 61.5, 60.0]
    batch.loc[batch.index[1503], "temp"] = -30.0
    # windspeed: 4 rows hold words, so the column is text where a float is expected
    batch["windspeed"] = batch["windspeed"].astype(str)
    batch.loc[batch.index[[10, 20, 30, 40]], "windspeed"] = ["calm", "gusty", "calm", "n/a?"]
    # hum dropped, an extra column added
    batch = batch.drop(columns=["hum"])
    batch["station"] = "A"
    assert batch["weathersit"].isna().mean() > schema.column("weathersit").max_missing
    return batch


EXPECTED_BAD = {
    ("too_many_missing", "weathersit"): None,  # count depends on the rows' own NaN
    ("unknown_category", "season"): (7, ["monsoon"]),
    ("out_of_range", "temp"): (4, [60.0, 61.5, -30.0]),
    ("wrong_type", "windspeed"): (4, ["calm", "gusty", "n/a?"]),
    ("missing_column", "hum"): (2000, []),
    ("unexpected_column", "station"): (2000, ["A"]),
}


def check_bad_result(result: ValidationResult, batch: pd.DataFrame):
    found = {(a.kind, a.column): a for a in result.anomalies}
    assert set(found) == set(EXPECTED_BAD), result.summary()
    for key, expected in EXPECTED_BAD.items():
        if expected is not None:
            assert (found[key].count, found[key].examples) == expected, key
    missing = found[("too_many_missing", "weathersit")]
    assert missing.count == int(batch["weathersit"].isna().sum()) >= 600
    assert "more than the" in missing.message and missing.examples == []
    assert not result.ok
    json.dumps(result.to_dict())  # JSON-safe as a whole


def test_a_bad_batch_reports_each_anomaly(bike_2011, schema):
    batch = make_bad_batch(bike_2011, schema)
    result = validate(batch, schema)
    check_bad_result(result, batch)
    assert result.num_rows == 2000 and result.source == "<DataFrame>"
    text = result.summary()
    assert "season: 7 values outside the domain" in text and "'monsoon'" in text
    with pytest.raises(ValidationError, match="unknown_category"):
        result.raise_for_anomalies()


@pytest.mark.parametrize("suffix", ["csv", "csv.gz", "parquet"])
def test_the_same_bad_batch_read_from_files(tmp_path, bike_2011, schema, suffix):
    batch = make_bad_batch(bike_2011, schema)
    path = tmp_path / f"batch.{suffix}"
    if suffix == "parquet":
        batch.to_parquet(path, index=False)
    else:
        batch.to_csv(path, index=False)  # None becomes an empty field, read back as ""
    result = validate(path, schema)
    check_bad_result(result, batch)
    assert result.source == str(path)


def test_integer_and_float_widening_rules(schema, bike_2011):
    batch = bike_2011.iloc[:100].copy()
    batch["cnt"] = batch["cnt"].astype(float)  # integral floats: fine
    batch["temp"] = batch["temp"].round().astype(int).clip(-7, 37)  # ints where floats: fine
    assert validate(batch, schema).ok

    batch.loc[batch.index[:3], "cnt"] = [2.5, np.nan, 7.25]
    result = validate(batch, schema)
    wrong = only(result, "wrong_type", "cnt")
    assert (wrong.count, wrong.examples) == (2, [2.5, 7.25])
    assert only(result, "not_nullable", "cnt").count == 1  # NaN is missing, not a type


def test_codes_read_as_numbers_still_meet_a_string_domain(tmp_path):
    schema = Schema([ColumnSchema("SEX", "string", domain=["1", "2"])])
    assert validate(pd.DataFrame({"SEX": [1, 2, 2]}), schema).ok
    result = validate(pd.DataFrame({"SEX": [1, 3, 3]}), schema)
    assert only(result, "unknown_category").examples == ["3"]
    integer_codes = Schema([ColumnSchema("code", "integer", domain=[1, 2, 3])])
    result = validate(pd.DataFrame({"code": [1, 4, 4, 9]}), integer_codes)
    assert (only(result, "unknown_category").count, result.anomalies[0].examples) == (3, [4, 9])


def test_types_that_cannot_be_compared_are_wrong_type():
    schema = Schema([ColumnSchema("when", "date"), ColumnSchema("x", "float"),
                     ColumnSchema("ok", "boolean"), ColumnSchema("s", "string")])
    frame = pd.DataFrame({
        "when": ["2024-01-02", "yesterday", "2024-01-03T10:00:00"],
        "x": [True, False, True],
        "ok": [0, 1, 2],
        "s": [0.5, 1.5, 0.5],
    })
    result = validate(frame, schema)
    assert only(result, "wrong_type", "when").examples == ["yesterday"]
    assert only(result, "wrong_type", "x").count == 3
    ok = only(result, "wrong_type", "ok")
    assert (ok.count, ok.examples) == (1, [2])
    assert only(result, "wrong_type", "s").examples == [0.5, 1.5]
    # a column with no value at all has no type to be wrong about
    empty = pd.DataFrame({"x": [None, None]}, dtype=object)
    assert validate(empty, Schema([ColumnSchema("x", "float")])).ok


def test_examples_are_json_safe_and_distinct():
    times = pd.date_range("2024-01-01", periods=10, freq="h")
    frame = pd.DataFrame({"v": [100.0] * 4 + [101.0, 102.0, 103.0, 104.0, 105.0, 106.0],
                          "when": times})
    result = validate(frame, Schema([ColumnSchema("v", "float", max=10)]))
    out = only(result, "out_of_range")
    assert out.count == 10 and out.examples == [100.0, 101.0, 102.0, 103.0, 104.0]
    stray = only(result, "unexpected_column", "when")
    assert stray.examples[0] == "2024-01-01T00:00:00"
    assert json.loads(json.dumps(result.to_dict()))["anomalies"][0]["kind"] == "out_of_range"


def test_missing_values_nan_and_null_alike():
    schema = Schema([ColumnSchema("x", "float", max_missing=0.25)])
    assert validate(pd.DataFrame({"x": [1.0, np.nan, 2.0, 3.0]}), schema).ok
    result = validate(pa.table({"x": pa.array([1.0, None, float("nan"), 3.0])}), schema)
    anomaly = only(result, "too_many_missing", "x")
    assert anomaly.count == 2 and "50.0% missing (2 of 4 rows)" in anomaly.message


def test_empty_batch_is_one_anomaly(schema, bike_2011):
    result = validate(bike_2011.iloc[:0], schema)
    assert [(a.kind, a.count) for a in result.anomalies] == [("empty_batch", 0)]
    result = validate(pd.DataFrame({"unknown": pd.Series([], dtype=float)}), schema)
    assert [a.kind for a in result.anomalies] == ["empty_batch"]


def test_serving_inputs_without_the_target(schema, bike_2011):
    inputs = bike_2011.drop(columns=["cnt", "casual", "registered"]).iloc[:500]
    assert validate(inputs, schema, exclude_roles=("target", "metadata")).ok
    assert {a.column for a in validate(inputs, schema).find("missing_column")} == {
        "cnt", "casual", "registered"}


def test_census_later_years_against_2015_with_a_toml_override(tmp_path):
    """AGEP is top-coded at 95 (README), a value 2015 happens not to hold."""
    roles = {"year": "timestamp", "prediction": "metadata", "predicted_probability": "metadata"}
    schema = infer_schema(CENSUS_2015, target="employed", roles=roles)
    result = validate(CENSUS_LATER, schema, exclude_roles=("target", "metadata"))
    agep = only(result, "out_of_range", "AGEP")
    assert agep.examples == [95.0] and agep.count > 1000
    assert len(result.anomalies) == 1, result.summary()

    (tmp_path / "tidal.toml").write_text(
        '[data]\ntarget = "employed"\ntimestamp = "year"\n'
        'metadata = ["prediction", "predicted_probability"]\n'
        "[data.columns.AGEP]\nmin = 0\nmax = 95\n")
    settings = load_settings(tmp_path, environ={})
    schema = infer_schema(CENSUS_2015, overrides=settings.data)
    assert validate(CENSUS_LATER, schema, exclude_roles=("target", "metadata")).ok


# ---- files that cannot be read ----------------------------------------------------------

def test_random_bytes_named_parquet(tmp_path, schema):
    path = tmp_path / "x.parquet"
    path.write_bytes(np.random.default_rng(1).bytes(4096))
    with pytest.raises(DataReadError, match=r"x\.parquet") as caught:
        validate(path, schema)
    assert isinstance(caught.value, ValidationError) and caught.value.exit_code == 2
    with pytest.raises(DataReadError, match=r"x\.parquet"):
        infer_schema(path)


def test_truncated_parquet(tmp_path, bike_2011, schema):
    whole = tmp_path / "whole.parquet"
    bike_2011.to_parquet(whole, index=False)
    cut = tmp_path / "cut.parquet"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    with pytest.raises(DataReadError, match=r"cut\.parquet: cannot read it"):
        validate(cut, schema)


def test_empty_csv_and_missing_file(tmp_path, schema):
    empty = tmp_path / "empty.csv"
    empty.write_bytes(b"")
    with pytest.raises(DataReadError, match=r"empty\.csv: the file is empty"):
        validate(empty, schema)
    with pytest.raises(DataReadError, match=r"nope\.csv: no such file"):
        validate(tmp_path / "nope.csv", schema)


def test_header_only_csv_is_an_empty_batch(tmp_path, schema):
    path = tmp_path / "header.csv"
    path.write_text(",".join(schema.names) + "\n")
    assert [a.kind for a in validate(path, schema).anomalies] == ["empty_batch"]


# ---- a wide batch -------------------------------------------------------------------------

def test_a_wide_dictionary_encoded_batch_is_checked_column_wise():
    """Speed is measured by benchmarks, not here; this checks many columns of mixed kinds."""
    rng = np.random.default_rng(0)
    rows = 200_000
    words = np.array(["alpha", "beta", "gamma", "delta", "eps", "zeta"])
    columns: dict[str, pa.Array] = {}
    for i in range(10):
        columns[f"f{i}"] = pa.array(rng.normal(size=rows))
    for i in range(8):
        columns[f"i{i}"] = pa.array(rng.integers(0, 100, rows))
    for i in range(7):
        columns[f"s{i}"] = pa.array(words[rng.integers(0, 6, rows)]).dictionary_encode()
    table = pa.table(columns)
    schema = infer_schema(table.slice(0, 20_000))
    bad = table.set_column(0, "f0", pa.array(rng.normal(size=rows) * 100))
    result = validate(bad, schema)
    assert only(result, "out_of_range", "f0").count > 180_000
    assert {a.column for a in result.anomalies} <= {"f0", *(f"f{i}" for i in range(10))}


def test_parquet_batch_round_trip(tmp_path, bike_2011, schema):
    path = tmp_path / "ref.parquet"
    pq.write_table(pa.Table.from_pandas(bike_2011, preserve_index=False), path)
    assert validate(path, schema).ok
