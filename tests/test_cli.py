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
