"""End-to-end tests of the training command line against real MLflow stores."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient
from typer.testing import CliRunner

from nkpredict.registry import load_model
from nkpredict.simulate.cohort import simulate_cohort
from nkpredict.simulate.config import SimulationConfig
from nkpredict.simulate.files import write_cohort
from training.cli import app

pytestmark = pytest.mark.integration  # trains full pipelines, starts a real MLflow server

runner = CliRunner()

CONTRACT_METRICS = (
    "cv_roc_auc",
    "cv_roc_auc_ci_low",
    "cv_roc_auc_ci_high",
    "cv_pr_auc",
    "cv_brier",
    "cv_balanced_accuracy",
    "baseline_linear_cv_roc_auc",
    "baseline_signature_cv_roc_auc",
    "baseline_xgb_allgenes_cv_roc_auc",
    "oracle_roc_auc",
    "baseline_lineage_cv_roc_auc",
    "cv_within_lineage_roc_auc",
    "lolo_roc_auc",
    "cv_roc_auc_minus_best_baseline",
    "cv_roc_auc_minus_best_baseline_ci_low",
    "cv_roc_auc_minus_best_baseline_ci_high",
)


@pytest.fixture(scope="module")
def cohort_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    cohort = simulate_cohort(SimulationConfig(n_samples=160, n_genes=300, seed=5))
    return write_cohort(cohort, tmp_path_factory.mktemp("cohort"))


def invoke(*args: str) -> str:
    result = runner.invoke(app, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def train_args(files: dict[str, Path], uri: str, *extra: str) -> list[str]:
    return [
        "train",
        "--expression",
        str(files["expression"]),
        "--labels",
        str(files["labels"]),
        "--label-column",
        "resistant",
        "--tracking-uri",
        uri,
        "--cv-splits",
        "3",
        "--cv-repeats",
        "1",
        "--quiet",
        *extra,
    ]


@pytest.fixture(scope="module")
def trained_store(
    cohort_files: dict[str, Path], tmp_path_factory: pytest.TempPathFactory
) -> tuple[str, Path]:
    root = tmp_path_factory.mktemp("store")
    os.environ["NKP_ARTIFACT_ROOT"] = str(root / "artifacts")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    invoke(*train_args(cohort_files, uri, "--model-out", str(root / "model")))
    return uri, root


def test_train_logs_contract_metrics_and_registers_champion(
    trained_store: tuple[str, Path],
) -> None:
    uri, _ = trained_store
    mlflow.set_tracking_uri(uri)
    client = MlflowClient(uri, uri)
    champion = client.get_model_version_by_alias("nk-resistance", "champion")
    run = client.get_run(champion.run_id)
    for name in CONTRACT_METRICS:
        assert name in run.data.metrics, name
    metrics = run.data.metrics
    assert metrics["cv_roc_auc_ci_low"] <= metrics["cv_roc_auc"] <= metrics["cv_roc_auc_ci_high"]
    assert metrics["oracle_roc_auc"] > 0.75
    assert run.data.params["data_sha256"]
    assert "mlflow.source.git.commit" in run.data.tags or "environment.json" in {
        a.path for a in client.list_artifacts(run.info.run_id)
    }
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"harmonization_report.json", "data_fingerprint.json", "features.txt"} <= artifacts
    assert run.inputs.dataset_inputs, "training data logged as an MLflow dataset"


def test_serial_training_gives_the_parallel_metrics(
    trained_store: tuple[str, Path], cohort_files: dict[str, Path], tmp_path: Path
) -> None:
    """``--n-jobs 1`` (every fit in this process) logs exactly the metrics of the default
    run, whose fits ran in a pool of worker processes."""
    parallel_uri, _ = trained_store
    serial_uri = f"sqlite:///{tmp_path / 'serial.db'}"
    invoke(*train_args(cohort_files, serial_uri, "--n-jobs", "1", "--no-report"))

    def metrics(uri: str) -> dict[str, float]:
        mlflow.set_tracking_uri(uri)
        experiment = mlflow.get_experiment_by_name("nkpredict")
        assert experiment is not None
        runs = MlflowClient(uri).search_runs([experiment.experiment_id])
        training = [run for run in runs if "cv_splits" in run.data.params]
        return min(training, key=lambda run: run.info.start_time).data.metrics

    parallel, serial = metrics(parallel_uri), metrics(serial_uri)
    assert "baseline_xgb_allgenes_cv_roc_auc" in serial and "lolo_roc_auc" in serial
    assert serial == parallel


def test_predict_cli_reproduces_in_process_predictions(
    trained_store: tuple[str, Path], cohort_files: dict[str, Path], tmp_path: Path
) -> None:
    uri, root = trained_store
    out = tmp_path / "predictions.parquet"
    invoke(
        "predict",
        "--model",
        "models:/nk-resistance@champion",
        "--expression",
        str(cohort_files["expression"]),
        "--out",
        str(out),
        "--tracking-uri",
        uri,
        "--quiet",
    )
    written = pd.read_parquet(out)
    local = load_model(root / "model")[0]
    counts = pd.read_csv(cohort_files["expression"], index_col=0)
    expected = local.predict_table(local.prepare(counts))
    pd.testing.assert_frame_equal(written, expected)
    assert (tmp_path / "predictions.harmonization.json").is_file()


def test_models_command_lists_versions(trained_store: tuple[str, Path]) -> None:
    uri, _ = trained_store
    output = invoke("models", "--tracking-uri", uri)
    assert "champion" in output and "nk-resistance" in output


def test_promotion_both_ways(cohort_files: dict[str, Path], tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    os.environ["NKP_ARTIFACT_ROOT"] = str(tmp_path / "artifacts")
    base = ["--no-baselines", "--model-name", "promo"]
    invoke(*train_args(cohort_files, uri, *base))
    # Same data, same folds, a crippled model: it must not displace the champion.
    shuffled = pd.read_csv(cohort_files["labels"])
    shuffled["resistant"] = np.random.default_rng(0).permutation(shuffled["resistant"].to_numpy())
    noise_labels = tmp_path / "noise.csv"
    shuffled.to_csv(noise_labels, index=False)
    weak = train_args(cohort_files, uri, *base)
    weak[weak.index("--labels") + 1] = str(noise_labels)
    invoke(*weak)
    client = MlflowClient(uri, uri)
    assert str(client.get_model_version_by_alias("promo", "champion").version) == "1"
    assert str(client.get_model_version_by_alias("promo", "challenger").version) == "2"
    invoke(*weak, "--force")
    assert str(client.get_model_version_by_alias("promo", "champion").version) == "3"


def test_bad_input_gives_one_line_error(cohort_files: dict[str, Path], tmp_path: Path) -> None:
    result = runner.invoke(
        app,
        [
            *train_args(cohort_files, f"sqlite:///{tmp_path / 'x.db'}")[:-1],
            "--label-column",
            "no_such_column",
        ],
    )
    assert result.exit_code == 1
    assert "no_such_column" in result.output
    missing = runner.invoke(
        app,
        [
            "predict",
            "--model",
            str(tmp_path / "none"),
            "--expression",
            str(cohort_files["expression"]),
            "--out",
            str(tmp_path / "o.csv"),
        ],
    )
    assert missing.exit_code == 1 and "no such directory" in missing.output


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_train_against_real_mlflow_server(cohort_files: dict[str, Path], tmp_path: Path) -> None:
    port = free_port()
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mlflow",
            "server",
            "--backend-store-uri",
            f"sqlite:///{tmp_path / 'server.db'}",
            "--artifacts-destination",
            str(tmp_path / "server-artifacts"),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "1",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"},
    )
    uri = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{uri}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.5)
        else:
            pytest.fail("mlflow server did not start")
        invoke(*train_args(cohort_files, uri, "--no-baselines", "--model-name", "remote"))
        client = MlflowClient(uri, uri)
        champion = client.get_model_version_by_alias("remote", "champion")
        assert "cv_roc_auc" in client.get_run(champion.run_id).data.metrics
        mlflow.set_tracking_uri(uri)
        model, reference = load_model("models:/remote@champion")
        assert reference.version == champion.version
        assert model.feature_builder.get_feature_names_out().size > 50
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_evaluate_scores_new_labelled_data_and_logs_it(
    trained_store: tuple[str, Path], tmp_path: Path
) -> None:
    uri, _ = trained_store
    fresh = write_cohort(
        simulate_cohort(SimulationConfig(n_samples=120, n_genes=300, seed=99)), tmp_path
    )
    out = tmp_path / "evaluated.csv"
    output = invoke(
        "evaluate",
        "--model",
        "models:/nk-resistance@champion",
        "--expression",
        str(fresh["expression"]),
        "--labels",
        str(fresh["labels"]),
        "--tracking-uri",
        uri,
        "--out",
        str(out),
        "--quiet",
    )
    assert "eval_roc_auc" in output
    table = pd.read_csv(out)
    assert len(table) == 120 and {"y_true", "probability", "call"} <= set(table.columns)
    runs = MlflowClient(uri).search_runs(
        [mlflow.get_experiment_by_name("nkpredict").experiment_id],
        filter_string="tags.`nkpredict.kind` = 'evaluation'",
    )
    assert len(runs) == 1
    metrics = runs[0].data.metrics
    assert (
        metrics["eval_roc_auc_ci_low"] <= metrics["eval_roc_auc"] <= metrics["eval_roc_auc_ci_high"]
    )
    assert metrics["eval_roc_auc"] > 0.6


def test_interrupted_training_leaves_no_half_registered_version(
    cohort_files: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ctrl-C after the version is created but before promotion: the version is removed."""
    from training import tracking

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    os.environ["NKP_ARTIFACT_ROOT"] = str(tmp_path / "artifacts")

    def interrupted(name: str, decision: tracking.PromotionDecision) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(tracking, "set_alias", interrupted)
    result = runner.invoke(
        app, train_args(cohort_files, uri, "--no-baselines", "--no-report", "--model-name", "cut")
    )
    assert result.exit_code == 130
    client = MlflowClient(uri, uri)
    assert client.search_model_versions("name = 'cut'") == []


def test_sigterm_ends_training_cleanly(cohort_files: dict[str, Path], tmp_path: Path) -> None:
    """SIGTERM in the middle of the parallel fits (``kill``, a scheduler's time limit) ends
    the job like Ctrl-C: status 143, workers stopped, the memory-mapped matrix removed."""
    import signal

    from training.cli import TERMINATED_STATUS

    scratch = tmp_path / "scratch"
    scratch.mkdir()
    env = {**os.environ, "TMPDIR": str(scratch), "NKP_ARTIFACT_ROOT": str(tmp_path / "art")}
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    args = train_args(cohort_files, uri, "--no-report", "--n-jobs", "2")
    job = subprocess.Popen(
        [sys.executable, "-m", "training.cli", *args],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 120
        while not list(scratch.glob("nkpredict-cv-*")):
            assert job.poll() is None, job.communicate()[1]
            assert time.monotonic() < deadline, "the parallel fits never started"
            time.sleep(0.1)
        job.send_signal(signal.SIGTERM)
        _, stderr = job.communicate(timeout=60)
    finally:
        job.kill()
    assert job.returncode == TERMINATED_STATUS, stderr
    assert list(scratch.glob("nkpredict-cv-*")) == []
