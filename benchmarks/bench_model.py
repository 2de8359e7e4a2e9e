"""The benchmark model: the demo settings, saved and registered in a throw-away MLflow store.

``prepare(workdir)`` trains ``NKResistanceModel()`` on the demo cohort (600 simulated samples x
3,000 genes, seed 0), logs it with :func:`training.tracking.log_model` into a SQLite MLflow
store under ``workdir``, registers it as ``nk-bench`` with the ``champion`` alias, and writes
the request bodies every benchmark sends (the model's genes, log2(TPM+1) values of held-out
simulated samples):

- ``predict_1.json`` / ``predict_100.json``: nkpredict ``/v1/predict`` bodies;
- ``mlflow_1.json`` / ``mlflow_100.json``: the same samples for ``mlflow models serve``
  (``dataframe_split``);
- ``batch_100.csv``: the 100 samples as a file.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mlflow
import pandas as pd
from mlflow import MlflowClient

from nkpredict.model.fitted import NKResistanceModel
from nkpredict.settings import Settings
from nkpredict.simulate.cohort import simulate_cohort
from nkpredict.simulate.config import SimulationConfig
from training import tracking

MODEL_NAME = "nk-bench"
MODEL_URI = f"models:/{MODEL_NAME}@champion"


@dataclass(frozen=True)
class BenchModel:
    """Where the benchmark model and its request bodies are."""

    tracking_uri: str
    model_uri: str
    model_dir: Path
    bodies: dict[str, Path]
    n_trees: int
    n_genes: int
    n_features: int


def _bodies(model: NKResistanceModel, workdir: Path) -> dict[str, Path]:
    held_out = simulate_cohort(SimulationConfig(n_samples=100, n_genes=3000, seed=2024))
    prepared = model.prepare(held_out.counts)
    genes = list(model.feature_builder.genes_in_)
    values = prepared.matrix.reindex(columns=genes).round(4)
    values.index = [f"S{i:03d}" for i in range(len(values))]
    bodies = {}
    for n in (1, 100):
        part = values.iloc[:n]
        ours = {"samples": {sid: row.to_dict() for sid, row in part.iterrows()}, "scale": "log"}
        split = {
            "dataframe_split": {
                "columns": ["sample_id", *genes],
                "data": [[sid, *row.tolist()] for sid, row in part.iterrows()],
            }
        }
        bodies[f"predict_{n}"] = workdir / f"predict_{n}.json"
        bodies[f"predict_{n}"].write_text(json.dumps(ours))
        bodies[f"mlflow_{n}"] = workdir / f"mlflow_{n}.json"
        bodies[f"mlflow_{n}"].write_text(json.dumps(split))
    bodies["batch_100_csv"] = workdir / "batch_100.csv"
    values.rename_axis("sample_id").to_csv(bodies["batch_100_csv"])
    return bodies


def prepare(workdir: Path) -> BenchModel:
    """Train, save, log, register and alias the benchmark model; write the request bodies."""
    workdir.mkdir(parents=True, exist_ok=True)
    cohort = simulate_cohort(SimulationConfig(seed=0))
    model = NKResistanceModel().fit(cohort.counts, cohort.labels["resistant"])
    model_dir = model.save(workdir / "model")
    uri = f"sqlite:///{workdir / 'mlflow.db'}"
    settings = Settings(tracking_uri=uri, artifact_root=str(workdir / "artifacts"))
    tracking.setup_tracking(uri, settings)
    experiment = tracking.experiment_id("nkpredict-bench", settings)
    genes = list(model.feature_builder.genes_in_)
    example = model.prepare(cohort.counts.iloc[:2]).matrix.reindex(columns=genes)
    with mlflow.start_run(experiment_id=experiment), tracking.registration(MODEL_NAME):
        info = tracking.log_model(model, example, MODEL_NAME)
        version = str(info.registered_model_version)
        MlflowClient().set_registered_model_alias(MODEL_NAME, "champion", version)
    return BenchModel(
        tracking_uri=uri,
        model_uri=MODEL_URI,
        model_dir=Path(model_dir),
        bodies=_bodies(model, workdir),
        n_trees=int(model.boosted_trees.n_rounds_),
        n_genes=len(genes),
        n_features=len(model.feature_builder.get_feature_names_out()),
    )


EARLIER_LEARNER: dict[str, Any] = {"prior": False, "early_stopping_rounds": 0, "n_estimators": 303}
"""The shape of the model the first service rows were measured with (issue 7): 303 depth-2
trees boosted from ``base_score``, no knowledge prior."""


def prepare_learner(workdir: Path, booster: dict[str, Any]) -> Path:
    """Train ``NKResistanceModel(booster=booster)`` on the demo cohort and save it under
    ``workdir``; its directory (``nkpredict serve --model`` reads it directly)."""
    cohort = simulate_cohort(SimulationConfig(seed=0))
    model = NKResistanceModel(booster=booster).fit(cohort.counts, cohort.labels["resistant"])
    return Path(model.save(workdir / "learner-model"))


def frame_of(body: Path) -> pd.DataFrame:
    """The samples of an nkpredict body as a DataFrame (for checks)."""
    samples = json.loads(body.read_text())["samples"]
    return pd.DataFrame.from_dict(samples, orient="index")
