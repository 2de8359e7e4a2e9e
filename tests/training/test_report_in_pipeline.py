"""The training run's report: it names the registered version and draws out-of-fold curves, and
a report that fails leaves no registered version behind."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from mlflow import MlflowClient
from typer.testing import CliRunner

from nkpredict.exceptions import InputError
from nkpredict.simulate.cohort import simulate_cohort
from nkpredict.simulate.config import SimulationConfig
from nkpredict.simulate.files import write_cohort
from training import pipeline
from training.cli import app

pytestmark = pytest.mark.integration  # trains whole pipelines against a real MLflow store

runner = CliRunner()


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    cohort = simulate_cohort(SimulationConfig(n_samples=120, n_genes=200, seed=11))
    return write_cohort(cohort, tmp_path_factory.mktemp("cohort"))


def train(files: dict[str, Path], root: Path, name: str, *extra: str) -> tuple[int, str, str]:
    os.environ["NKP_ARTIFACT_ROOT"] = str(root / "artifacts")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    args = [
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
        "2",
        "--cv-repeats",
        "1",
        "--n-jobs",
        "1",
        "--no-baselines",
        "--model-name",
        name,
        "--quiet",
        *extra,
    ]
    result = runner.invoke(app, args)
    return result.exit_code, result.output, uri


def test_training_report_names_the_registered_version(
    files: dict[str, Path], tmp_path: Path
) -> None:
    report = tmp_path / "report.html"
    code, output, uri = train(files, tmp_path, "versioned", "--report-out", str(report))
    assert code == 0, output
    versions = MlflowClient(uri, uri).search_model_versions("name = 'versioned'")
    assert [str(v.version) for v in versions] == ["1"]  # the demo's case: was "n/a"
    html = report.read_text(encoding="utf-8")
    assert re.search(r"<th>model version</th><td>1</td>", html)
    assert "for versioned version 1" in html
    curves = re.search(r'<section id="calibration">(.*?)</section>', html, re.DOTALL)
    assert curves and "out of fold" in curves.group(1) and "not out of fold" not in curves.group(1)


def test_a_failing_report_leaves_no_version(
    files: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: object, **kwargs: object) -> str:
        raise InputError("the report could not be built")

    monkeypatch.setattr(pipeline, "build_report", broken)
    code, _, uri = train(files, tmp_path, "unreported")
    assert code != 0
    assert MlflowClient(uri, uri).search_model_versions("name = 'unreported'") == []
