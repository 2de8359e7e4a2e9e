"""Streaming scoring (nkpredict.stream): bounded chunks, one scale, same output as in memory."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import anndata
import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from scipy import sparse

from nkpredict.data.expression import detect_scale, read_expression
from nkpredict.exceptions import ScaleError
from nkpredict.explain.attributions import explain, write_explanations
from nkpredict.model.fitted import NKResistanceModel
from nkpredict.simulate.cohort import simulate_cohort
from nkpredict.simulate.config import SimulationConfig
from nkpredict.stream import blocks, run
from nkpredict.stream.blocks import DenseBlock, SparseBlock
from nkpredict.stream.plan import plan_scoring
from nkpredict.stream.run import explain_file, predict_file
from nkpredict.stream.sources import FrameSource, H5adSource, ParquetSource, open_source

N_CELLS = 20_000
N_GENES = 2_000
LOW_COUNT_CELLS = 1_500
CHUNK = 3_000


@pytest.fixture(scope="module")
def cohort_counts() -> tuple[pd.DataFrame, pd.Series]:
    """A simulated bulk cohort (200 samples x 2,000 genes, raw counts) and its labels."""
    cohort = simulate_cohort(SimulationConfig(n_samples=200, n_genes=N_GENES, seed=3))
    return cohort.counts, cohort.labels["resistant"]


@pytest.fixture(scope="module")
def model(cohort_counts: tuple[pd.DataFrame, pd.Series]) -> NKResistanceModel:
    counts, labels = cohort_counts
    return NKResistanceModel(booster={"n_estimators": 30, "n_jobs": 1}).fit(counts, labels)


def single_cells(counts: pd.DataFrame, n_cells: int, seed: int = 0) -> sparse.csr_matrix:
    """Sparse UMI-like counts: each cell samples a bulk profile at ~3,000 UMIs.

    The last LOW_COUNT_CELLS cells get 60 UMIs: every value of theirs is <= 50, so on their
    own they look like log values.
    """
    rng = np.random.default_rng(seed)
    profiles = counts.to_numpy() / counts.to_numpy().sum(axis=1, keepdims=True)
    depth = rng.lognormal(np.log(3000), 0.5, n_cells)
    depth[-LOW_COUNT_CELLS:] = 60
    means = profiles[rng.integers(0, len(profiles), n_cells)] * depth[:, None]
    values = rng.poisson(means).astype(np.float32)
    values[values.sum(axis=1) == 0, 0] = 1  # no empty cells
    return sparse.csr_matrix(values)


@pytest.fixture(scope="module")
def cells_h5ad(
    cohort_counts: tuple[pd.DataFrame, pd.Series], tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """20,000 cells x 2,000 genes, sparse CSR, in an .h5ad file."""
    counts, _ = cohort_counts
    adata = anndata.AnnData(
        X=single_cells(counts, N_CELLS),
        obs=pd.DataFrame(index=[f"cell-{i}" for i in range(N_CELLS)]),
        var=pd.DataFrame(index=list(counts.columns)),
    )
    path = tmp_path_factory.mktemp("cells") / "cells.h5ad"
    adata.write_h5ad(path)
    return path


@pytest.fixture(scope="module")
def in_memory_predictions(model: NKResistanceModel, cells_h5ad: Path) -> pd.DataFrame:
    """What scoring the whole matrix at once gives (densifies every gene)."""
    return model.predict_table(model.prepare(read_expression(cells_h5ad)))


def test_reader_never_yields_more_than_chunk_size(cells_h5ad: Path) -> None:
    source = open_source(cells_h5ad)
    assert isinstance(source, H5adSource) and source.is_sparse
    sizes, ids = [], []
    for span in source.spans(CHUNK):
        for block in source.read(span, CHUNK):
            assert isinstance(block, SparseBlock)  # never densified whole
            assert block.values.shape[1] == N_GENES
            sizes.append(len(block))
            ids += block.sample_ids
    assert max(sizes) <= CHUNK and sum(sizes) == N_CELLS
    assert ids == [f"cell-{i}" for i in range(N_CELLS)]


def test_sparse_h5ad_scores_like_in_memory(
    model: NKResistanceModel, cells_h5ad: Path, in_memory_predictions: pd.DataFrame, tmp_path: Path
) -> None:
    seen: list[tuple[int, int]] = []
    out = tmp_path / "predictions.parquet"
    result = predict_file(
        model, cells_h5ad, out, chunk_size=CHUNK, progress=lambda *done: seen.append(done)
    )
    written = pd.read_parquet(out)
    pd.testing.assert_frame_equal(written, in_memory_predictions, check_exact=False, atol=1e-6)
    assert result.n_rows == N_CELLS and result.scale == "counts"
    assert result.calls == written["call"].value_counts().to_dict()
    n_chunks = -(-N_CELLS // CHUNK)
    assert pq.ParquetFile(out).metadata.num_row_groups == n_chunks  # written chunk by chunk
    assert [d for d, _ in seen] == sorted({d for d, _ in seen}) and seen[-1] == (N_CELLS,) * 2
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_scale_is_fixed_once_for_all_chunks(model: NKResistanceModel, cells_h5ad: Path) -> None:
    source = open_source(cells_h5ad)
    plan = plan_scoring(model, source, "auto", CHUNK)
    last = list(source.read(plan.spans[-1], CHUNK))[-1]
    low = last.values[-LOW_COUNT_CELLS:]
    assert low.max() <= 50  # alone, these cells would be taken as log values ...
    assert detect_scale(pd.DataFrame(low.toarray())) == "log"
    assert plan.scale == "counts"  # ... but the scale is decided once, on the first chunk


def test_scale_summary_decides_like_the_whole_block() -> None:
    rng = np.random.default_rng(1)
    cases = {
        "counts": rng.poisson(60, (30, 40)).astype(float),
        "tpm": rng.gamma(0.5, 40, (30, 40)),
        "log": rng.normal(3, 2, (30, 40)),
    }
    cases["counts"][rng.random((30, 40)) < 0.7] = 0
    for expected, values in cases.items():
        ids = [f"s{i}" for i in range(len(values))]
        whole = detect_scale(pd.DataFrame(values, index=ids))
        assert whole == expected
        for block in (
            SparseBlock(ids, sparse.csr_matrix(values)),
            DenseBlock(ids, values),
        ):
            assert detect_scale(block.scale_summary()) == expected
    broken = cases["counts"].copy()
    broken[4, 7] = -3
    with pytest.raises(ScaleError, match="s4"):
        detect_scale(SparseBlock(ids, sparse.csr_matrix(broken)).scale_summary())


def write_dataset(frame: pd.DataFrame, directory: Path, n_files: int, row_group: int) -> Path:
    directory.mkdir()
    for i, part in enumerate(np.array_split(np.arange(len(frame)), n_files)):
        frame.iloc[part].to_parquet(directory / f"part-{i:02d}.parquet", row_group_size=row_group)
    return directory


@pytest.mark.integration  # a 10,000-row Parquet dataset scored twice
@pytest.mark.parametrize("scale", ["counts", "log"])
def test_parquet_dataset_scores_like_in_memory(
    model: NKResistanceModel,
    cohort_counts: tuple[pd.DataFrame, pd.Series],
    tmp_path: Path,
    scale: str,
) -> None:
    counts, _ = cohort_counts
    frame = (
        counts
        if scale == "counts"
        else np.log2(counts / counts.sum(axis=1).values[:, None] * 1e6 + 1)
    )
    dataset = write_dataset(frame, tmp_path / "dataset", n_files=3, row_group=25)
    source = open_source(dataset)
    assert isinstance(source, ParquetSource) and len(source.files) == 3
    plan = plan_scoring(model, source, "auto", chunk_size=10)
    assert plan.scale == scale and len(plan.spans) == 9  # row groups of 25, 25, 17 per file
    project = None if plan.reads_all_columns else plan.positions
    blocks = [b for span in plan.spans for b in source.read(span, 10, project)]
    assert max(len(b) for b in blocks) <= 10
    width = N_GENES if scale == "counts" else plan.positions.size  # log: model columns only
    assert {b.values.shape[1] for b in blocks} == {width}
    out = tmp_path / "scores.csv"
    predict_file(model, dataset, out, chunk_size=10)
    expected = model.predict_table(model.prepare(frame))
    written = pd.read_csv(out, dtype={"sample_id": str}, keep_default_na=False)
    pd.testing.assert_frame_equal(written, expected, check_dtype=False, atol=1e-6)


def test_dense_blocks_are_capped_by_values(
    model: NKResistanceModel,
    cohort_counts: tuple[pd.DataFrame, pd.Series],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    counts, _ = cohort_counts
    monkeypatch.setattr(blocks, "MAX_CHUNK_VALUES", 20 * N_GENES)
    path = tmp_path / "counts.parquet"
    counts.to_parquet(path)
    source = open_source(path)
    spans = source.spans(100)
    assert {len(b) for s in spans for b in source.read(s, 100)} == {20}
    out = tmp_path / "scores.parquet"
    predict_file(model, path, out, chunk_size=100)
    expected = model.predict_table(model.prepare(counts))
    pd.testing.assert_frame_equal(pd.read_parquet(out), expected, check_exact=False, atol=1e-6)


def test_failure_midway_leaves_no_output(
    model: NKResistanceModel, cohort_counts: tuple[pd.DataFrame, pd.Series], tmp_path: Path
) -> None:
    counts, _ = cohort_counts
    broken = counts.copy()
    broken.iloc[150, 0] = -1  # in a late row group
    path = tmp_path / "broken.parquet"
    broken.to_parquet(path, row_group_size=50)
    out = tmp_path / "out" / "scores.parquet"
    with pytest.raises(ScaleError, match=str(broken.index[150])):
        predict_file(model, path, out, scale="counts", chunk_size=50)
    assert not out.exists() and not list(out.parent.iterdir())


def test_explain_streams_like_in_memory(
    model: NKResistanceModel,
    cohort_counts: tuple[pd.DataFrame, pd.Series],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    counts, _ = cohort_counts
    path = tmp_path / "counts.csv"
    counts.to_csv(path)
    expected_dir, streamed_dir = tmp_path / "expected", tmp_path / "streamed"
    write_explanations(explain(model, model.prepare(counts)), expected_dir)
    result = explain_file(model, path, streamed_dir, chunk_size=64)
    assert result.n_rows == len(counts)
    for stem in ("features", "genes", "axes", "pathways"):
        expected = pd.read_csv(expected_dir / f"{stem}.csv")
        written = pd.read_csv(streamed_dir / f"{stem}.csv")
        pd.testing.assert_frame_equal(written, expected, check_exact=False, atol=1e-9)
    expected_summary = json.loads((expected_dir / "global.json").read_text())
    summary = json.loads((streamed_dir / "global.json").read_text())
    for level, units in expected_summary["levels"].items():
        got = summary["levels"][level]
        assert [u["unit"] for u in got] == [u["unit"] for u in units]
        assert [u["direction"] for u in got] == [u["direction"] for u in units]
        for key in ("mean_abs_shap", "mean_shap"):
            assert [u[key] for u in got] == pytest.approx([u[key] for u in units], abs=1e-12)
    assert summary["n_samples"] == summary["n_samples_summarised"] == len(counts)
    # Above GLOBAL_SAMPLE samples the cohort summary uses every k-th sample.
    monkeypatch.setattr(run, "GLOBAL_SAMPLE", 50)
    sampled = explain_file(model, path, tmp_path / "sampled", chunk_size=64)
    assert sampled.summary["n_samples"] == len(counts)
    assert sampled.summary["n_samples_summarised"] == 50  # every 4th of 200


def test_csc_h5ad_is_read_whole_with_a_warning(
    model: NKResistanceModel,
    cohort_counts: tuple[pd.DataFrame, pd.Series],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="nkpredict.stream.sources")
    counts, _ = cohort_counts
    path = tmp_path / "csc.h5ad"
    anndata.AnnData(X=sparse.csc_matrix(counts.to_numpy()), obs=pd.DataFrame(index=counts.index),
                    var=pd.DataFrame(index=counts.columns)).write_h5ad(path)  # fmt: skip
    source = open_source(path)
    assert isinstance(source, FrameSource) and "CSC" in caplog.text
    out = tmp_path / "scores.tsv"
    predict_file(model, path, out, chunk_size=70)
    written = pd.read_csv(out, sep="\t", dtype={"sample_id": str}, keep_default_na=False)
    expected = model.predict_table(model.prepare(counts))
    pd.testing.assert_frame_equal(written, expected, check_dtype=False, atol=1e-6)
