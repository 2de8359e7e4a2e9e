"""Single-cell atlases: scores into obs, pseudobulk and resistant fraction per group.

A small bulk model is trained on a simulated cohort in which B7-H6 (NCR3LG1) loss is common
and strong (so the model has learned it); cells of two sensitive lines are simulated, one of
them with a B7-H6-loss subclone in 30 % of its cells.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import anndata
import h5py
import numpy as np
import pandas as pd
import pytest
from scipy import sparse
from typer.testing import CliRunner

from nkpredict.exceptions import InputError
from nkpredict.model.fitted import NKResistanceModel
from nkpredict.simulate.biology import DEFAULT_MECHANISMS
from nkpredict.simulate.cohort import Cohort, simulate_cohort
from nkpredict.simulate.singlecell import PARENTAL, Subclone, simulate_single_cell
from nkpredict.stream.cells import CALLS, CELL_COLUMNS
from nkpredict.stream.groups import GROUP_STATS, groups_path, read_grouping
from nkpredict.stream.run import predict_file
from training.cli import app

runner = CliRunner()
CELLS = 150
CLONE = "subclone-B7H6_LOSS"


@pytest.fixture(scope="module")
def bulk() -> Cohort:
    """120 lines x 300 genes; B7-H6 loss three times as frequent and with weight 4."""
    mechanisms = tuple(
        replace(m, frequency=3.0, weight=4.0) if m.name == "B7H6_LOSS" else m
        for m in DEFAULT_MECHANISMS
    )
    return simulate_cohort(n_samples=120, n_genes=300, seed=1, mechanisms=mechanisms)


@pytest.fixture(scope="module")
def model(bulk: Cohort) -> NKResistanceModel:
    return NKResistanceModel(booster={"n_estimators": 30, "n_jobs": 1}).fit(
        bulk.counts, bulk.labels["resistant"]
    )


@pytest.fixture(scope="module")
def lines(bulk: Cohort, model: NKResistanceModel) -> tuple[str, str]:
    """Two lines without planted mechanisms that the model calls sensitive; the first is
    the one whose profile, with NCR3LG1 removed, the model calls most resistant."""
    plain = bulk.counts.loc[bulk.metadata["mechanisms"] == "none"].astype(float)
    probability = model.predict_table(model.prepare(plain)).set_index("sample_id")["probability"]
    without = plain.assign(NCR3LG1=0.0)
    lost = model.predict_table(model.prepare(without)).set_index("sample_id")["probability"]
    sensitive = probability.index[probability < 0.2]
    carrier = str(lost[sensitive].idxmax())
    other = str(probability.drop(carrier).idxmin())
    return carrier, other


@pytest.fixture(scope="module")
def atlas(bulk: Cohort, lines: tuple[str, str], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The cells as a scanpy user holds them: extra obs/var fields, obsm, layers and uns."""
    cells = simulate_single_cell(
        bulk, samples=list(lines), cells_per_sample=CELLS, subclones=(Subclone(lines[0]),), seed=2
    )
    adata = cells.to_anndata()
    rng = np.random.default_rng(0)
    adata.obs["leiden"] = pd.Categorical(rng.integers(0, 3, adata.n_obs).astype(str))
    adata.obs["nk_call"] = "stale"  # replaced, not duplicated
    adata.var["highly_variable"] = rng.random(adata.n_vars) < 0.2
    adata.obsm["X_umap"] = rng.standard_normal((adata.n_obs, 2))
    adata.layers["raw"] = adata.X.copy()
    adata.uns["leiden"] = {"params": {"resolution": 1.0}}
    path = tmp_path_factory.mktemp("atlas") / "atlas.h5ad"
    adata.write_h5ad(path)
    return path


@pytest.fixture(scope="module")
def model_dir(model: NKResistanceModel, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return model.save(tmp_path_factory.mktemp("sc-model") / "model")


def invoke(*args: str) -> str:
    result = runner.invoke(app, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def test_simulated_subclone_carries_its_loss(bulk: Cohort, lines: tuple[str, str]) -> None:
    cells = simulate_single_cell(
        bulk, samples=list(lines), cells_per_sample=200, subclones=(Subclone(lines[0]),), seed=5
    )
    obs = cells.obs
    assert cells.counts.shape == (400, bulk.counts.shape[1]) and sparse.isspmatrix_csr(cells.counts)
    assert obs["sample"].dtype == "category" and obs["cluster"].dtype == "category"
    assert obs.loc[obs["sample"] == lines[0], "subclone"].mean() == pytest.approx(0.3)
    assert not obs.loc[obs["sample"] == lines[1], "subclone"].any()
    assert set(obs["cluster"]) == {PARENTAL, CLONE}
    column = list(cells.var.index).index("NCR3LG1")
    b7h6 = np.asarray(cells.counts[:, column].toarray()).ravel() / obs["library_size"].to_numpy()
    mine = (obs["sample"] == lines[0]).to_numpy()
    clone, parental = obs["subclone"].to_numpy(), mine & ~obs["subclone"].to_numpy()
    assert b7h6[clone].mean() < 0.05 * b7h6[parental].mean()  # 2**-8 of the line's level
    assert cells.truth["subclones"][0]["mechanism"] == "B7H6_LOSS"
    with pytest.raises(InputError, match="unknown mechanism"):
        simulate_single_cell(bulk, samples=[lines[0]], subclones=(Subclone(lines[0], "NOPE"),))
    with pytest.raises(InputError, match="two subclones"):
        simulate_single_cell(
            bulk, samples=[lines[0]], subclones=(Subclone(lines[0]), Subclone(lines[0]))
        )


def test_scored_h5ad_keeps_every_field_and_adds_the_cell_columns(
    atlas: Path, model_dir: Path, model: NKResistanceModel, tmp_path: Path
) -> None:
    out = tmp_path / "scored.h5ad"
    invoke("predict", "--model", str(model_dir), "--expression", str(atlas), "--out", str(out),
           "--chunk-size", "70", "--quiet")  # fmt: skip
    before, after = anndata.read_h5ad(atlas), anndata.read_h5ad(out)
    assert (after.X != before.X).nnz == 0 and after.X.dtype == before.X.dtype
    pd.testing.assert_frame_equal(after.var, before.var)
    np.testing.assert_array_equal(after.obsm["X_umap"], before.obsm["X_umap"])
    assert (after.layers["raw"] != before.layers["raw"]).nnz == 0
    assert after.uns["leiden"]["params"]["resolution"] == 1.0
    assert after.uns["simulation"] == before.uns["simulation"]
    kept = [c for c in before.obs.columns if c != "nk_call"]
    pd.testing.assert_frame_equal(after.obs[kept], before.obs[kept])
    assert list(after.obs.columns) == [*kept, *CELL_COLUMNS]
    # the cell columns: the in-memory scores of the same cells
    dense = pd.DataFrame(before.X.toarray(), index=before.obs_names, columns=before.var_names)
    expected = model.predict_table(model.prepare(dense))
    obs = after.obs
    np.testing.assert_allclose(obs["nk_resistance_probability"], expected["probability"], atol=1e-6)
    assert obs["nk_call"].dtype == "category" and list(obs["nk_call"].cat.categories) == list(CALLS)
    assert obs["nk_call"].astype(str).tolist() == expected["call"].tolist()
    genes = model.feature_builder.model_genes_
    detected = (dense.reindex(columns=genes) > 0).sum(axis=1) / len(genes)
    np.testing.assert_allclose(obs["nk_coverage"], detected)
    # a few thousand UMIs detect well under 90 % of the catalogue: every cell is flagged
    assert obs["nk_out_of_domain"].dtype == bool and obs["nk_out_of_domain"].all()
    assert obs["nk_domain_reasons"].str.contains("low_coverage").all()
    uns = after.uns["nkpredict"]
    assert uns["model_uri"] == str(model_dir) and uns["scale"] == "counts"
    assert uns["catalog_version"] == model.feature_builder.catalog_version_
    assert "detected" in uns["scale_decision"]
    assert list(uns["columns"]) == list(CELL_COLUMNS)


def test_b7h6_subclone_is_a_resistant_fraction_of_a_sensitive_sample(
    atlas: Path, model_dir: Path, lines: tuple[str, str], tmp_path: Path
) -> None:
    out = tmp_path / "cells.obs.parquet"
    base = ["predict", "--model", str(model_dir), "--expression", str(atlas), "--quiet"]
    invoke(*base, "--out", str(out), "--group-by", "sample")
    by_sample = pd.read_csv(groups_path(out)).set_index("sample")
    assert groups_path(out).name == "cells.groups.csv"
    assert list(by_sample.columns) == list(GROUP_STATS)
    assert by_sample["n_cells"].tolist() == [CELLS, CELLS]
    # both samples are sensitive as bulk (the subclone is diluted in its sample)
    assert (by_sample["pseudobulk_call"] == "sensitive").all()
    invoke(*base, "--out", str(tmp_path / "clusters.csv"), "--group-by", "sample",
           "--group-by", "cluster")  # fmt: skip
    groups = pd.read_csv(tmp_path / "clusters.groups.csv").set_index(["sample", "cluster"])
    clone, parental = groups.loc[(lines[0], CLONE)], groups.loc[(lines[0], PARENTAL)]
    assert (
        clone["n_cells"] == round(0.3 * CELLS) and parental["n_cells"] == CELLS - clone["n_cells"]
    )
    assert clone["pseudobulk_call"] == "resistant" and clone["pseudobulk_probability"] > 0.6
    assert parental["pseudobulk_call"] == "sensitive"
    assert groups.loc[(lines[1], PARENTAL), "pseudobulk_call"] == "sensitive"
    assert not groups["pseudobulk_out_of_domain"].any()  # pseudobulk is in the model's domain
    top = clone["top_axes"].split("; ")[0]
    assert top.startswith("NKp30 / B7-H6") and top.endswith("toward resistant")
    # the resistant fraction and its Wilson interval
    k, n = groups["n_resistant"].to_numpy(), groups["n_cells"].to_numpy()
    p, z = k / n, 1.959963984540054
    centre = (p + z**2 / (2 * n)) / (1 + z**2 / n)
    half = z * np.sqrt(p * (1 - p) / n + z**2 / (4 * n**2)) / (1 + z**2 / n)
    np.testing.assert_allclose(groups["fraction_resistant"], p)
    np.testing.assert_allclose(groups["fraction_resistant_low"], centre - half, atol=1e-9)
    np.testing.assert_allclose(groups["fraction_resistant_high"], centre + half, atol=1e-9)
    cells = pd.read_parquet(out)
    assert cells["cell_id"].tolist() == anndata.read_h5ad(atlas, backed="r").obs_names.tolist()
    assert by_sample["n_resistant"].sum() == (cells["nk_call"] == "resistant").sum()


def test_explain_groups_explain_the_pseudobulk(
    atlas: Path, model_dir: Path, lines: tuple[str, str], tmp_path: Path
) -> None:
    out = tmp_path / "explained"
    invoke("explain", "--model", str(model_dir), "--expression", str(atlas), "--out", str(out),
           "--group-by", "cluster", "--quiet")  # fmt: skip
    groups = pd.read_csv(out / "groups.csv").set_index("cluster")
    assert groups.loc[CLONE, "pseudobulk_call"] == "resistant"
    assert groups.loc[CLONE, "top_axes"].startswith("NKp30 / B7-H6")
    assert len(pd.read_csv(out / "axes.csv")) == 2 * CELLS


def test_grouping_and_h5ad_output_refuse_what_they_cannot_do(
    atlas: Path, bulk: Cohort, model: NKResistanceModel, tmp_path: Path
) -> None:
    with pytest.raises(InputError, match="obs has no column 'patient'"):
        read_grouping(atlas, ["patient"])
    table = tmp_path / "bulk.csv"
    bulk.counts.iloc[:5].to_csv(table)
    with pytest.raises(InputError, match=r"only \.h5ad inputs"):
        predict_file(model, table, tmp_path / "p.csv", group_by=["sample"])
    with pytest.raises(InputError, match=r"obs\.parquet"):
        predict_file(model, table, tmp_path / "p.h5ad")
    grouping = read_grouping(atlas, ["sample", "cluster"])
    assert grouping.n_groups == 3 and grouping.codes.shape == (2 * CELLS,)
    with h5py.File(atlas, "r") as handle:  # only obs columns were read, X stays on disk
        assert "X" in handle


@pytest.mark.integration  # starts a Dask cluster
def test_groups_on_dask_equal_local(atlas: Path, model_dir: Path, tmp_path: Path) -> None:
    distributed = pytest.importorskip("distributed")
    common = ["--model", str(model_dir), "--expression", str(atlas), "--chunk-size", "100",
              "--group-by", "sample", "--group-by", "cluster", "--quiet"]  # fmt: skip
    invoke("predict", *common, "--out", str(tmp_path / "local.h5ad"))
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0"
    ) as cluster:
        invoke("predict", *common, "--out", str(tmp_path / "dask.h5ad"), "--engine", "dask",
               "--scheduler", cluster.scheduler_address)  # fmt: skip
    local, remote = (anndata.read_h5ad(tmp_path / f"{e}.h5ad") for e in ("local", "dask"))
    pd.testing.assert_frame_equal(remote.obs, local.obs)
    pd.testing.assert_frame_equal(
        pd.read_csv(tmp_path / "dask.groups.csv"), pd.read_csv(tmp_path / "local.groups.csv")
    )
