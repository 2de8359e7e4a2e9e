"""The one MLflow set-up (nkpredict.integrations.mlflow): store rules, HTTP settings, pyfunc."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import mlflow
import pandas as pd
import pytest

from nkpredict.exceptions import ModelLoadError
from nkpredict.integrations import mlflow as adapter
from nkpredict.registry import load_model
from nkpredict.settings import Settings
from training import tracking

HTTP_VARIABLES = (
    "MLFLOW_HTTP_REQUEST_TIMEOUT",
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR",
    "MLFLOW_HTTP_REQUEST_BACKOFF_JITTER",
)


@pytest.fixture
def clean_mlflow_environment(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No MLFLOW_HTTP_* variables and no record of earlier exports; MLflow URIs restored."""
    for name in (*HTTP_VARIABLES, "NKPREDICT_MLFLOW_HTTP_EXPORTED"):
        monkeypatch.delenv(name, raising=False)
    tracking_uri, registry_uri = mlflow.get_tracking_uri(), mlflow.get_registry_uri()
    yield
    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_registry_uri(registry_uri)


def test_training_and_the_service_share_one_set_up_function() -> None:
    assert tracking.setup_tracking is adapter.setup_tracking
    assert tracking.log_model is adapter.log_model


def test_writers_create_the_local_store_readers_refuse_a_missing_one(
    tmp_path: Path, clean_mlflow_environment: None
) -> None:
    settings = Settings()
    missing = f"sqlite:///{tmp_path / 'absent' / 'mlflow.db'}"
    with pytest.raises(adapter.MissingStoreError, match="does not exist"):
        adapter.setup_tracking(missing, settings, create_store=False)
    assert not (tmp_path / "absent").exists()
    store = f"sqlite:///{tmp_path / 'new' / 'mlflow.db'}"
    assert adapter.setup_tracking(store, settings) == store
    assert (tmp_path / "new").is_dir()
    assert mlflow.get_tracking_uri() == store and mlflow.get_registry_uri() == store


def test_reading_a_registered_model_from_a_missing_store_names_both(
    tmp_path: Path, clean_mlflow_environment: None
) -> None:
    settings = Settings(tracking_uri=f"sqlite:///{tmp_path / 'none' / 'mlflow.db'}")
    with pytest.raises(ModelLoadError, match=r"cannot load models:/nk@champion: .*does not exist"):
        load_model("models:/nk@champion", settings=settings)
    assert not (tmp_path / "none").exists()
    with pytest.raises(ModelLoadError, match="no such directory"):
        load_model("relative/missing", settings=settings)


def test_explicit_http_variables_win_and_our_own_follow_the_settings(
    monkeypatch: pytest.MonkeyPatch, clean_mlflow_environment: None
) -> None:
    adapter.export_http_settings(Settings(mlflow_http_timeout=3, mlflow_http_max_retries=1))
    assert os.environ["MLFLOW_HTTP_REQUEST_TIMEOUT"] == "3"
    assert os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] == "1"
    # values nkpredict exported itself follow new settings ...
    adapter.export_http_settings(Settings(mlflow_http_timeout=5, mlflow_http_max_retries=0))
    assert os.environ["MLFLOW_HTTP_REQUEST_TIMEOUT"] == "5"
    assert os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] == "0"
    # ... a value the user set is never overwritten
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "42")
    effective = adapter.export_http_settings(Settings(mlflow_http_timeout=7))
    assert os.environ["MLFLOW_HTTP_REQUEST_TIMEOUT"] == "42"
    assert effective["MLFLOW_HTTP_REQUEST_TIMEOUT"] == "42"


def test_tracking_uri_falls_back_to_mlflow_then_local_sqlite(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert adapter.resolved_tracking_uri(Settings()) == "sqlite:///mlruns/mlflow.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://tracking:5000")
    assert adapter.resolved_tracking_uri(Settings()) == "http://tracking:5000"
    assert adapter.resolved_tracking_uri(Settings(tracking_uri="file:/x")) == "file:/x"


def test_imports_of_models_logged_by_earlier_versions_still_resolve() -> None:
    """Logged pyfunc code imports these names (copies of the old nkpredict/mlflow_pyfunc.py)."""
    from nkpredict.model import NKResistanceModel
    from nkpredict.model.fitted import NKResistanceModel as Fitted
    from nkpredict.registry import MODEL_ARTIFACT

    assert NKResistanceModel is Fitted
    assert MODEL_ARTIFACT == "nkpredict_model"


def test_a_logged_model_loads_back_as_model_and_as_pyfunc(
    service_model_dir: Path, tmp_path: Path, clean_mlflow_environment: None
) -> None:
    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    settings = Settings(tracking_uri=store, artifact_root=str(tmp_path / "artifacts"))
    adapter.setup_tracking(None, settings)
    model, _ = load_model(service_model_dir)
    genes = list(model.feature_builder.genes_in_)
    example = pd.DataFrame([model.feature_builder.median_], columns=genes, index=["ex"])
    example = example.rename_axis("sample_id")
    with tracking.start_run(tracking.experiment_id("pyfunc", settings)):
        info = tracking.log_model(model, example, "pyfunc-test")
    logged = mlflow.artifacts.list_artifacts(info.model_uri)
    assert not any(entry.path.endswith(".pkl") for entry in logged)  # model from code
    loaded, reference = load_model("models:/pyfunc-test/1", settings=settings)
    assert reference.version == "1" and reference.name == "pyfunc-test"
    expected = model.predict_table(model.prepare(example, scale="log"))
    pd.testing.assert_frame_equal(
        loaded.predict_table(loaded.prepare(example, scale="log")), expected
    )
    pyfunc = mlflow.pyfunc.load_model(info.model_uri)
    answer = pyfunc.predict(example.reset_index())
    pd.testing.assert_frame_equal(
        answer.reset_index(drop=True), expected.reset_index(drop=True), check_dtype=False
    )
