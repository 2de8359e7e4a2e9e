"""Common mistakes in expression files are refused or set aside with a message, never scored:
in the library, on the command line (`nkpredict predict`) and over HTTP."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from nkpredict.data.expression import prepare_expression, read_expression
from nkpredict.exceptions import ExpressionFormatError, ScaleError
from nkpredict.simulate.cohort import Cohort
from service.app import create_app
from service.config import ServiceSettings
from training.cli import app

Writer = Callable[[pd.DataFrame, Path], None]


@pytest.fixture(scope="module")
def counts(service_cohort: Cohort) -> pd.DataFrame:
    return service_cohort.counts.iloc[:6]


@pytest.fixture(scope="module")
def client(service_model_dir: Path) -> Iterator[TestClient]:
    settings = ServiceSettings(
        model_uri=str(service_model_dir), api_key=None, admin_api_key=None, cors_origins=[]
    )
    with TestClient(create_app(settings)) as test_client:
        yield test_client


def _duplicated_gene(counts: pd.DataFrame) -> pd.DataFrame:
    frame = counts.copy()
    columns = list(frame.columns)
    columns[5] = "HLA-E"  # HLA-E is in the catalogue part of the columns already
    frame.columns = columns
    return frame


def _genes_as_rows_duplicated_sample(counts: pd.DataFrame) -> pd.DataFrame:
    frame = counts.T.copy()
    frame.columns = [*frame.columns[:-1], frame.columns[0]]  # SIM-00001 twice
    return frame


def _z_scored(counts: pd.DataFrame) -> pd.DataFrame:
    logged = np.log2(counts + 1.0)
    return logged.sub(logged.mean(axis=1), axis=0).div(logged.std(axis=1), axis=0)


def _negative(counts: pd.DataFrame) -> pd.DataFrame:
    frame = counts.astype(float)
    frame.loc[frame.index[2], "MICA"] = -3.0
    return frame


CASES: dict[str, tuple[str, Callable[[pd.DataFrame], pd.DataFrame], str, bool]] = {
    # name: (file name, mistake, message, genes as rows)
    "duplicate gene csv": ("m.csv", _duplicated_gene, "gene 'HLA-E' appears more than once", False),
    "duplicate gene tsv": ("m.tsv", _duplicated_gene, "gene 'HLA-E' appears more than once", False),
    "duplicate sample, genes as rows": (
        "m.csv",
        _genes_as_rows_duplicated_sample,
        "duplicated sample IDs: 'SIM-00001'",
        True,
    ),
    "z-scores": ("m.csv", _z_scored, "standardised or centred", False),
    "negative count": ("m.csv", _negative, "gene 'MICA'", False),
}


def _write(frame: pd.DataFrame, path: Path, genes_as_rows: bool) -> Path:
    sep = "\t" if path.suffix == ".tsv" else ","
    frame.to_csv(path, sep=sep, index_label="gene" if genes_as_rows else "sample_id")
    return path


@pytest.mark.parametrize("case", sorted(CASES))
def test_mistakes_are_refused_in_the_library(
    counts: pd.DataFrame, tmp_path: Path, case: str
) -> None:
    name, mistake, message, rows = CASES[case]
    path = _write(mistake(counts), tmp_path / name, rows)
    with pytest.raises((ExpressionFormatError, ScaleError), match=message):
        prepare_expression(read_expression(path))


@pytest.mark.parametrize("case", sorted(CASES))
def test_mistakes_are_refused_on_the_command_line(
    counts: pd.DataFrame, service_model_dir: Path, tmp_path: Path, case: str
) -> None:
    name, mistake, message, rows = CASES[case]
    path = _write(mistake(counts), tmp_path / name, rows)
    out = tmp_path / "p.csv"
    args = ["predict", "--model", str(service_model_dir), "--expression", str(path)]
    result = CliRunner().invoke(app, [*args, "--out", str(out), "--min-coverage", "0"])
    assert result.exit_code == 1, result.output
    assert message in " ".join(result.output.split())
    assert not out.exists()


@pytest.mark.parametrize("case", sorted(CASES))
def test_mistakes_are_refused_over_http(
    counts: pd.DataFrame, client: TestClient, tmp_path: Path, case: str
) -> None:
    name, mistake, message, rows = CASES[case]
    path = _write(mistake(counts), tmp_path / name, rows)
    response = client.post(
        "/v1/predict/file",
        files={"file": (name, path.read_bytes())},
        data={"min_coverage": "0"},
    )
    assert response.status_code == 422, response.text
    assert message in response.json()["error"]["message"]


def test_duplicate_gene_in_parquet_and_json(
    counts: pd.DataFrame, client: TestClient, tmp_path: Path
) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    frame = _duplicated_gene(counts).astype(float)
    keep = [j for j, g in enumerate(frame.columns) if j < 10 or g == "HLA-E"]
    arrays = [pa.array(list(frame.index)), *(pa.array(frame.iloc[:, j]) for j in keep)]
    path = tmp_path / "m.parquet"
    names = ["sample_id", *(frame.columns[j] for j in keep)]
    pq.write_table(pa.table(arrays, names=names), path)
    with pytest.raises(ExpressionFormatError, match="gene 'HLA-E' appears more than once"):
        read_expression(path)
    response = client.post("/v1/predict/file", files={"file": ("m.parquet", path.read_bytes())})
    assert response.status_code == 422
    assert "gene 'HLA-E' appears more than once" in response.json()["error"]["message"]
    body = b'{"samples": {"S1": {"HLA-E": 5.0, "MICA": 3.0, "HLA-E": 9.0}}, "scale": "log"}'
    response = client.post("/v1/predict", content=body)
    assert response.status_code == 422
    assert "gene 'HLA-E' appears more than once" in response.json()["error"]["message"]


def test_annotation_columns_are_set_aside(
    counts: pd.DataFrame, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    table = counts.T.copy()
    annotation = pd.DataFrame(
        {
            "Chr": "chr1",
            "Start": 1000,
            "End": 5000,
            "Strand": "+",
            "Length": np.arange(len(table)) * 10 + 500,
        },
        index=table.index,
    )
    path = tmp_path / "featurecounts.tsv"
    pd.concat([annotation, table], axis=1).to_csv(path, sep="\t", index_label="Geneid")
    with caplog.at_level("WARNING"):
        read = read_expression(path)
    assert list(read.index) == list(counts.index)  # Length is not a sample
    assert "set aside annotation column(s) 'Chr', 'Start', 'End', 'Strand', 'Length'" in caplog.text


def test_semicolons_and_decimal_commas_are_named(counts: pd.DataFrame, tmp_path: Path) -> None:
    semicolons = tmp_path / "m.csv"
    counts.to_csv(semicolons, sep=";")
    with pytest.raises(ExpressionFormatError, match="semicolon-separated"):
        read_expression(semicolons)
    commas = tmp_path / "m.tsv"
    (counts / 7).to_csv(commas, sep="\t", decimal=",")
    with pytest.raises(ExpressionFormatError, match="decimal commas"):
        read_expression(commas)
