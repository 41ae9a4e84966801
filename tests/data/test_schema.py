"""Schema inference on real data, the YAML file people review, and tidal.toml overrides."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from tidal.core.config import load_settings
from tidal.core.errors import ValidationError
from tidal.data import ColumnSchema, Schema, infer_schema, load_schema, save_schema
from tidal.data.infer import missing_allowance

DATA_DIR = Path(__file__).resolve().parents[3] / "shared" / "data"
BIKE = DATA_DIR / "bike_sharing_hourly.csv.gz"
CENSUS_2015 = DATA_DIR / "us_census_ma_employment_2015_reference.parquet"


@pytest.fixture(scope="module")
def bike_2011() -> pd.DataFrame:
    frame = pd.read_csv(BIKE, parse_dates=["dteday"], keep_default_na=True)
    return frame[frame["dteday"].dt.year == 2011].reset_index(drop=True)


@pytest.fixture(scope="module")
def bike_schema(bike_2011: pd.DataFrame) -> Schema:
    return infer_schema(bike_2011, target="cnt",
                        roles={"casual": "metadata", "registered": "metadata"})


def test_types_roles_and_constraints_from_real_data(bike_2011, bike_schema):
    assert bike_schema.names == list(bike_2011.columns)
    assert bike_schema.num_rows == len(bike_2011)
    types = {c.name: c.type for c in bike_schema.columns}
    assert types == {
        "dteday": "datetime", "season": "string", "hr": "string", "holiday": "string",
        "weekday": "string", "workingday": "string", "weathersit": "string",
        "temp": "float", "atemp": "float", "hum": "float", "windspeed": "float",
        "casual": "integer", "registered": "integer", "cnt": "integer",
    }
    assert bike_schema.target == "cnt"
    assert bike_schema.with_role("timestamp") == ["dteday"]
    assert bike_schema.with_role("metadata") == ["casual", "registered"]
    assert "cnt" not in bike_schema.features and "temp" in bike_schema.features

    dteday = bike_schema.column("dteday")
    assert (dteday.min, dteday.max, dteday.domain) == (None, None, None)  # timestamps grow
    temp = bike_schema.column("temp")
    assert (temp.min, temp.max) == (bike_2011["temp"].min(), bike_2011["temp"].max())
    assert type(temp.min) is float and type(bike_schema.column("cnt").max) is int
    assert not temp.nullable and temp.max_missing == 0.0

    weathersit = bike_schema.column("weathersit")
    assert weathersit.domain == ["Clear", "Heavy Rain", "Light Rain", "Mist"]
    observed = bike_2011["weathersit"].isna().mean()
    assert 0.05 < observed < 0.1  # the dataset's real missing values (README)
    assert weathersit.nullable
    assert weathersit.max_missing == missing_allowance(observed)
    assert weathersit.max_missing > observed
    assert bike_schema.column("weekday").domain == ["Fri", "Mon", "Sat", "Sun", "Thu", "Tue",
                                                    "Wed"]
    assert len(bike_schema.column("hr").domain) == 24


def test_infinities_are_no_bounds_and_the_schema_still_loads(tmp_path: Path):
    from tidal.data import validate

    frame = pd.DataFrame({"x": [1.0, 2.0, np.inf, -np.inf] * 10, "y": [np.inf] * 40})
    schema = infer_schema(frame)
    x, y = schema.column("x"), schema.column("y")
    assert (x.min, x.max) == (1.0, 2.0) and (y.min, y.max) == (None, None)
    save_schema(schema, tmp_path / "s.yaml")
    assert load_schema(tmp_path / "s.yaml").column("x").max == 2.0
    found = {(a.kind, a.column): a.count for a in validate(frame, schema).anomalies}
    assert found == {("out_of_range", "x"): 20}  # the infinities, named, not a crash


def test_empty_strings_of_a_csv_count_as_missing():
    """PyArrow reads an empty CSV field of a string column as "" (pandas says NaN)."""
    schema = infer_schema(BIKE)
    weathersit = schema.column("weathersit")
    assert weathersit.nullable and "" not in weathersit.domain
    assert weathersit.max_missing == missing_allowance(1258 / 17379)
    assert schema.column("dteday").type == "date"


@pytest.mark.parametrize("observed,allowed", [
    (0.0, 0.0), (0.0001, 0.02), (0.072, 0.12), (0.1, 0.16), (0.5, 0.76), (0.8, 1.0), (1.0, 1.0),
])
def test_missing_allowance_has_slack(observed: float, allowed: float):
    assert missing_allowance(observed) == allowed


def test_id_timestamp_and_free_text_heuristics():
    rng = np.random.default_rng(7)
    frame = pd.DataFrame({
        "user_id": np.arange(1000) + 10_000,
        "orderId": [f"o-{i}" for i in range(1000)],
        "shop_id": rng.integers(0, 20, 1000),  # repeats: a feature, not an id
        "created_at": [f"2024-01-{1 + i % 28:02d}" for i in range(1000)],
        "comment": [f"free text number {i}" for i in range(1000)],
        "code": rng.integers(1, 5, 1000),
        "flag": rng.random(1000) < 0.3,
        "score": np.where(rng.random(1000) < 0.1, np.nan, rng.random(1000)),
        "fluid": np.arange(1000),  # ends in "id" but is no id
        "time_of_day": rng.choice(["morning", "evening"], 1000),
        "eventTime": np.arange(1000) * 60.0,
    })
    schema = infer_schema(frame)
    roles = {c.name: c.role for c in schema.columns}
    assert roles == {"user_id": "id", "orderId": "id", "shop_id": "feature",
                     "created_at": "timestamp", "comment": "feature", "code": "feature",
                     "flag": "feature", "score": "feature", "fluid": "feature",
                     "time_of_day": "feature", "eventTime": "timestamp"}
    assert schema.column("user_id").min is None  # ids grow: no range
    assert schema.column("comment").domain is None  # free text: no domain
    code = schema.column("code")
    assert code.type == "integer" and (code.min, code.max) == (1, 4) and code.domain is None
    assert schema.column("flag").type == "boolean"
    score = schema.column("score")
    assert score.nullable and score.max_missing == missing_allowance(frame["score"].isna().mean())


def test_domain_rule_small_and_repetitive_sets_only():
    many = pd.DataFrame({"c": [f"v{i % 60}" for i in range(600)]})  # 60 distinct > 50
    assert infer_schema(many).column("c").domain is None
    sparse = pd.DataFrame({"c": ["a", "b", "c", "a"]})  # 3 distinct of 4 rows > 50 %
    assert infer_schema(sparse).column("c").domain is None
    dense = pd.DataFrame({"c": ["b", "a", "b", "a", None]})
    column = infer_schema(dense).column("c")
    assert column.domain == ["a", "b"] and column.nullable


def test_parquet_dictionary_strings_and_natural_code_order():
    schema = infer_schema(CENSUS_2015, target="employed")
    assert schema.column("id").role == "id"
    schl = schema.column("SCHL")
    assert schl.type == "string"
    assert schl.domain == [str(i) for i in range(25)]  # "2" before "10"
    assert schema.column("AGEP").type == "float"
    assert schema.target == "employed"


def test_empty_reference_is_refused():
    with pytest.raises(ValidationError, match="no rows"):
        infer_schema(pd.DataFrame({"a": pd.Series([], dtype="float64")}))


def test_unsupported_type_is_named():
    table = pa.table({"tags": pa.array([[1, 2], [3]])})
    with pytest.raises(ValidationError, match="'tags' has type list"):
        infer_schema(table)


# ---- YAML -------------------------------------------------------------------------------

def test_yaml_round_trip_is_exact_and_readable(tmp_path: Path, bike_schema: Schema):
    path = save_schema(bike_schema, tmp_path / "sub" / "schema.yaml")
    text = path.read_text()
    assert text.startswith("# Tidal data schema")
    assert load_schema(path) == bike_schema
    census = infer_schema(CENSUS_2015, target="employed")
    assert load_schema(save_schema(census, tmp_path / "census.yaml")) == census
    # stable: the same schema gives the same bytes; columns stay in table order
    assert save_schema(load_schema(path), tmp_path / "again.yaml").read_text() == text
    assert text.index("  dteday:") < text.index("  season:") < text.index("  cnt:")
    assert "    domain: [Clear, Heavy Rain, Light Rain, Mist]\n" in text
    block = text[text.index("  temp:"):text.index("  atemp:")]
    keys = [line.split(":")[0].strip() for line in block.splitlines()[1:]]
    assert keys == ["type", "role", "nullable", "max_missing", "min", "max"]


def test_yaml_quotes_values_yaml_would_misread(tmp_path: Path):
    schema = Schema([ColumnSchema("answer", "string", domain=["No", "Yes", "null", "1", "1.5"]),
                     ColumnSchema("x", "float", min=-1e-05, max=1e20)])
    assert load_schema(save_schema(schema, tmp_path / "s.yaml")) == schema


def test_edited_yaml_is_accepted(tmp_path: Path):
    path = tmp_path / "schema.yaml"
    path.write_text("columns:\n  temp:\n    type: float\n    max: 45\n  kind:\n"
                    "    type: string\n    role: segment\n    domain: [a, b]\n")
    schema = load_schema(path)
    assert schema.column("temp") == ColumnSchema("temp", "float", max=45)
    assert schema.column("kind").role == "segment"


@pytest.mark.parametrize("content,message", [
    ("columns:\n  temp: {type: float\n", "not valid YAML at line"),
    ("columns:\n  temp:\n    type: float\n    mni: 3\n", r"columns\.temp\.mni: unknown key"),
    ("columns:\n  temp:\n    type: decimal\n", r"columns\.temp: type 'decimal' is not one of"),
    ("columns:\n  temp:\n    role: feature\n", r"columns\.temp\.type: missing"),
    ("columns:\n  temp:\n    type: float\n    role: label\n", "role 'label'"),
    ("columns:\n  temp:\n    type: float\n    min: 5\n    max: 1\n", "min .5. is greater"),
    ("columns:\n  temp:\n    type: float\n    min: cold\n", "min must be a number"),
    ("columns:\n  temp:\n    type: float\n    domain: [1]\n", "domain applies only"),
    ("columns:\n  s:\n    type: string\n    domain: [1, 2]\n", "quote numbers"),
    ("columns:\n  s:\n    type: string\n    max_missing: 2\n", "max_missing must be a fraction"),
    ("columns:\n  s:\n    type: string\n    nullable: maybe\n", "nullable must be true or false"),
    ("columns:\n  s: float\n", r"columns\.s: expected a mapping"),
    ("format: 7\ncolumns: {}\n", "format"),
    ("colums:\n  s: {type: float}\n", "colums: unknown key"),
    ("- just\n- a list\n", "expected a mapping"),
    ("", "expected a mapping"),
])
def test_malformed_yaml_names_file_and_field(tmp_path: Path, content: str, message: str):
    path = tmp_path / "schema.yaml"
    path.write_text(content)
    with pytest.raises(ValidationError, match=message) as caught:
        load_schema(path)
    assert str(caught.value).startswith(str(path))


def test_missing_schema_file_is_named(tmp_path: Path):
    with pytest.raises(ValidationError, match="no such schema file"):
        load_schema(tmp_path / "nope.yaml")


# ---- overrides --------------------------------------------------------------------------

TOML = """
[data]
target = "cnt"
timestamp = "dteday"
metadata = ["casual", "registered"]
[data.columns.weathersit]
role = "feature"
max_missing = 0.1
domain = ["Clear", "Mist", "Light Rain", "Heavy Rain"]
[data.columns.temp]
min = -10
max = 45
[data.columns.holiday]
role = "segment"
[data.columns.hum]
nullable = true
"""


def test_tidal_toml_overrides_are_applied(tmp_path: Path, bike_2011: pd.DataFrame):
    (tmp_path / "tidal.toml").write_text(TOML)
    settings = load_settings(tmp_path, environ={})
    schema = infer_schema(bike_2011, overrides=settings.data)
    assert schema.target == "cnt"
    assert schema.with_role("metadata") == ["casual", "registered"]
    assert schema.with_role("segment") == ["holiday"]
    weathersit = schema.column("weathersit")
    assert weathersit.max_missing == 0.1 and weathersit.nullable
    assert weathersit.domain == ["Clear", "Mist", "Light Rain", "Heavy Rain"]  # as written
    temp = schema.column("temp")
    assert (temp.min, temp.max) == (-10, 45) and type(temp.min) is int
    hum = schema.column("hum")
    assert hum.nullable and hum.max_missing is None  # nullable alone lifts the 0 allowance
    # keyword arguments win over the file
    other = infer_schema(bike_2011, overrides=settings.data, target="registered",
                         roles={"holiday": "feature"})
    assert other.target == "registered" and other.column("cnt").role == "feature"
    assert other.column("holiday").role == "feature"
    # the overrides survive the YAML round trip
    assert load_schema(save_schema(schema, tmp_path / "schema.yaml")) == schema


def test_mapping_overrides_and_nullability_rules(bike_2011: pd.DataFrame):
    schema = infer_schema(bike_2011, overrides={
        "weekday": {"nullable": False}, "hum": {"max_missing": 0.2}, "cnt": {"role": "target"},
    })
    weekday = schema.column("weekday")
    assert not weekday.nullable and weekday.max_missing == 0.0
    hum = schema.column("hum")
    assert hum.nullable and hum.max_missing == 0.2
    assert schema.target == "cnt"


@pytest.mark.parametrize("overrides,message", [
    ({"tmep": {"min": 0}}, "not in the data: tmep"),
    ({"temp": {"domain": ["hot"]}}, "domain applies only to string and integer"),
    ({"season": {"min": 0}}, "min applies only"),
    ({"temp": {"max_missing": 3}}, "max_missing"),
    ({"temp": {"min": 5, "max": 1}}, "greater than max"),
    ({"temp": {"colour": "red"}}, "colour"),
])
def test_bad_overrides_are_explained(bike_2011, overrides, message):
    with pytest.raises(ValidationError, match=message):
        infer_schema(bike_2011, overrides=overrides)


def test_bad_role_keyword_is_explained(bike_2011):
    with pytest.raises(ValidationError, match="role 'label'"):
        infer_schema(bike_2011, roles={"cnt": "label"})
