"""Execution engines (training.engines): the Dask engine gives the local engine's results.

Stated tolerances (also in training/engines.py): cross-validated ROC AUC within 0.03 and
Spearman > 0.95 between the final models' predictions when boosting is data-parallel over
several workers; predictions and explanations of the two engines equal within 1e-6.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import anndata
import mlflow
import numpy as np
import pandas as pd
import psutil
import pytest
import xgboost as xgb
from scipy import sparse
from scipy.stats import spearmanr
from typer.testing import CliRunner

from nkpredict.data.expression import prepare_expression
from nkpredict.evaluate.baselines import baseline_estimators
from nkpredict.evaluate.cv import cross_validate
from nkpredict.evaluate.folds import CVConfig, make_folds
from nkpredict.exceptions import InputError
from nkpredict.model.fitted import NKResistanceModel
from nkpredict.simulate.cohort import simulate_cohort
from nkpredict.simulate.config import SimulationConfig
from nkpredict.simulate.files import write_cohort
from training import engines
from training.cli import app
from training.engines import DaskEngine, LocalEngine, open_engine

distributed = pytest.importorskip("distributed")

pytestmark = pytest.mark.integration  # starts Dask clusters

AUC_TOLERANCE = 0.03
MIN_SPEARMAN = 0.95
SCORE_TOLERANCE = 1e-6
runner = CliRunner()


@pytest.fixture(scope="module")
def scheduler() -> Iterator[str]:
    """A LocalCluster of 2 single-threaded worker processes (processes: tasks are pickled)."""
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0"
    ) as cluster:
        yield cluster.scheduler_address


@pytest.fixture(scope="module")
def cohort() -> tuple[pd.DataFrame, pd.Series]:
    data = simulate_cohort(SimulationConfig(n_samples=200, n_genes=400, seed=11))
    return data.counts, data.labels["resistant"]


@pytest.fixture(scope="module")
def model_dir(
    cohort: tuple[pd.DataFrame, pd.Series], tmp_path_factory: pytest.TempPathFactory
) -> Path:
    counts, labels = cohort
    model = NKResistanceModel(booster={"n_estimators": 40, "n_jobs": 1}).fit(counts, labels)
    return model.save(tmp_path_factory.mktemp("engines") / "model")


def invoke(*args: str) -> str:
    result = runner.invoke(app, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def test_cross_validation_on_dask_equals_local(
    scheduler: str, cohort: tuple[pd.DataFrame, pd.Series]
) -> None:
    counts, labels = cohort
    prepared = prepare_expression(counts).matrix
    folds = make_folds(labels, None, CVConfig(n_splits=3, n_repeats=1), "classification")
    model = NKResistanceModel(booster={"n_estimators": 60})
    estimators = {"nkpredict": model.core}
    baselines = baseline_estimators("classification")
    estimators.update({name: baselines[name] for name in ("linear", "signature")})
    local = cross_validate(estimators, prepared, labels, folds, "classification")
    messages: list[str] = []
    with DaskEngine(scheduler) as engine:
        remote = engine.cross_validate(
            estimators, prepared, labels, folds, "classification", messages.append
        )
    assert len(messages) == len(estimators) * len(folds)
    difference = remote.summary()["cv_roc_auc"] - local.summary()["cv_roc_auc"]
    assert abs(difference) <= AUC_TOLERANCE
    # Each fold boosts on one worker through xgboost.dask: the same trees as xgboost.train.
    pd.testing.assert_frame_equal(remote.predictions, local.predictions, atol=SCORE_TOLERANCE)
    pd.testing.assert_frame_equal(remote.fold_metrics, local.fold_metrics, atol=SCORE_TOLERANCE)


def test_data_parallel_final_fit_is_close_and_plain(
    scheduler: str, cohort: tuple[pd.DataFrame, pd.Series], tmp_path: Path
) -> None:
    counts, labels = cohort
    prepared = prepare_expression(counts)
    local = NKResistanceModel().fit_prepared(prepared, labels)
    # 60 rows per partition: the 200 samples are boosted over both workers.
    with DaskEngine(scheduler, partition_rows=60) as engine, engine.boosting():
        remote = NKResistanceModel().fit_prepared(prepared, labels)
    booster = remote.boosted_trees.booster_
    assert type(booster) is xgb.Booster
    fresh = simulate_cohort(SimulationConfig(n_samples=300, n_genes=400, seed=12)).counts
    reloaded = NKResistanceModel.load(remote.save(tmp_path / "dask-model"))
    p_local = local.predict_table(local.prepare(fresh))["probability"]
    p_remote = reloaded.predict_table(reloaded.prepare(fresh))["probability"]
    assert spearmanr(p_local, p_remote).statistic > MIN_SPEARMAN
    assert not np.allclose(p_local, p_remote)  # really trained differently (data-parallel)


def slow_identity(job: float, item: int) -> int:
    time.sleep(job * (5 - item))  # later items finish first
    return item


def test_map_ordered_returns_results_in_input_order(scheduler: str) -> None:
    with DaskEngine(scheduler) as engine:
        assert list(engine.map_ordered(slow_identity, 0.05, range(6))) == list(range(6))
    assert list(LocalEngine().map_ordered(slow_identity, 0.0, [3, 1])) == [3, 1]


def write_cells(counts: pd.DataFrame, path: Path, n_cells: int = 3_000) -> Path:
    rng = np.random.default_rng(4)
    profiles = counts.to_numpy() / counts.to_numpy().sum(axis=1, keepdims=True)
    means = profiles[rng.integers(0, len(profiles), n_cells)] * 2000
    values = rng.poisson(means).astype(np.float32) + np.eye(1, counts.shape[1], dtype=np.float32)
    anndata.AnnData(
        X=sparse.csr_matrix(values),
        obs=pd.DataFrame(index=[f"c{i}" for i in range(n_cells)]),
        var=pd.DataFrame(index=list(counts.columns)),
    ).write_h5ad(path)
    return path


def test_predict_and_explain_cli_dask_equals_local(
    scheduler: str, cohort: tuple[pd.DataFrame, pd.Series], model_dir: Path, tmp_path: Path
) -> None:
    cells = write_cells(cohort[0], tmp_path / "cells.h5ad")
    common = ["--model", str(model_dir), "--expression", str(cells), "--chunk-size", "400"]
    dask = ["--engine", "dask", "--scheduler", scheduler]
    invoke("predict", *common, "--out", str(tmp_path / "local.parquet"), "--quiet")
    invoke("predict", *common, "--out", str(tmp_path / "dask.parquet"), *dask, "--quiet")
    local, remote = (pd.read_parquet(tmp_path / f"{e}.parquet") for e in ("local", "dask"))
    assert len(local) == 3_000
    pd.testing.assert_frame_equal(remote, local, atol=SCORE_TOLERANCE)
    invoke("explain", *common, "--out", str(tmp_path / "x-local"), "--quiet")
    invoke("explain", *common, "--out", str(tmp_path / "x-dask"), *dask, "--quiet")
    for name in ("features.csv", "genes.csv", "axes.csv", "pathways.csv"):
        expected = pd.read_csv(tmp_path / "x-local" / name)
        pd.testing.assert_frame_equal(
            pd.read_csv(tmp_path / "x-dask" / name), expected, atol=SCORE_TOLERANCE
        )
    summaries = [
        json.loads((tmp_path / d / "global.json").read_text()) for d in ("x-local", "x-dask")
    ]
    assert summaries[0] == summaries[1]


def workers() -> set[int]:
    """Process ids of our Dask nannies and workers (not multiprocessing's resource tracker)."""
    return {
        p.pid
        for p in psutil.Process().children(recursive=True)
        if "resource_tracker" not in " ".join(p.cmdline())
    }


def test_predict_cli_starts_and_closes_its_own_local_cluster(
    cohort: tuple[pd.DataFrame, pd.Series],
    model_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Without --scheduler a LocalCluster sized by local_workers() runs the job; one worker
    # here to keep the test short.
    monkeypatch.setattr(engines, "local_workers", lambda: 1)
    counts = cohort[0].iloc[:50]
    path = tmp_path / "few.csv"
    counts.to_csv(path)
    out = tmp_path / "few.csv.out.csv"
    before = workers()
    invoke("predict", "--model", str(model_dir), "--expression", str(path), "--out", str(out),
           "--engine", "dask", "--chunk-size", "20", "--quiet")  # fmt: skip
    assert workers() <= before  # the cluster it started is gone
    model = NKResistanceModel.load(model_dir)
    expected = model.predict_table(model.prepare(counts))
    written = pd.read_csv(out, dtype={"sample_id": str}, keep_default_na=False)
    pd.testing.assert_frame_equal(written, expected, check_dtype=False, atol=SCORE_TOLERANCE)


def test_engine_options_are_checked(model_dir: Path, tmp_path: Path) -> None:
    base = ["predict", "--model", str(model_dir), "--expression", "x.csv", "--out", "o.csv"]
    wrong = runner.invoke(app, [*base, "--engine", "spark"])
    assert wrong.exit_code == 2 and "local or dask" in wrong.output
    orphan = runner.invoke(app, [*base, "--scheduler", "tcp://127.0.0.1:1"])
    assert orphan.exit_code == 2 and "--engine dask" in orphan.output
    with pytest.raises(InputError, match="engine must be one of"), open_engine("spark"):
        pass


def test_train_cli_on_dask_matches_local(
    scheduler: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    files = write_cohort(
        simulate_cohort(SimulationConfig(n_samples=160, n_genes=300, seed=5)), tmp_path / "c"
    )
    monkeypatch.setenv("NKP_ARTIFACT_ROOT", str(tmp_path / "artifacts"))
    metrics, probabilities = {}, {}
    for engine in ("local", "dask"):
        uri = f"sqlite:///{tmp_path / engine}.db"
        extra = ["--scheduler", scheduler] if engine == "dask" else []
        invoke("train", "--expression", str(files["expression"]), "--labels",
               str(files["labels"]), "--label-column", "resistant", "--tracking-uri", uri,
               "--cv-splits", "3", "--cv-repeats", "1", "--no-baselines", "--no-report",
               "--no-register", "--model-out", str(tmp_path / f"model-{engine}"),
               "--engine", engine, *extra, "--quiet")  # fmt: skip
        run = mlflow.MlflowClient(uri).search_runs(
            [mlflow.MlflowClient(uri).get_experiment_by_name("nkpredict").experiment_id]
        )[0]
        assert run.data.params["engine"] == engine
        metrics[engine] = run.data.metrics["cv_roc_auc"]
        model = NKResistanceModel.load(tmp_path / f"model-{engine}")
        counts = pd.read_csv(files["expression"], index_col=0)
        probabilities[engine] = model.predict_table(model.prepare(counts))["probability"]
    assert abs(metrics["dask"] - metrics["local"]) <= AUC_TOLERANCE
    assert spearmanr(probabilities["dask"], probabilities["local"]).statistic > MIN_SPEARMAN
