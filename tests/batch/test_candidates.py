"""Canary and shadow for batch jobs: a canary answers a share of the partitions, a shadow
scores every row off the output, and a rollout's analysis reads both from the real log."""

from __future__ import annotations

import numpy as np
import pyarrow.parquet as pq

from tidal.batch.job import score
from tidal.control.rollout import Rollouts
from tidal.control.traffic import read_traffic
from tidal.runtime.inputs import check_columns
from tidal.runtime.loaded import load_version


def _predicted(project, ref: str, rows) -> np.ndarray:
    model = load_version(project.artifacts, project.model_version(ref))
    columns = {n: rows[n].to_numpy() for n in model.input_names}
    return model.predict(check_columns(model.signature, columns))["label"]


def test_a_canary_answers_its_share_of_partitions_and_the_analysis_sees_them(scoring):
    project, rows, tmp = scoring
    project.set_deployment("elec2", "elec2:1", canary=2, canary_weight=0.5)
    rows.to_parquet(tmp / "in.parquet")
    began = project.clock.now()
    result = score(project, "elec2", tmp / "in.parquet", tmp / "out.parquet",
                   keys=["meter"], partition_rows=100, log_rows=50)
    out = pq.read_table(tmp / "out.parquet").to_pandas()
    assert result.partitions == 25 and 3 <= result.canary_partitions <= 22
    assert result.versions == {"batch": 1, "batch_canary": 2}
    # a partition is answered by one version, the canary's rows as the canary answers
    by_partition = out.groupby(out.index // 100)["model_version"].nunique()
    assert (by_partition == 1).all()
    answered = out["model_version"].to_numpy()
    assert (answered == 2).sum() == 100 * result.canary_partitions
    expected = np.where(answered == 2, _predicted(project, "elec2:2", rows),
                        _predicted(project, "elec2:1", rows))
    assert (out["label"].to_numpy() == expected).all()
    traffic = read_traffic(project, "elec2", began, project.clock.now() + 1)
    assert traffic.version("canary", 2).num_rows == (answered == 2).sum()
    assert traffic.version("stable", 1).num_rows == (answered == 1).sum()
    # the stable version alone, when asked
    alone = score(project, "elec2", tmp / "in.parquet", tmp / "alone.parquet",
                  partition_rows=100, candidates=False)
    assert alone.canary_partitions == 0 and alone.versions == {"batch": 1}


def test_a_shadow_scores_every_row_off_the_output_for_the_rollout_analysis(scoring):
    project, rows, tmp = scoring
    rollouts = Rollouts(project, actor="test")
    rollout = rollouts.start("elec2", project.model_version("elec2:2"), strategy="shadow")
    rows.to_parquet(tmp / "in.parquet")
    result = score(project, "elec2", tmp / "in.parquet", tmp / "out.parquet",
                   keys=["meter"], partition_rows=700)
    assert result.versions == {"batch": 1, "batch_shadow": 2}
    out = pq.read_table(tmp / "out.parquet").to_pandas()
    assert (out["model_version"] == 1).all()  # the shadow never answers
    stable, shadow = _predicted(project, "elec2:1", rows), _predicted(project, "elec2:2", rows)
    assert (out["label"].to_numpy() == stable).all()
    analysis = rollouts.analyse(project.rollouts.get(rollout.id), project.clock.now())
    agreement = next(c for c in analysis.comparisons if c.name == "agreement")
    assert agreement.samples == len(rows)  # paired with the stable rows by id and row
    assert agreement.candidate == np.mean(stable == shadow)
    assert analysis.verdict != "fail", analysis.reasons()


def test_a_failing_shadow_is_logged_as_failing_and_never_fails_the_job(scoring):
    from tidal.runtime.faults import Crashing

    project, rows, tmp = scoring
    stable = project.model_version("elec2:1")
    highest = rows["feat_2"].nlargest(2).iloc[1]  # it crashes on the largest values only
    crashing = project.register_model("elec2", Crashing(project.load_model("elec2:1"),
                                                        "feat_2", highest),
                                      signature=stable.signature)
    rollouts = Rollouts(project, actor="test")
    rollout = rollouts.start("elec2", crashing, strategy="shadow")
    rows.to_parquet(tmp / "in.parquet")
    result = score(project, "elec2", tmp / "in.parquet", tmp / "out.parquet",
                   partition_rows=500)
    crashes = (rows["feat_2"] > highest).groupby(rows.index // 500).any()
    assert 1 <= crashes.sum() < 5
    assert result.scored == len(rows) and result.shadow_failures == crashes.sum()
    analysis = rollouts.analyse(project.rollouts.get(rollout.id), project.clock.now())
    errors = next(c for c in analysis.comparisons if c.name == "server_errors")
    assert errors.candidate is not None and errors.candidate > 0
