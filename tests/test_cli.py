"""The command line's own surface: version, option choices, defaults, ``python -m``."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from nkpredict import __version__
from nkpredict.settings import DEFAULT_MIN_COVERAGE
from nkpredict.vocabulary import EXPLAIN_METHODS, SCALE_CHOICES
from training.cli import app
from training.cli.options import one_of

runner = CliRunner()
REPO = Path(__file__).resolve().parents[1]


def test_version_option_prints_the_version() -> None:
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.output.strip() == f"nkpredict {__version__}"


def test_python_dash_m_runs_the_command_line() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "training.cli", "--version"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"nkpredict {__version__}"


@pytest.mark.parametrize(
    ("command", "option", "values"),
    [
        ("features", "--scale", SCALE_CHOICES),
        ("predict", "--scale", SCALE_CHOICES),
        ("explain", "--method", EXPLAIN_METHODS),
    ],
)
def test_a_bad_choice_is_one_usage_error_naming_the_values(
    command: str, option: str, values: tuple[str, ...], tmp_path: Path
) -> None:
    args = [command, "--expression", str(tmp_path / "x.csv")]
    if command != "features":
        args += ["--model", str(tmp_path / "model"), "--out", str(tmp_path / "out")]
    result = runner.invoke(app, [*args, option, "nonsense"], env={"COLUMNS": "200"})
    assert result.exit_code == 2
    assert one_of(values) in result.output


def test_train_label_choices_are_checked_before_any_work(tmp_path: Path) -> None:
    base = ["train", "--expression", str(tmp_path / "x"), "--labels", str(tmp_path / "y")]
    task = runner.invoke(app, [*base, "--task", "ranking"])
    assert task.exit_code == 2 and "classification or regression" in task.output
    side = runner.invoke(app, [*base, "--resistant-when", "sideways"])
    assert side.exit_code == 2 and "above or below" in side.output


def test_predict_min_coverage_default_is_the_shared_default() -> None:
    result = runner.invoke(app, ["predict", "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    assert f"[default: {DEFAULT_MIN_COVERAGE}]" in result.output


def test_a_missing_store_is_reported_not_created(tmp_path: Path) -> None:
    store = f"sqlite:///{tmp_path / 'none' / 'mlflow.db'}"
    result = runner.invoke(app, ["models", "--tracking-uri", store])
    assert result.exit_code == 1
    assert "does not exist" in result.output
    assert not (tmp_path / "none").exists()


# ---------------------------------------------------------------------------------------------
# First contact in a terminal
# ---------------------------------------------------------------------------------------------


def test_outputs_follow_the_umask(tmp_path: Path) -> None:
    import os

    import pandas as pd

    from nkpredict.io import write_table, write_text

    previous = os.umask(0o022)
    try:
        table = write_table(pd.DataFrame({"a": [1]}), tmp_path / "t.csv")
        text = write_text(tmp_path / "t.txt", "x")
        os.umask(0o027)
        private = write_text(tmp_path / "p.txt", "x")
    finally:
        os.umask(previous)
    assert table.stat().st_mode & 0o777 == 0o644
    assert text.stat().st_mode & 0o777 == 0o644
    assert private.stat().st_mode & 0o777 == 0o640


def test_a_saved_model_directory_follows_the_umask(service_model_dir: Path) -> None:
    assert service_model_dir.stat().st_mode & 0o077 != 0  # not the 0700 of mkdtemp


def test_quiet_silences_mlflow_warnings() -> None:
    import warnings

    from training.cli.output import configure_logging

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        configure_logging(True)
        warnings.warn_explicit("chatter", FutureWarning, "x.py", 1, module="mlflow.tracking")
        warnings.warn_explicit("ours", UserWarning, "y.py", 1, module="nkpredict.data")
    assert [str(w.message) for w in caught] == ["ours"]


def test_quiet_silences_what_mlflow_prints_straight_to_stderr(capsys) -> None:
    from mlflow.utils.logging_utils import eprint

    from training.cli.output import configure_logging

    try:
        configure_logging(True)
        eprint("Successfully registered model 'nk-resistance'.")
        assert capsys.readouterr().err == ""
    finally:
        configure_logging(False)
    eprint("Created version '2' of model 'nk-resistance'.")
    assert "Created version '2'" in capsys.readouterr().err


def test_models_names_the_store_it_read(tmp_path: Path) -> None:
    from nkpredict.settings import Settings
    from training import tracking

    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    tracking.setup_tracking(store, Settings())
    tracking.experiment_id("first-contact", Settings())  # the store exists once used
    result = runner.invoke(app, ["models", "--tracking-uri", store])
    assert result.exit_code == 0, result.output
    assert f"tracking store: {store}" in " ".join(result.output.split())


def test_mlflow_ui_command_is_runnable_from_anywhere() -> None:
    from training.cli.output import mlflow_ui_command

    command = mlflow_ui_command("sqlite:///mlruns/mlflow.db")
    assert command is not None
    executable, uri = command.split()[0], command.split()[-1]
    assert Path(executable).name == "mlflow"
    assert uri == f"sqlite:///{Path.cwd() / 'mlruns' / 'mlflow.db'}"
    assert mlflow_ui_command("http://127.0.0.1:5000") is None


def test_predict_counts_are_a_sentence() -> None:
    from training.cli.score import counts_sentence

    assert counts_sentence(12, {"sensitive": 9, "resistant": 3}) == (
        "12 samples scored: 9 sensitive, 3 resistant."
    )
    assert counts_sentence(1, {}) == "1 sample scored."


def test_serve_example_is_a_realistic_sample(service_model_dir: Path) -> None:
    import json

    from fastapi.testclient import TestClient

    from service.app import create_app
    from service.config import ServiceSettings
    from training.cli.serve import _curl_example

    text = _curl_example(str(service_model_dir), "127.0.0.1", 8765, None)
    assert "min_coverage" not in text
    body_path = Path(text.rsplit("@", 1)[1].strip())
    body = json.loads(body_path.read_text())
    settings = ServiceSettings(
        model_uri=str(service_model_dir), api_key=None, admin_api_key=None, cors_origins=[]
    )
    with TestClient(create_app(settings)) as client:
        response = client.post("/v1/predict", json=body)
    assert response.status_code == 200, response.text
    (prediction,) = response.json()["predictions"]
    assert prediction["coverage"] == 1.0
