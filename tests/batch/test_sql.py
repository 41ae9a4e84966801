"""Batch scoring from a SQL query into a SQL table, on SQLite and on the local
PostgreSQL: streamed in partitions, written through a staging table that becomes the
table only when the job succeeds."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pandas as pd
import pytest
import sqlalchemy as sa

from tidal.batch.job import score
from tidal.core.errors import ConflictError, ValidationError


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request, tmp_path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'warehouse.db'}"
    return request.getfixturevalue("postgres_url")


def _tables(url: str) -> set[str]:
    engine = sa.create_engine(url)
    try:
        return set(sa.inspect(engine).get_table_names())
    finally:
        engine.dispose()


def test_a_query_is_scored_into_a_table_atomically(scoring, database):
    project, rows, tmp = scoring
    engine = sa.create_engine(database)
    rows.drop(columns=["target"]).to_sql("readings", engine, index=False)
    query = "SELECT * FROM readings WHERE feat_1 >= 0.1 ORDER BY meter"
    expected = pd.read_sql(query, engine)
    result = score(project, "elec2", database, database, query=query, table="scores",
                   keys=["meter"], partition_rows=300)
    scores = pd.read_sql("SELECT * FROM scores", engine)
    assert result.scored == len(expected) == len(scores) > 300  # several partitions
    assert sorted(scores["meter"]) == sorted(expected["meter"])
    assert list(scores.columns) == ["meter", "label", "proba_0", "proba_1",
                                    "model_version", "request_id", "row"]
    # the same rows from a Parquet file give the same answers
    expected.to_parquet(tmp / "same.parquet")
    score(project, "elec2", tmp / "same.parquet", tmp / "same_out.parquet", keys=["meter"])
    same = pd.read_parquet(tmp / "same_out.parquet").set_index("meter")
    by_meter = scores.set_index("meter").loc[same.index]
    assert (by_meter["label"] == same["label"]).all()
    assert (by_meter["proba_1"] - same["proba_1"]).abs().max() < 1e-9
    # an existing table is kept unless asked otherwise
    with pytest.raises(ConflictError, match="exists"):
        score(project, "elec2", database, database, query=query, table="scores")
    score(project, "elec2", database, database, query=query, table="scores",
          if_exists="append", keys=["meter"])
    assert pd.read_sql("SELECT count(*) AS n FROM scores", engine)["n"][0] == 2 * len(scores)
    score(project, "elec2", database, database, query=query, table="scores",
          if_exists="replace", keys=["meter"])
    assert pd.read_sql("SELECT count(*) AS n FROM scores", engine)["n"][0] == len(scores)
    assert not [t for t in _tables(database) if t.startswith("tidal_stage_")]
    engine.dispose()


def test_a_job_that_fails_midway_leaves_the_table_as_it_was(scoring, database):
    from tidal.runtime.faults import Crashing

    project, rows, tmp = scoring
    engine = sa.create_engine(database)
    rows.to_sql("readings", engine, index=False)
    pd.DataFrame({"meter": ["yesterday"]}).to_sql("scores", engine, index=False)
    stable = project.model_version("elec2:1")
    crashing = project.register_model("elec2", Crashing(project.load_model("elec2:1"),
                                                        "feat_2", rows["feat_2"][1_800]),
                                      signature=stable.signature)
    project.set_deployment("elec2", crashing.ref)
    with pytest.raises(RuntimeError, match="injected crash"):
        score(project, "elec2", database, database, query="SELECT * FROM readings",
              table="scores", if_exists="replace", partition_rows=200)
    assert pd.read_sql("SELECT * FROM scores", engine)["meter"].tolist() == ["yesterday"]
    assert _tables(database) == {"readings", "scores"}  # no staging table left
    engine.dispose()


def test_bad_database_requests_are_input_errors(scoring, tmp_path):
    project, rows, tmp = scoring
    url = f"sqlite:///{tmp_path / 'w.db'}"
    engine = sa.create_engine(url)
    rows.to_sql("readings", engine, index=False)
    engine.dispose()
    cases = [
        ({"source": url, "output": tmp / "o.parquet"}, "needs a query"),
        ({"source": url, "output": tmp / "o.parquet", "query": "SELECT * FROM nope"},
         "the query failed"),
        ({"source": url, "output": tmp / "o.parquet", "query": "DELETE FROM readings"},
         "returns no rows"),
        ({"source": url, "output": url, "query": "SELECT * FROM readings"}, "needs a table"),
        ({"source": url, "output": url, "query": "SELECT * FROM readings",
          "table": "x; DROP TABLE readings"}, "table name"),
        ({"source": url, "output": url, "query": "SELECT * FROM readings",
          "table": "readings", "if_exists": "append"}, "has no column"),
        ({"source": url, "output": tmp / "o.csv", "query": "SELECT * FROM readings"},
         ".parquet file or a database"),
    ]
    for arguments, message in cases:
        with pytest.raises(ValidationError, match=message):
            score(project, "elec2", **arguments)
    assert _tables(url) == {"readings"}
    assert pd.read_sql("SELECT count(*) AS n FROM readings", url)["n"][0] == len(rows)


def test_the_command_line_scores_a_query_into_a_table(scoring, tmp_path):
    project, rows, tmp = scoring
    url = f"sqlite:///{tmp_path / 'w.db'}"
    rows.to_sql("readings", url, index=False)
    done = subprocess.run(
        [sys.executable, "-m", "tidal", "score", "elec2", "--input", url, "--query",
         "SELECT meter, feat_1, feat_2, feat_3, feat_4, feat_5, feat_6 FROM readings",
         "--output", url, "--table", "scores", "--workers", "1", "--json", "--project",
         str(project.settings.project_dir)],
        capture_output=True, text=True, timeout=300, env={**os.environ})
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["scored"] == len(rows) and summary["output"].endswith("table scores")
    assert pd.read_sql("SELECT count(*) AS n FROM scores", url)["n"][0] == len(rows)
