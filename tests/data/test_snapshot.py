"""Snapshots: the sha256 of deterministic Parquet bytes is the dataset version."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from sqlalchemy import create_engine, text

from tidal.artifacts.store import ArtifactStore
from tidal.core.errors import IntegrityError, NotFoundError, ValidationError
from tidal.data.snapshots import Snapshot, load_snapshot, snapshot, snapshot_sql
from tidal.data.sources import DataReadError

DATA_DIR = Path(__file__).resolve().parents[3] / "shared" / "data"
ELEC2 = DATA_DIR / "elec2.csv.gz"
CENSUS_2015 = DATA_DIR / "us_census_ma_employment_2015_reference.parquet"
needs_data = pytest.mark.skipif(not ELEC2.is_file(), reason="shared/data not present")


@pytest.fixture
def store(tmp_path: Path) -> ArtifactStore:
    return ArtifactStore(str(tmp_path / "artifacts"))


@needs_data
def test_same_data_gives_the_same_hash_and_identical_bytes_stored_once(store, tmp_path):
    first = snapshot(ELEC2, store)
    second = snapshot(ELEC2, store)
    assert first == second
    assert (first.rows, len(first.columns)) == (45_312, 7)
    assert first.source_name == str(ELEC2)
    stored = list((tmp_path / "artifacts" / "sha256").rglob("*"))
    assert [p.name for p in stored if p.is_file()] == [first.sha256]
    # a second, independent store writes byte-identical Parquet
    other = ArtifactStore(str(tmp_path / "other"))
    assert snapshot(ELEC2, other).sha256 == first.sha256
    assert store.get_bytes(first.sha256) == other.get_bytes(first.sha256)


@needs_data
def test_one_changed_cell_changes_the_hash(store):
    table = pq.read_table(CENSUS_2015)
    base = snapshot(table, store)
    ages = table.column("AGEP").to_pylist()
    ages[12_345] += 1
    changed = table.set_column(table.schema.get_field_index("AGEP"), "AGEP", pa.array(ages))
    assert snapshot(changed, store).sha256 != base.sha256
    assert snapshot(table, store).sha256 == base.sha256


@needs_data
def test_the_hash_ignores_how_the_same_rows_were_read(store, tmp_path):
    """Parquet path, in-memory table, re-chunked table, DataFrame: one version."""
    from_path = snapshot(CENSUS_2015, store, columns=["id", "AGEP", "employed", "year"])
    table = pq.read_table(CENSUS_2015, columns=["id", "AGEP", "employed", "year"])
    rechunked = pa.Table.from_batches(table.to_batches(max_chunksize=777))
    assert rechunked.column(0).num_chunks > 1
    frame = table.to_pandas()  # carries pandas metadata (version, index) in its schema
    hashes = {snapshot(x, store).sha256 for x in (table, rechunked, frame)}
    assert hashes == {from_path.sha256}


@needs_data
def test_load_snapshot_gives_back_the_rows_in_their_order(store):
    made = snapshot(CENSUS_2015, store)
    loaded = load_snapshot(made.sha256, store)
    original = pq.read_table(CENSUS_2015)
    assert loaded.column_names == list(made.columns)
    assert loaded.num_rows == made.rows == 68_785
    assert loaded.column("id").to_pylist() == original.column("id").to_pylist()
    assert loaded.equals(original.replace_schema_metadata(None))


def test_a_snapshot_altered_on_disk_is_refused(store):
    made = snapshot(pa.table({"x": [1, 2, 3]}), store)
    path = Path(store.path_of(made.sha256))
    path.write_bytes(path.read_bytes()[:-1] + b"\x00")
    with pytest.raises(IntegrityError):
        load_snapshot(made.sha256, store)
    with pytest.raises(NotFoundError):
        load_snapshot("0" * 64, store)


def test_columns_selects_and_orders_and_names_what_is_missing(store):
    table = pa.table({"a": [1, 2], "b": ["x", "y"], "c": [0.5, 1.5]})
    made = snapshot(table, store, columns=["c", "a"])
    assert made.columns == ("c", "a")
    assert load_snapshot(made.sha256, store).column_names == ["c", "a"]
    with pytest.raises(ValidationError, match="no column 'zz'"):
        snapshot(table, store, columns=["a", "zz"])


def test_to_dict_is_json_ready(store):
    made = snapshot(pa.table({"a": [1, 2]}), store)
    record = json.loads(json.dumps(made.to_dict()))
    assert record == {"sha256": made.sha256, "size": made.size, "rows": 2, "columns": ["a"],
                      "source_name": "<Table>", "query": None}
    assert Snapshot(**{**record, "columns": tuple(record["columns"])}) == made


def _sqlite_with_rows(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'shop.db'}"
    engine = create_engine(url)
    with engine.begin() as connection:
        connection.execute(text("CREATE TABLE orders (id INTEGER, qty INTEGER, "
                                "price REAL, country TEXT)"))
        connection.execute(text("INSERT INTO orders VALUES (:id, :qty, :price, :country)"),
                           [{"id": 1, "qty": 3, "price": 9.5, "country": "FR"},
                            {"id": 2, "qty": None, "price": 4.25, "country": "DE"},
                            {"id": 3, "qty": 7, "price": 1.0, "country": None}])
    engine.dispose()
    return url


def test_sql_source_reads_a_real_sqlite_file(store, tmp_path):
    url = _sqlite_with_rows(tmp_path)
    query = "SELECT id, qty, price, country FROM orders ORDER BY id"
    made = snapshot_sql(url, query, store)
    assert (made.rows, made.columns) == (3, ("id", "qty", "price", "country"))
    assert (made.source_name, made.query) == (url, query)
    loaded = load_snapshot(made.sha256, store)
    # an integer column with a NULL stays an integer column with a missing value
    assert loaded.schema.field("qty").type == pa.int64()
    assert loaded.column("qty").to_pylist() == [3, None, 7]
    assert loaded.column("country").to_pylist() == ["FR", "DE", None]
    # the same rows from a SQL query and from an Arrow table are the same version
    assert snapshot(loaded, store).sha256 == made.sha256
    assert snapshot_sql(url, query, store).sha256 == made.sha256
    assert snapshot_sql(url, query, store, columns=["price"]).columns == ("price",)


def test_sql_errors_are_readable_and_hide_the_password(store, tmp_path):
    url = _sqlite_with_rows(tmp_path)
    with pytest.raises(DataReadError, match="the query failed: no such table: nope"):
        snapshot_sql(url, "SELECT * FROM nope", store)
    with pytest.raises(DataReadError, match="returns no rows"):
        snapshot_sql(url, "UPDATE orders SET qty = 1 WHERE id = 0", store)
    with pytest.raises(DataReadError, match="not a SQLAlchemy database URL"):
        snapshot_sql("not a url", "SELECT 1", store)
    with pytest.raises(ValidationError, match="empty"):
        snapshot_sql(url, "  ", store)
    with pytest.raises(DataReadError) as caught:
        snapshot_sql("postgresql+psycopg://me:s3cret@127.0.0.1:1/none", "SELECT 1", store)
    assert "s3cret" not in str(caught.value) and "***" in str(caught.value)
