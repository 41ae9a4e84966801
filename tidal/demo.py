"""The main job, for now: train on the first year of Elec2, track it, register a champion.

It is what ``make demo`` runs. It reads the real Elec2 data (see ``shared/data``),
snapshots the training slice as Parquet into the artifact store (its sha256 names the
dataset version), trains scikit-learn's HistGradientBoostingClassifier with a time-aware
split (the last 30 of the 365 days are the validation window), logs the learning curve
and the scores, and registers the model with its lineage and the ``champion`` alias.
Later issues grow this into the whole loop (monitor, retrain, canary, promote).
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any

from tidal.core.errors import NotFoundError, TidalError
from tidal.core.ids import short_id
from tidal.project import Project
from tidal.runtime.signature import signature_from_frame
from tidal.store.database import redact

MODEL_NAME = "elec2"
EXPERIMENT = "elec2"
ROWS_PER_DAY = 48
TRAIN_DAYS = 365
VALIDATION_DAYS = 30
FEATURES = ["feat_1", "feat_2", "feat_3", "feat_4", "feat_5", "feat_6"]
TARGET = "target"
PARAMS = {"model": "HistGradientBoostingClassifier", "learning_rate": 0.1, "max_iter": 200,
          "max_leaf_nodes": 31, "l2_regularization": 0.0, "random_state": 0}


def find_data_dir(given: Path | None) -> Path:
    """Where elec2.csv.gz is: --data, $TIDAL_DATA_DIR, or ../shared/data from here up."""
    candidates = [given] if given else []
    if os.environ.get("TIDAL_DATA_DIR"):
        candidates.append(Path(os.environ["TIDAL_DATA_DIR"]))
    here = Path.cwd().resolve()
    candidates += [folder / "shared" / "data" for folder in (here, *here.parents)]
    for folder in candidates:
        if folder is not None and (folder / "elec2.csv.gz").is_file():
            return folder
    raise NotFoundError("cannot find elec2.csv.gz: pass --data FOLDER or set TIDAL_DATA_DIR")


def run_demo(project: Project, data_dir: Path | None = None, quiet: bool = False) -> dict[str, Any]:
    """Train, track and register; returns a summary (also printed unless ``quiet``)."""
    try:
        import numpy as np
        import pandas as pd
        from sklearn.ensemble import HistGradientBoostingClassifier
        from sklearn.metrics import accuracy_score, log_loss, roc_auc_score
    except ImportError as exc:
        raise TidalError(
            f"the demo needs the training extras ({exc.name} is missing): "
            "pip install 'tidal-ml[train]'"
        ) from None
    from rich.console import Console

    console = Console(quiet=quiet, highlight=False)
    folder = find_data_dir(data_dir)
    frame = pd.read_csv(folder / "elec2.csv.gz").iloc[: TRAIN_DAYS * ROWS_PER_DAY]
    frame = frame.reset_index(drop=True)
    frame[TARGET] = frame[TARGET].astype("int64")
    split = (TRAIN_DAYS - VALIDATION_DAYS) * ROWS_PER_DAY
    train, valid = frame.iloc[:split], frame.iloc[split:]

    snapshot = io.BytesIO()
    frame.to_parquet(snapshot, index=False)
    console.print(f"Elec2: {len(frame):,} rows (days 0–{TRAIN_DAYS - 1}) from {folder}; "
                  f"train {len(train):,}, validate on the last {VALIDATION_DAYS} days "
                  f"({len(valid):,} rows)")

    with project.start_run(EXPERIMENT, name="elec2-hgb", tags={"job": "demo"}) as run:
        dataset_hash = run.log_bytes(snapshot.getvalue(), "data/train.parquet")
        run.log_params({**PARAMS, "train_rows": len(train), "valid_rows": len(valid),
                        "dataset_sha256": dataset_hash, "features": ",".join(FEATURES)})
        settings = {k: v for k, v in PARAMS.items() if k != "model"}
        model = HistGradientBoostingClassifier(early_stopping=False, **settings)
        with console.status("training HistGradientBoostingClassifier…"):
            model.fit(train[FEATURES], train[TARGET])
        for step, proba in enumerate(model.staged_predict_proba(valid[FEATURES])):
            run.log_metric("valid_log_loss", float(log_loss(valid[TARGET], proba)), step=step)
        probability = model.predict_proba(valid[FEATURES])[:, 1]
        majority = float(max(np.mean(valid[TARGET]), 1 - np.mean(valid[TARGET])))
        scores = {
            "accuracy": float(accuracy_score(valid[TARGET], probability >= 0.5)),
            "roc_auc": float(roc_auc_score(valid[TARGET], probability)),
            "log_loss": float(log_loss(valid[TARGET], probability)),
            "baseline_accuracy": majority,
        }
        run.log_metrics(scores)
        signature = signature_from_frame(
            train[FEATURES],
            outputs=[{"name": "probability", "datatype": "FP64"},
                     {"name": "label", "datatype": "INT64"}],
        )
        version = run.register_model(
            MODEL_NAME, model, signature=signature, metrics=scores,
            dataset_hash=dataset_hash, alias="champion",
            description="HistGradientBoosting on Elec2 days 0-364",
            reason=f"demo: trained on Elec2 days 0-{TRAIN_DAYS - 1}, "
                   f"validation accuracy {scores['accuracy']:.3f}",
        )

    # prove the round trip: the registered bytes load (hash-verified) and predict the same
    loaded = project.load_model(f"{MODEL_NAME}@champion")
    assert (loaded.predict_proba(valid[FEATURES])[:, 1] == probability).all()

    summary = {"run_id": run.id, "model": MODEL_NAME, "version": version.version,
               "aliases": version.aliases, "artifact_sha256": version.artifact_sha256,
               "dataset_sha256": dataset_hash, "metrics": scores,
               "store_url": redact(project.settings.store_url)}
    console.print(
        f"[green]✓[/] run {short_id(run.id)}: accuracy {scores['accuracy']:.3f} "
        f"(majority baseline {majority:.3f}), ROC AUC {scores['roc_auc']:.3f}\n"
        f"[green]✓[/] registered {MODEL_NAME} version {version.version} as "
        f"@{', @'.join(version.aliases)} (artifact sha256 {version.artifact_sha256[:12]}…)\n"
        f"Next: tidal runs show {short_id(run.id)} · tidal models show {MODEL_NAME}@champion · "
        f"tidal models history {MODEL_NAME}"
    )
    return summary
