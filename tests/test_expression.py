"""Reading, validating and scaling expression matrices."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import anndata
import numpy as np
import pandas as pd
import pytest
from scipy import sparse

from nkpredict.data import expression as expression
from nkpredict.data.expression import (
    detect_scale,
    prepare_expression,
    read_expression,
    to_log_tpm,
    validate_matrix,
)
from nkpredict.exceptions import CoverageError, ExpressionFormatError, ScaleError

GENES = ["NCR3LG1", "HLA-E", "MICA", "B2M", "TAP1", "ENSG00000107738.3"]
SAMPLES = [f"patient_{i:02d}" for i in range(5)]


@pytest.fixture
def counts() -> pd.DataFrame:
    rng = np.random.default_rng(11)
    values = rng.poisson(400.0, size=(len(SAMPLES), len(GENES))).astype(float)
    frame = pd.DataFrame(values, index=pd.Index(SAMPLES, name="sample_id"), columns=GENES)
    return frame


def _write_h5ad(frame: pd.DataFrame, path: Path, sparse_x: bool) -> None:
    x = sparse.csr_matrix(frame.to_numpy()) if sparse_x else frame.to_numpy()
    obs = pd.DataFrame(index=frame.index.rename(None))
    anndata.AnnData(X=x, obs=obs, var=pd.DataFrame(index=list(frame.columns))).write_h5ad(path)


WRITERS: dict[str, tuple[str, Callable[[pd.DataFrame, Path], None]]] = {
    "csv_samples": ("m.csv", lambda f, p: f.to_csv(p)),
    "csv_genes_auto": ("m.csv", lambda f, p: f.T.to_csv(p)),
    "tsv": ("m.tsv", lambda f, p: f.to_csv(p, sep="\t")),
    "txt_gz_genes": ("m.txt.gz", lambda f, p: f.T.to_csv(p, sep="\t")),
    "parquet_index": ("m.parquet", lambda f, p: f.to_parquet(p)),
    "parquet_column": ("m.parquet", lambda f, p: f.reset_index().to_parquet(p, index=False)),
    "h5ad_dense": ("m.h5ad", lambda f, p: _write_h5ad(f, p, sparse_x=False)),
    "h5ad_sparse": ("m.h5ad", lambda f, p: _write_h5ad(f, p, sparse_x=True)),
}


@pytest.mark.parametrize("fmt", sorted(WRITERS))
def test_every_reader_round_trips(
    fmt: str, counts: pd.DataFrame, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(expression, "_CHUNK_CELLS", 2 * len(GENES))  # h5ad: 2 rows per chunk
    name, write = WRITERS[fmt]
    write(counts, tmp_path / name)
    frame = read_expression(tmp_path / name)
    pd.testing.assert_frame_equal(frame, counts)
    assert frame.index.name == "sample_id"


@pytest.mark.parametrize("fmt", ["csv_genes_auto", "h5ad_sparse"])
def test_gene_selection_matches_labels_and_harmonized_symbols(
    fmt: str, counts: pd.DataFrame, tmp_path: Path
) -> None:
    name, write = WRITERS[fmt]
    write(counts, tmp_path / name)
    frame = read_expression(tmp_path / name, genes=["HLA-E", "VSIR", "NOT_IN_FILE"])
    pd.testing.assert_frame_equal(frame, counts[["HLA-E", "ENSG00000107738.3"]])


def test_explicit_orientation_overrides_detection(counts: pd.DataFrame, tmp_path: Path) -> None:
    counts.T.to_csv(tmp_path / "m.csv")
    frame = read_expression(tmp_path / "m.csv", orientation="samples")
    assert list(frame.index) == GENES
    pd.testing.assert_frame_equal(read_expression(tmp_path / "m.csv", orientation="genes"), counts)


def test_reader_errors_name_the_path(counts: pd.DataFrame, tmp_path: Path) -> None:
    with pytest.raises(ExpressionFormatError, match=r"missing\.csv"):
        read_expression(tmp_path / "missing.csv")
    (tmp_path / "m.xlsx").write_bytes(b"PK")
    with pytest.raises(ExpressionFormatError, match=r"m\.xlsx.*unknown"):
        read_expression(tmp_path / "m.xlsx")
    (tmp_path / "bad.parquet").write_text("not parquet")
    with pytest.raises(ExpressionFormatError, match=r"bad\.parquet"):
        read_expression(tmp_path / "bad.parquet")
    (tmp_path / "bad.h5ad").write_text("not hdf5")
    with pytest.raises(ExpressionFormatError, match=r"bad\.h5ad"):
        read_expression(tmp_path / "bad.h5ad")
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(ExpressionFormatError, match=r"empty\.csv"):
        read_expression(tmp_path / "empty.csv")
    counts.to_csv(tmp_path / "m.csv")
    with pytest.raises(CoverageError, match=r"m\.csv"):
        read_expression(tmp_path / "m.csv", genes=["TP53"])


def test_reader_validates_cells(counts: pd.DataFrame, tmp_path: Path) -> None:
    table = counts.astype(object)
    table.loc["patient_03", "TAP1"] = "high"
    table.loc["patient_04", "NCR3LG1"] = "low"
    table.to_csv(tmp_path / "m.csv")
    with pytest.raises(ExpressionFormatError, match="'patient_03', gene 'TAP1'"):
        read_expression(tmp_path / "m.csv")


def test_validate_returns_float64_with_string_labels() -> None:
    frame = validate_matrix(pd.DataFrame({"TP53": [1, 2], 7157: ["3", None]}, index=[10, 11]))
    assert (frame.dtypes == np.float64).all()
    assert list(frame.index) == ["10", "11"] and list(frame.columns) == ["TP53", "7157"]
    assert np.isnan(frame.iloc[1, 1])


@pytest.mark.parametrize(
    ("matrix", "message"),
    [
        (pd.DataFrame(index=["s1"]), "empty"),
        (pd.DataFrame(columns=["TP53"], dtype=float), "empty"),
        (pd.DataFrame({"TP53": [1.0, 2.0], "B2M": [1.0, "high"]}, index=["s1", "s2"]), "'s2'.*B2M"),
        (pd.DataFrame({"TP53": [1.0, 2.0]}, index=["s1", "s1"]), "duplicated.*'s1'"),
        (pd.DataFrame({"TP53": [1.0, np.nan], "B2M": [1.0, np.nan]}, index=["s1", "s2"]), "'s2'"),
        (pd.DataFrame({"TP53": [1.0, 2.0], "B2M": [np.inf, 1.0]}, index=["s1", "s2"]), "'s1'.*B2M"),
    ],
)
def test_validate_errors_name_the_offender(matrix: pd.DataFrame, message: str) -> None:
    with pytest.raises(ExpressionFormatError, match=message):
        validate_matrix(matrix)


def test_duplicated_gene_columns_are_allowed() -> None:
    frame = validate_matrix(pd.DataFrame([[1, 2]], columns=["TP53", "TP53"], index=["s1"]))
    assert list(frame.columns) == ["TP53", "TP53"]


def test_detect_scale(counts: pd.DataFrame) -> None:
    assert detect_scale(counts) == "counts"
    assert detect_scale(counts / 3.0) == "tpm"
    assert detect_scale(np.log2(counts / 3.0 + 1)) == "log"
    assert detect_scale(np.log2(counts + 1) - 8.0) == "log"


def test_detect_scale_refuses_negative_linear_values(counts: pd.DataFrame) -> None:
    counts.loc["patient_02", "MICA"] = -4.0
    with pytest.raises(ScaleError, match="'patient_02', gene 'MICA'"):
        detect_scale(counts)


def test_small_integers_are_taken_as_log_with_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="nkpredict.data.expression"):
        assert detect_scale(pd.DataFrame([[0, 3], [12, 5]], columns=["TP53", "B2M"])) == "log"
    assert "scale='counts'" in caplog.text


def test_counts_become_log2_cpm(counts: pd.DataFrame) -> None:
    counts.iloc[1, 2] = np.nan
    log_matrix, scale = to_log_tpm(counts)
    values = counts.to_numpy()
    expected = np.log2(values / np.nansum(values, axis=1, keepdims=True) * 1e6 + 1)
    assert scale == "counts"
    np.testing.assert_allclose(log_matrix.to_numpy(), expected)
    assert np.isnan(log_matrix.iloc[1, 2])
    pd.testing.assert_index_equal(log_matrix.columns, counts.columns)


def test_tpm_and_log_conversions(counts: pd.DataFrame) -> None:
    tpm = counts / 3.0
    log_matrix, scale = to_log_tpm(tpm)
    assert scale == "tpm"
    np.testing.assert_allclose(log_matrix.to_numpy(), np.log2(tpm.to_numpy() + 1))
    unchanged, scale = to_log_tpm(log_matrix)
    assert scale == "log"
    pd.testing.assert_frame_equal(unchanged, log_matrix)


@pytest.mark.parametrize(
    ("scale", "row", "value", "message"),
    [
        ("counts", "patient_01", -1.0, "negative.*'patient_01', gene 'MICA'"),
        ("tpm", "patient_04", -0.5, "negative.*'patient_04', gene 'MICA'"),
        ("counts", "patient_02", 10.5, "non-integer.*'patient_02', gene 'MICA'"),
        ("log", "patient_03", 1000.0, "above 50.*'patient_03', gene 'MICA'"),
    ],
)
def test_scale_errors_name_the_cell(
    counts: pd.DataFrame, scale: str, row: str, value: float, message: str
) -> None:
    matrix = counts if scale != "log" else np.log2(counts + 1)
    matrix.loc[row, "MICA"] = value
    with pytest.raises(ScaleError, match=message):
        to_log_tpm(matrix, scale)  # type: ignore[arg-type]


def test_zero_library_size_is_refused(counts: pd.DataFrame) -> None:
    counts.loc["patient_04"] = 0.0
    with pytest.raises(ScaleError, match=r"zero library size.*'patient_04'"):
        to_log_tpm(counts, "counts")


def test_negative_log_values_are_kept_with_a_warning(
    counts: pd.DataFrame, caplog: pytest.LogCaptureFixture
) -> None:
    matrix = np.log2(counts + 1)
    matrix.loc["patient_00", "B2M"] = -2.5
    with caplog.at_level(logging.WARNING, logger="nkpredict.data.expression"):
        log_matrix, _ = to_log_tpm(matrix, "log")
    assert log_matrix.loc["patient_00", "B2M"] == -2.5
    assert "'patient_00', gene 'B2M'" in caplog.text


def test_prepare_expression_chains_validation_scale_and_harmonization(
    counts: pd.DataFrame,
) -> None:
    raw = counts.set_axis(["B7-H6", *GENES[1:]], axis=1)
    prepared = prepare_expression(raw)
    assert prepared.scale == "counts"
    assert list(prepared.matrix.columns) == ["NCR3LG1", "HLA-E", "MICA", "B2M", "TAP1", "VSIR"]
    expected, _ = to_log_tpm(counts)
    np.testing.assert_allclose(prepared.matrix.to_numpy(), expected.to_numpy())
    assert prepared.report.renamed == {"B7-H6": "NCR3LG1", "ENSG00000107738.3": "VSIR"}
