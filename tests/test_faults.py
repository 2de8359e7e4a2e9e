"""Faults, with real components: a tracking server that goes away, broken model artifacts,
a full disk, and training interrupted in the middle of registering a model.

- A real ``mlflow server`` process serves the registry; the service loads the champion from
  it, the server is stopped, and a reload must fail cleanly while the old model keeps
  serving; a start-up against the stopped server must fail within seconds with a clear
  message and a non-zero exit.
- Corrupted and missing artifacts (garbage booster, truncated or incomplete ``model.json``,
  a registered version whose files were deleted) give ``ModelLoadError`` with the reason, a
  failed start-up and a refused reload.
- A full disk: a real 256 KiB tmpfs when this process may mount one (root), and an injected
  ``ENOSPC`` everywhere: no file ever appears half-written at its final name.
- Registration is all-or-nothing: an interruption after the model version was created but
  before it was promoted deletes the version.
"""

from __future__ import annotations

import errno
import json
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import mlflow
import numpy as np
import pandas as pd
import pytest
import xgboost as xgb
from fastapi.testclient import TestClient
from http_servers import (
    REPO,
    Server,
    free_port,
    start_mlflow_server,
    start_serve,
    start_uvicorn,
    stop,
    wait_ready,
)
from mlflow import MlflowClient
from pydantic import SecretStr

from nkpredict.exceptions import ModelLoadError
from nkpredict.explain.attributions import explain, write_explanations
from nkpredict.io import write_json, write_table, write_text
from nkpredict.model.fitted import BOOSTER_FILE, MODEL_FILE, NKResistanceModel
from nkpredict.registry import load_model
from nkpredict.settings import Settings
from service.app import create_app
from service.config import ServiceSettings
from service.state import default_loader
from training import tracking

pytestmark = pytest.mark.integration  # real mlflow server, uvicorn and CLI processes

if TYPE_CHECKING:
    from nkpredict.simulate.cohort import Cohort

ADMIN_KEY = "faults-admin-key"
MODEL_NAME = "nk-faults"
FAIL_FAST_S = 30.0
"""Start-up against an unreachable tracking server must end well within this."""


def _settings(model_uri: str, **overrides: Any) -> ServiceSettings:
    values: dict[str, Any] = {"model_uri": model_uri, "api_key": None, "cors_origins": []}
    values["admin_api_key"] = SecretStr(ADMIN_KEY)
    values.update(overrides)
    return ServiceSettings(**values)


def _body(frame: pd.DataFrame) -> dict[str, Any]:
    return {"samples": {str(s): row.to_dict() for s, row in frame.iterrows()}}


@pytest.fixture
def restore_tracking_uri() -> Iterator[None]:
    """Tests here point MLflow at their own stores; put the previous URIs back."""
    tracking_uri, registry_uri = mlflow.get_tracking_uri(), mlflow.get_registry_uri()
    yield
    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_registry_uri(registry_uri)


def _register(model_dir: Path, tracking_uri: str, artifact_root: Path, alias: str) -> str:
    """Log and register the model at ``model_dir`` as MODEL_NAME; alias it; its version."""
    settings = Settings(tracking_uri=tracking_uri, artifact_root=str(artifact_root))
    tracking.setup_tracking(tracking_uri, settings)
    model = NKResistanceModel.load(model_dir)
    genes = list(model.feature_builder.genes_in_)
    example = pd.DataFrame([model.feature_builder.median_], columns=genes, index=["ex"])
    experiment = tracking.experiment_id("faults", settings)
    with mlflow.start_run(experiment_id=experiment), tracking.registration(MODEL_NAME):
        info = tracking.log_model(model, example.rename_axis("sample_id"), MODEL_NAME)
        version = str(info.registered_model_version)
        MlflowClient().set_registered_model_alias(MODEL_NAME, alias, version)
    return version


# --------------------------------------------------------------------------- tracking server


@pytest.fixture(scope="module")
def tracking_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A real ``mlflow server`` holding MODEL_NAME@champion (stopped by a test or at the end)."""
    workdir = tmp_path_factory.mktemp("mlflow-server")
    server = start_mlflow_server(workdir, workdir / "mlflow-server.log")
    try:
        wait_ready(server, "/health", timeout=120)
        yield server
    finally:
        stop(server)


def test_tracking_server_unreachable_at_reload_and_at_start_up(
    tracking_server: Server,
    service_model_dir: Path,
    service_cohort: Cohort,
    tmp_path: Path,
    restore_tracking_uri: None,
) -> None:
    version = _register(service_model_dir, tracking_server.url, tmp_path / "unused", "champion")
    uri = f"models:/{MODEL_NAME}@champion"
    env = {
        "NKP_TRACKING_URI": tracking_server.url,
        "NKP_ADMIN_API_KEY": ADMIN_KEY,
        "NKP_MLFLOW_HTTP_TIMEOUT": "2",
        "NKP_MLFLOW_HTTP_MAX_RETRIES": "1",
    }
    service = start_serve(uri, tmp_path / "service.log", **env)
    body = _body(service_cohort.counts.iloc[:3])
    try:
        wait_ready(service)
        with httpx.Client(base_url=service.url, timeout=60) as client:
            before = client.post("/v1/predict", json=body)
            assert before.status_code == 200, before.text
            assert before.json()["model"]["version"] == version

            assert stop(tracking_server) == 0  # the tracking server goes away
            started = time.monotonic()
            reload = client.post("/v1/admin/reload", headers={"X-API-Key": ADMIN_KEY})
            assert time.monotonic() - started < FAIL_FAST_S
            assert reload.status_code == 502, reload.text
            error = reload.json()["error"]
            assert error["code"] == "reload_failed"
            assert "cannot be reached" in error["message"]
            assert error["details"]["serving"]["version"] == version

            after = client.post("/v1/predict", json=body)  # the old model keeps serving
            assert after.status_code == 200
            assert after.json()["predictions"] == before.json()["predictions"]
            assert client.get("/ready").status_code == 200
            metrics = client.get("/metrics").text
            assert 'nkpredict_model_reloads_total{outcome="failure"} 1.0' in metrics
    finally:
        assert stop(service) == 0, service.output()

    # start-up against the stopped server: a clear one-line error and exit status 1, fast
    command = [
        sys.executable, "-m", "training.cli", "serve", "--model", uri,
        "--tracking-uri", tracking_server.url, "--port", str(free_port()),
    ]  # fmt: skip
    started = time.monotonic()
    done = subprocess.run(
        command, cwd=REPO, capture_output=True, text=True, timeout=120, env=_clean_env()
    )
    assert time.monotonic() - started < FAIL_FAST_S + 20  # includes interpreter start-up
    assert done.returncode == 1, done.stdout + done.stderr
    assert "cannot be reached" in done.stderr
    assert tracking_server.url in done.stderr
    assert "Traceback" not in done.stderr


def _clean_env() -> dict[str, str]:
    import os

    return {k: v for k, v in os.environ.items() if not k.startswith("NKP_")}


def test_unreachable_tracking_server_fails_within_the_configured_bounds(
    monkeypatch: pytest.MonkeyPatch, restore_tracking_uri: None
) -> None:
    for name in ("MLFLOW_HTTP_REQUEST_TIMEOUT", "MLFLOW_HTTP_REQUEST_MAX_RETRIES"):
        monkeypatch.delenv(name, raising=False)  # restored after the test
    nothing = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    settings = _settings(
        f"models:/{MODEL_NAME}@champion",
        tracking_uri=nothing,
        mlflow_http_timeout=1.0,
        mlflow_http_max_retries=0,
    )
    load = default_loader(settings)
    started = time.monotonic()
    with pytest.raises(ModelLoadError, match="cannot be reached"):
        load(settings.model_uri)
    assert time.monotonic() - started < 10
    import os

    assert os.environ["MLFLOW_HTTP_REQUEST_TIMEOUT"] == "1"
    assert os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] == "0"


# --------------------------------------------------------------------------- broken artifacts


def _broken_copy(source: Path, target: Path, damage: str) -> Path:
    shutil.copytree(source, target)
    if damage == "garbage_booster":
        (target / BOOSTER_FILE).write_bytes(b"\x00not a booster" * 50)
    elif damage == "truncated_booster":
        raw = (target / BOOSTER_FILE).read_bytes()
        (target / BOOSTER_FILE).write_bytes(raw[: len(raw) // 3])
    elif damage == "missing_booster":
        (target / BOOSTER_FILE).unlink()
    elif damage == "truncated_json":
        raw = (target / MODEL_FILE).read_text()
        (target / MODEL_FILE).write_text(raw[: len(raw) // 2])
    elif damage == "incomplete_json":
        data = json.loads((target / MODEL_FILE).read_text())
        del data["features"]
        (target / MODEL_FILE).write_text(json.dumps(data))
    elif damage == "missing_json":
        (target / MODEL_FILE).unlink()
    elif damage == "wrong_booster":  # a valid booster of another model (other features)
        other = NKResistanceModel(booster={"n_estimators": 3, "early_stopping_rounds": None})
        rng = np.random.default_rng(0)
        frame = pd.DataFrame(rng.uniform(0, 50, (30, 3)), columns=["MICA", "HLA-E", "CD48"])
        other.fit(frame.round(), np.arange(30) % 2)
        other.boosted_trees.save(str(target / BOOSTER_FILE))
    return target


DAMAGES = (
    "garbage_booster",
    "truncated_booster",
    "missing_booster",
    "truncated_json",
    "incomplete_json",
    "missing_json",
    "wrong_booster",
)


@pytest.mark.parametrize("damage", DAMAGES)
def test_broken_model_directories_are_refused_and_reload_keeps_the_old_model(
    damage: str, service_model_dir: Path, service_cohort: Cohort, tmp_path: Path
) -> None:
    broken = _broken_copy(service_model_dir, tmp_path / "broken", damage)
    if damage != "wrong_booster":  # that one loads; it fails its warm-up prediction
        with pytest.raises(ModelLoadError):
            load_model(broken)
    body = _body(service_cohort.counts.iloc[:2])
    with TestClient(create_app(_settings(str(service_model_dir)))) as client:
        before = client.post("/v1/predict", json=body).json()["predictions"]
        reload = client.post(
            "/v1/admin/reload",
            json={"model_uri": str(broken)},
            headers={"X-API-Key": ADMIN_KEY},
        )
        assert reload.status_code == 502, reload.text
        assert reload.json()["error"]["code"] == "reload_failed"
        assert str(broken) in reload.json()["error"]["message"]
        assert client.post("/v1/predict", json=body).json()["predictions"] == before
    app = create_app(_settings(str(broken)))
    with pytest.raises(ModelLoadError), TestClient(app):
        pass  # the lifespan refuses to start


def test_broken_model_makes_uvicorn_exit_with_the_reason(
    service_model_dir: Path, tmp_path: Path
) -> None:
    broken = _broken_copy(service_model_dir, tmp_path / "broken", "incomplete_json")
    server = start_uvicorn(str(broken), tmp_path / "uvicorn.log")
    try:
        code = server.process.wait(timeout=60)
    except subprocess.TimeoutExpired:
        stop(server)
        pytest.fail(f"uvicorn kept running with a broken model:\n{server.output()}")
    output = server.output()
    assert code != 0
    assert "cannot start the service" in output
    # the schema check of model.json names the file and the missing field
    assert "model.json is not a valid nkpredict model" in output
    assert "features: Field required" in output


def test_registered_version_whose_artifacts_were_deleted(
    service_model_dir: Path, tmp_path: Path, restore_tracking_uri: None
) -> None:
    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    artifacts = tmp_path / "artifacts"
    _register(service_model_dir, store, artifacts, "champion")
    uri = f"models:/{MODEL_NAME}@champion"
    assert load_model(uri)[1].version == "1"
    shutil.rmtree(artifacts)
    with pytest.raises(ModelLoadError, match="cannot download model"):
        load_model(uri)
    with pytest.raises(ModelLoadError, match="cannot resolve"):
        load_model(f"models:/{MODEL_NAME}@no-such-alias")


# --------------------------------------------------------------------------- full disk


@pytest.fixture
def full_disk(tmp_path: Path) -> Iterator[Path]:
    """A real 256 KiB tmpfs (skipped where this process may not mount one)."""
    mount_point = tmp_path / "small-disk"
    mount_point.mkdir()
    mount = shutil.which("mount")
    if mount is None:
        pytest.skip("no mount command")
    done = subprocess.run(
        [mount, "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mount_point)],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", str(mount_point)], check=False)


def _fill(disk: Path, leave_bytes: int) -> None:
    """Leave only about ``leave_bytes`` free on ``disk``."""
    free = shutil.disk_usage(disk).free
    (disk / "filler").write_bytes(b"\0" * max(free - leave_bytes, 0))


def _leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name.startswith("."))


def test_full_tmpfs_never_shows_a_partial_file(
    full_disk: Path, service_model_dir: Path, service_cohort: Cohort
) -> None:
    big = pd.DataFrame(np.random.default_rng(0).normal(size=(4000, 20)))
    target = full_disk / "predictions.csv"
    target.write_text("sample_id,probability\nold,0.5\n")  # a previous, complete result
    _fill(full_disk, 24 * 1024)
    with pytest.raises(OSError) as caught:
        write_table(big, target)
    assert caught.value.errno == errno.ENOSPC
    assert target.read_text() == "sample_id,probability\nold,0.5\n"
    with pytest.raises(OSError):
        write_table(big, full_disk / "new.parquet")
    assert not (full_disk / "new.parquet").exists()
    with pytest.raises(OSError):
        write_json(full_disk / "report.json", {"x": list(range(100_000))})
    assert not (full_disk / "report.json").exists()
    model = NKResistanceModel.load(service_model_dir)
    with pytest.raises((OSError, xgb.core.XGBoostError)):  # XGBoost reports its own write
        model.save(full_disk / "model")
    assert not (full_disk / "model").exists()
    assert _leftovers(full_disk) == []
    small = pd.DataFrame({"sample_id": ["a"], "probability": [0.25]})
    write_table(small, full_disk / "small.csv")  # the disk still works for what fits
    assert (full_disk / "small.csv").read_text().startswith("sample_id,probability")


def test_cli_predict_onto_a_full_disk_leaves_no_output(
    full_disk: Path, service_model_dir: Path, service_cohort: Cohort, tmp_path: Path
) -> None:
    expression = tmp_path / "expression.csv"
    many = pd.concat([service_cohort.counts] * 15, ignore_index=True)
    many.index = [f"S{i}" for i in range(len(many))]
    many.rename_axis("sample_id").to_csv(expression)
    out = full_disk / "predictions.csv"
    _fill(full_disk, 24 * 1024)
    done = subprocess.run(
        [
            sys.executable, "-m", "training.cli", "predict", "--model", str(service_model_dir),
            "--expression", str(expression), "--out", str(out), "--quiet",
        ],
        cwd=REPO, capture_output=True, text=True, timeout=120, env=_clean_env(),
    )  # fmt: skip
    assert done.returncode != 0
    assert "No space left on device" in done.stderr
    assert not out.exists()
    assert _leftovers(full_disk) == []


class _FullDisk(OSError):
    def __init__(self) -> None:
        super().__init__(errno.ENOSPC, "No space left on device")


def test_injected_enospc_in_every_writer(
    monkeypatch: pytest.MonkeyPatch, service_model_dir: Path, service_cohort: Cohort, tmp_path: Path
) -> None:
    """The same guarantee without a mount: writes fail after part of the data is written."""
    real_to_csv = pd.DataFrame.to_csv

    def half_then_full(self: pd.DataFrame, path: Any, *args: Any, **kwargs: Any) -> None:
        real_to_csv(self.iloc[: len(self) // 2], path, *args, **kwargs)
        raise _FullDisk()

    monkeypatch.setattr(pd.DataFrame, "to_csv", half_then_full)
    model = NKResistanceModel.load(service_model_dir)
    prepared = model.prepare(service_cohort.counts.iloc[:10])
    with pytest.raises(OSError):
        write_table(model.predict_table(prepared), tmp_path / "predictions.tsv")
    with pytest.raises(OSError):
        write_explanations(explain(model, prepared), tmp_path / "explanations")
    assert not (tmp_path / "predictions.tsv").exists()
    assert list((tmp_path / "explanations").glob("*.csv")) == []
    monkeypatch.undo()

    real_open = Path.open

    def open_then_full(self: Path, mode: str = "r", *args: Any, **kwargs: Any) -> Any:
        handle = real_open(self, mode, *args, **kwargs)
        if "w" in mode:
            real_write = handle.write

            def write(data: Any) -> int:
                real_write(data[: len(data) // 2])
                raise _FullDisk()

            handle.write = write  # type: ignore[method-assign]
        return handle

    monkeypatch.setattr(Path, "open", open_then_full)
    with pytest.raises(OSError):
        write_text(tmp_path / "report.html", "<html>" + "x" * 10_000)
    assert not (tmp_path / "report.html").exists()
    assert _leftovers(tmp_path) == []


# --------------------------------------------------------------------------- registration


class _Interrupted(KeyboardInterrupt):
    """Ctrl-C in the middle of training."""


def test_interrupted_registration_leaves_no_half_registered_model(
    service_model_dir: Path, tmp_path: Path, restore_tracking_uri: None
) -> None:
    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    settings = Settings(tracking_uri=store, artifact_root=str(tmp_path / "artifacts"))
    tracking.setup_tracking(store, settings)
    model = NKResistanceModel.load(service_model_dir)
    genes = list(model.feature_builder.genes_in_)
    example = pd.DataFrame([model.feature_builder.median_], columns=genes, index=["ex"])
    example = example.rename_axis("sample_id")
    experiment = tracking.experiment_id("interrupted", settings)
    client = MlflowClient()

    # the first training is interrupted after its version exists, before promotion
    run = mlflow.start_run(experiment_id=experiment)
    with pytest.raises(_Interrupted), run, tracking.registration(MODEL_NAME):
        info = tracking.log_model(model, example, MODEL_NAME)
        assert client.get_model_version(MODEL_NAME, str(info.registered_model_version))
        raise _Interrupted()
    assert client.search_registered_models(f"name = '{MODEL_NAME}'") == []

    # a complete training registers and promotes its version
    with mlflow.start_run(experiment_id=experiment), tracking.registration(MODEL_NAME):
        info = tracking.log_model(model, example, MODEL_NAME)
        champion = str(info.registered_model_version)
        decision = tracking.decide_promotion(champion, "cv_roc_auc", 0.8, None, True, False)
        tracking.set_alias(MODEL_NAME, decision)

    # a later one fails after registering and even after taking the alias: all rolled back
    run = mlflow.start_run(experiment_id=experiment)
    with pytest.raises(RuntimeError, match="disk"), run, tracking.registration(MODEL_NAME):
        info = tracking.log_model(model, example, MODEL_NAME)
        late = str(info.registered_model_version)
        forced = tracking.decide_promotion(late, "cv_roc_auc", 0.7, None, True, True)
        tracking.set_alias(MODEL_NAME, forced)
        raise RuntimeError("disk full while writing the report")
    versions = client.search_model_versions(f"name = '{MODEL_NAME}'")
    assert [str(v.version) for v in versions] == [champion]
    assert str(client.get_model_version_by_alias(MODEL_NAME, "champion").version) == champion
    assert load_model(f"models:/{MODEL_NAME}@champion")[1].version == champion


def test_registration_needs_a_run_and_is_a_no_op_without_a_name() -> None:
    with tracking.registration(None):
        pass
    with pytest.raises(tracking.TrackingError), tracking.registration(MODEL_NAME):
        pass
