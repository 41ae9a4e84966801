"""The dashboard tests' shared project: a short replay of real data through the loop."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def replayed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Six days of Elec2 replayed through the whole loop, across the day the Victoria
    columns start to vary (row 17,424): windows, drift alerts, labels, events."""
    from tidal.control.replay import ReplaySpec, run_replay
    from tidal.demo import elec2_frame

    data = Path(__file__).resolve().parents[3] / "shared" / "data"
    frame = elec2_frame(data).iloc[17_424 - 48 * 40:17_424 + 48 * 6].reset_index(drop=True)
    spec = ReplaySpec(frame, time="time", target="target", candidates=["linear"],
                      reference_online=False, policy="")
    spec.train_until = frame["time"].iloc[48 * 40 - 48].tz_localize("UTC").timestamp()
    folder = tmp_path_factory.mktemp("replayed") / "loop"
    run_replay(spec, folder)
    return folder
