"""Hostile model files and model URIs (issue 15, items 5 to 9).

Model directories that fail a strict schema, boosters that do not fit their description,
models that fail their warm-up, credentials in tracking URIs (an unreachable tracking server
is a closed port on 127.0.0.1), ``runs:/`` URIs, reload URI kinds, and the outputs of
``nkpredict predict`` committed together.
"""

from __future__ import annotations

import errno
import json
import logging
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import mlflow
import pandas as pd
import pytest
from fastapi.testclient import TestClient
from http_servers import free_port
from pydantic import SecretStr
from typer.testing import CliRunner

from nkpredict.exceptions import ModelLoadError
from nkpredict.model.fitted import MODEL_FILE, NKResistanceModel
from nkpredict.registry import load_model, redact_text, uri_kind
from nkpredict.settings import Settings
from service.app import create_app
from service.config import ServiceSettings
from training import tracking
from training.cli import app as cli

ADMIN_KEY = "hostile-admin"
ADMIN = {"X-API-Key": ADMIN_KEY}
runner = CliRunner()


def _settings(model_uri: str, **overrides: Any) -> ServiceSettings:
    values: dict[str, Any] = {
        "model_uri": model_uri,
        "api_key": None,
        "admin_api_key": SecretStr(ADMIN_KEY),
        "cors_origins": [],
        "mlflow_http_timeout": 1.0,
        "mlflow_http_max_retries": 0,
    }
    values.update(overrides)
    return ServiceSettings(**values)


@pytest.fixture
def restore_tracking_uri() -> Iterator[None]:
    tracking_uri, registry_uri = mlflow.get_tracking_uri(), mlflow.get_registry_uri()
    yield
    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_registry_uri(registry_uri)


def _edited(source: Path, target: Path, edit: Any) -> Path:
    """A copy of model directory ``source`` whose model.json went through ``edit(data)``."""
    shutil.copytree(source, target)
    data = json.loads((target / MODEL_FILE).read_text())
    edit(data)
    (target / MODEL_FILE).write_text(json.dumps(data))
    return target


def _one_line_load_error(directory: Path) -> str:
    with pytest.raises(ModelLoadError) as caught:
        NKResistanceModel.load(directory)
    message = str(caught.value)
    assert "\n" not in message
    return message


# --------------------------------------------------------------------------- item 7


def test_a_model_saved_by_the_current_code_loads(service_model_dir: Path) -> None:
    model = NKResistanceModel.load(service_model_dir)
    assert model.boosted_trees.booster_.num_features() == len(model.to_dict()["feature_names"])


@pytest.mark.parametrize(
    ("field", "value", "named"),
    [
        ("task", "rce", "params.task"),
        ("n_rounds", "abc", "n_rounds"),
        ("scale", "loud", "params.scale"),
        ("extra", 1, "extra"),
    ],
)
def test_model_json_is_checked_against_its_schema(
    service_model_dir: Path, tmp_path: Path, field: str, value: Any, named: str
) -> None:
    def edit(data: dict[str, Any]) -> None:
        if field in ("task", "scale"):
            data["params"][field] = value
        else:
            data[field] = value

    message = _one_line_load_error(_edited(service_model_dir, tmp_path / "m", edit))
    assert named in message


def test_a_deeply_nested_model_json_is_one_line(service_model_dir: Path, tmp_path: Path) -> None:
    target = shutil.copytree(service_model_dir, tmp_path / "deep")
    (target / MODEL_FILE).write_text('{"format_version": 1, "metadata": ' + "[" * 100_000)
    _one_line_load_error(target)
    (target / MODEL_FILE).write_text("[" * 100_000 + "]" * 100_000)
    _one_line_load_error(target)


def test_a_booster_expecting_other_features_is_refused(
    service_model_dir: Path, tmp_path: Path
) -> None:
    target = _edited(
        service_model_dir,
        tmp_path / "m",
        lambda data: data.update(feature_names=data["feature_names"][:-3]),
    )
    assert "features" in _one_line_load_error(target)


def test_a_model_that_fails_its_warm_up_is_a_502_on_reload(
    service_model_dir: Path, tmp_path: Path
) -> None:
    broken = _edited(
        service_model_dir,
        tmp_path / "warm-up",
        lambda data: data["features"].update(median=data["features"]["median"][:2]),
    )
    with TestClient(create_app(_settings(str(service_model_dir)))) as client:
        response = client.post("/v1/admin/reload", json={"model_uri": str(broken)}, headers=ADMIN)
        assert response.status_code == 502, response.text
        assert response.json()["error"]["code"] == "reload_failed"
        assert client.get("/ready").json()["model"]["uri"] == str(service_model_dir)


def test_the_cli_reports_a_broken_model_in_one_line(
    service_model_dir: Path, tmp_path: Path
) -> None:
    broken = _edited(
        service_model_dir, tmp_path / "m", lambda data: data["params"].update(task="rce")
    )
    expression = tmp_path / "x.csv"
    pd.DataFrame({"CD58": [1.0]}, index=pd.Index(["s"], name="sample_id")).to_csv(expression)
    result = runner.invoke(
        cli,
        ["predict", "--model", str(broken), "--expression", str(expression), "--out",
         str(tmp_path / "out.csv"), "--quiet"],
    )  # fmt: skip
    assert result.exit_code == 1
    assert "Traceback" not in result.output
    assert "params.task" in result.output
    assert len(result.output.strip().splitlines()) <= 3  # one message, wrapped at most


# --------------------------------------------------------------------------- items 5 and 8


def test_redaction() -> None:
    text = "cannot reach http://user:password@127.0.0.1:9/api (and https://a:b@h/x)"
    assert redact_text(text) == "cannot reach http://127.0.0.1:9/api (and https://h/x)"
    assert uri_kind("runs:/0123/model") == "runs"
    assert uri_kind("file:///etc") == "artifact"


def test_credentials_in_a_tracking_uri_are_never_shown(
    service_model_dir: Path,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    restore_tracking_uri: None,
) -> None:
    closed = f"http://user:password@127.0.0.1:{free_port()}"
    settings = _settings(
        str(service_model_dir), tracking_uri=closed, reload_uri_kinds=["directory", "models"]
    )
    caplog.set_level(logging.INFO)
    with TestClient(create_app(settings)) as client:
        response = client.post(
            "/v1/admin/reload", json={"model_uri": "models:/nk@champion"}, headers=ADMIN
        )
    assert response.status_code == 502, response.text
    assert "127.0.0.1" in response.text
    assert "password" not in response.text
    assert "password" not in caplog.text
    expression = tmp_path / "x.csv"
    pd.DataFrame({"CD58": [1.0]}, index=pd.Index(["s"], name="sample_id")).to_csv(expression)
    result = runner.invoke(
        cli,
        ["predict", "--model", "runs:/0123456789abcdef/model", "--tracking-uri", closed,
         "--expression", str(expression), "--out", str(tmp_path / "o.csv"), "--quiet"],
        env={"NKP_MLFLOW_HTTP_TIMEOUT": "1", "NKP_MLFLOW_HTTP_MAX_RETRIES": "0"},
    )  # fmt: skip
    assert result.exit_code == 1
    assert "127.0.0.1" in result.output
    assert "password" not in result.output


def test_reload_accepts_only_the_configured_uri_kinds(
    service_model_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    restore_tracking_uri: None,
) -> None:
    private = tmp_path / "private"
    private.mkdir()
    (private / "secret.txt").write_text("not a model")
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    with TestClient(create_app(_settings(str(service_model_dir)))) as client:
        response = client.post(
            "/v1/admin/reload", json={"model_uri": private.as_uri()}, headers=ADMIN
        )
        assert response.status_code == 400, response.text
        error = response.json()["error"]
        assert error["code"] == "model_uri_not_allowed"
        assert error["details"] == {"kind": "artifact", "allowed": ["directory"]}
    assert list(scratch.iterdir()) == []  # nothing was copied
    settings = _settings(
        str(service_model_dir),
        tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}",
        reload_uri_kinds=["directory", "artifact"],
    )
    tracking.setup_tracking(settings.tracking_uri, settings)  # a store that exists
    with TestClient(create_app(settings)) as client:
        response = client.post(
            "/v1/admin/reload", json={"model_uri": private.as_uri()}, headers=ADMIN
        )
        assert response.status_code == 502, response.text
        assert client.get("/ready").status_code == 200
    assert [p.name for p in scratch.iterdir() if p.name.startswith("nkpredict-model-")] == []


# --------------------------------------------------------------------------- item 6


@pytest.mark.integration  # logs a model to a local MLflow store
def test_runs_uris_load(
    service_model_dir: Path, tmp_path: Path, restore_tracking_uri: None
) -> None:
    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    settings = Settings(tracking_uri=store, artifact_root=str(tmp_path / "artifacts"))
    tracking.setup_tracking(store, settings)
    model = NKResistanceModel.load(service_model_dir)
    genes = list(model.feature_builder.genes_in_)
    example = pd.DataFrame([model.feature_builder.median_], columns=genes, index=["ex"])
    with mlflow.start_run(experiment_id=tracking.experiment_id("runs-uri", settings)) as run:
        tracking.log_model(model, example.rename_axis("sample_id"), None)
    loaded, reference = load_model(f"runs:/{run.info.run_id}/model", settings=settings)
    assert reference.run_id == run.info.run_id
    prepared = model.prepare(example.clip(lower=0), scale="log")
    assert loaded.predict_table(prepared).equals(model.predict_table(prepared))


# --------------------------------------------------------------------------- item 9


def test_predict_commits_its_outputs_together(
    service_model_dir: Path,
    service_cohort: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The disk fills up while the report is written: neither file appears."""
    import nkpredict.io

    expression = tmp_path / "x.csv"
    service_cohort.counts.iloc[:20].rename_axis("sample_id").to_csv(expression)
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    real_write_json = nkpredict.io.write_json

    def full_disk(path: Any, data: Any) -> Path:
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(nkpredict.io, "write_json", full_disk)
    args = ["predict", "--model", str(service_model_dir), "--expression", str(expression),
            "--out", str(out_dir / "predictions.csv"), "--quiet"]  # fmt: skip
    result = runner.invoke(cli, args)
    assert result.exit_code == 1
    assert "No space left on device" in result.output
    assert list(out_dir.iterdir()) == []
    monkeypatch.setattr(nkpredict.io, "write_json", real_write_json)
    result = runner.invoke(cli, args)
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out_dir.iterdir()) == [
        "predictions.csv",
        "predictions.harmonization.json",
    ]
