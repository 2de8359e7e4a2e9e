"""The cohort simulator: reproducibility, layout, planted biology, oracle and files."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.stats import spearmanr
from sklearn.metrics import roc_auc_score

from nkpredict.catalog import load_catalog
from nkpredict.data.public import killing_auc, read_labels, read_nk_prism
from nkpredict.exceptions import InputError
from nkpredict.simulate.biology import GENOME_CATALOG_VERSION
from nkpredict.simulate.cohort import Cohort, simulate_cohort
from nkpredict.simulate.config import SimulationConfig
from nkpredict.simulate.files import write_cohort

N_SAMPLES = 500
N_GENES = 400
RATIOS = (0.5, 1.0, 2.0, 4.0)
VIABILITY = [f"viability_et_{r:g}" for r in RATIOS]


@pytest.fixture(scope="module")
def cohort() -> Cohort:
    return simulate_cohort(n_samples=N_SAMPLES, n_genes=N_GENES, seed=11)


def _log2_tpm(cohort: Cohort, gene: str) -> pd.Series:
    return np.log2(cohort.tpm[gene].astype(float) + 1.0)


def _carries(cohort: Cohort, mechanism: str) -> pd.Series:
    return cohort.metadata["mechanisms"].str.split(";").apply(lambda names: mechanism in names)


# ---------------------------------------------------------------------------------------------
# Reproducibility
# ---------------------------------------------------------------------------------------------


def test_same_seed_same_cohort() -> None:
    first = simulate_cohort(n_samples=60, n_genes=300, seed=5)
    second = simulate_cohort(SimulationConfig(n_samples=60, n_genes=300, seed=5))
    pd.testing.assert_frame_equal(first.counts, second.counts)
    pd.testing.assert_frame_equal(first.labels, second.labels)
    pd.testing.assert_frame_equal(first.metadata, second.metadata)
    assert first.truth == second.truth


def test_other_seed_other_cohort_same_genes() -> None:
    first = simulate_cohort(n_samples=60, n_genes=300, seed=5)
    other = simulate_cohort(n_samples=60, n_genes=300, seed=6)
    assert list(first.counts.columns) == list(other.counts.columns)
    assert not first.counts.equals(other.counts)
    assert not first.labels["true_probability"].equals(other.labels["true_probability"])
    # the gene-level truth is shared across seeds
    assert first.truth["driver_baselines"] == other.truth["driver_baselines"]


def test_labels_do_not_depend_on_n_genes() -> None:
    narrow = simulate_cohort(n_samples=50, n_genes=300, seed=2)
    wide = simulate_cohort(n_samples=50, n_genes=900, seed=2)
    pd.testing.assert_frame_equal(narrow.labels, wide.labels)
    assert list(wide.counts.columns[:300]) == list(narrow.counts.columns)


# ---------------------------------------------------------------------------------------------
# Layout
# ---------------------------------------------------------------------------------------------


def test_shapes_index_and_columns(cohort: Cohort) -> None:
    catalog = load_catalog(GENOME_CATALOG_VERSION)
    structured = catalog.all_genes()
    for frame in (cohort.counts, cohort.tpm, cohort.labels, cohort.metadata):
        assert frame.index.name == "sample_id"
        assert len(frame) == N_SAMPLES
    assert cohort.counts.index[0] == "SIM-00001"
    assert cohort.counts.index[-1] == f"SIM-{N_SAMPLES:05d}"
    assert cohort.counts.shape == cohort.tpm.shape == (N_SAMPLES, N_GENES)
    genes = list(cohort.counts.columns)
    assert genes[: len(catalog.symbols)] == list(catalog.symbols)
    assert genes[: len(structured)] == list(structured)
    background = genes[len(structured) :]
    assert len(set(genes)) == N_GENES
    assert not set(background) & set(structured)
    assert list(cohort.labels.columns) == [
        "lineage",
        *VIABILITY,
        "killing_auc",
        "resistant",
        "true_probability",
    ]
    assert list(cohort.metadata.columns[:4]) == ["lineage", "disease", "mechanisms", "n_mechanisms"]


def test_counts_are_non_negative_integers_with_zeros(cohort: Cohort) -> None:
    values = cohort.counts.to_numpy()
    assert values.dtype == np.int64
    assert values.min() >= 0
    assert (values == 0).any()  # low-expressed genes drop out
    np.testing.assert_allclose(cohort.tpm.sum(axis=1), 1e6, rtol=1e-4)


def test_labels_are_consistent(cohort: Cohort) -> None:
    labels = cohort.labels
    assert set(labels["resistant"].unique()) == {0, 1}
    assert labels["resistant"].dtype == np.int64
    assert 0.3 <= labels["resistant"].mean() <= 0.55
    assert labels[VIABILITY].to_numpy().min() >= 0
    assert labels[VIABILITY].to_numpy().max() <= 120
    pd.testing.assert_series_equal(labels["killing_auc"], killing_auc(labels[VIABILITY]))
    assert labels["killing_auc"].between(0, 1).all()
    # more resistant samples are killed less
    assert spearmanr(labels["killing_auc"], labels["true_probability"])[0] < -0.7
    assert (labels["lineage"] == cohort.metadata["lineage"]).all()


def test_metadata_mechanisms(cohort: Cohort) -> None:
    metadata = cohort.metadata
    counted = metadata["mechanisms"].map(lambda m: 0 if m == "none" else len(m.split(";")))
    assert (counted == metadata["n_mechanisms"]).all()
    assert set(metadata["n_mechanisms"]) == {0, 1, 2}
    assert set(metadata["disease"]) == {"AML", "CML", "B-ALL", "T-ALL", "CLL", "DLBCL", "MCL", "MM"}


# ---------------------------------------------------------------------------------------------
# Planted biology
# ---------------------------------------------------------------------------------------------


def test_resistant_samples_have_less_b7h6(cohort: Cohort) -> None:
    ncr3lg1 = _log2_tpm(cohort, "NCR3LG1")
    resistant = cohort.labels["resistant"] == 1
    assert ncr3lg1[resistant].mean() < ncr3lg1[~resistant].mean() - 0.5


def test_b7h6_loss_is_strong(cohort: Cohort) -> None:
    ncr3lg1 = _log2_tpm(cohort, "NCR3LG1")
    lost = _carries(cohort, "B7H6_LOSS")
    assert lost.sum() > 20
    assert ncr3lg1[lost].mean() < ncr3lg1[~lost].mean() - 2.0


def test_hla_gain_raises_hla_e_with_the_ifn_program(cohort: Cohort) -> None:
    gained = _carries(cohort, "HLA_GAIN")
    for gene in ("HLA-E", "HLA-A", "TAP1", "STAT1"):
        expression = _log2_tpm(cohort, gene)
        assert expression[gained].mean() > expression[~gained].mean() + 0.7, gene


def test_ifn_program_is_co_regulated(cohort: Cohort) -> None:
    no_gain = ~_carries(cohort, "HLA_GAIN")
    genes = ("STAT1", "IRF1", "PSMB9", "TAP1", "HLA-E")
    correlation = pd.DataFrame({g: _log2_tpm(cohort, g)[no_gain] for g in genes}).corr()
    off_diagonal = correlation.to_numpy()[~np.eye(len(genes), dtype=bool)]
    assert off_diagonal.min() > 0.2
    assert off_diagonal.mean() > 0.45


def test_lineage_programs(cohort: Cohort) -> None:
    disease = cohort.metadata["disease"]
    sdc1 = _log2_tpm(cohort, "SDC1")
    assert sdc1[disease == "MM"].mean() > sdc1[disease != "MM"].mean() + 3
    slamf7 = _log2_tpm(cohort, "SLAMF7")
    assert slamf7[disease == "MM"].mean() > slamf7[disease != "MM"].mean() + 2
    cd19 = _log2_tpm(cohort, "CD19")
    b_cell = cohort.metadata["lineage"] == "B-cell"
    assert cd19[b_cell].mean() > cd19[~b_cell].mean() + 3
    mpo = _log2_tpm(cohort, "MPO")
    assert mpo[disease.isin(["AML", "CML"])].mean() > mpo[~disease.isin(["AML", "CML"])].mean() + 3


def test_oracle_is_good_but_not_perfect(cohort: Cohort) -> None:
    auc = roc_auc_score(cohort.labels["resistant"], cohort.labels["true_probability"])
    assert 0.8 < auc < 0.99
    assert cohort.truth["summary"]["oracle_auc"] == pytest.approx(auc)


def test_truth_is_json_and_recomputes_the_logit(cohort: Cohort) -> None:
    truth = json.loads(json.dumps(cohort.truth))
    assert [m["name"] for m in truth["mechanisms"]] == [
        "B7H6_LOSS",
        "NKG2DL_LOSS",
        "HLA_GAIN",
        "ADHESION_LOSS",
        "APOPTOSIS_RESISTANCE",
    ]
    hla_gain = truth["mechanisms"][2]
    assert hla_gain["axes"] == ["KIR_HLA_I", "NKG2A_HLA_E"]
    assert hla_gain["direction"] == "gain"
    metadata = cohort.metadata
    logit = truth["intercept"] + metadata["disease"].map(
        {code: d["logit_effect"] for code, d in truth["diseases"].items()}
    )
    for mechanism in truth["mechanisms"]:
        logit += mechanism["log_odds_weight"] * metadata[f"driver_score_{mechanism['name']}"]
    np.testing.assert_allclose(logit, metadata["true_logit"])
    np.testing.assert_allclose(
        1 / (1 + np.exp(-metadata["true_logit"])), cohort.labels["true_probability"]
    )


# ---------------------------------------------------------------------------------------------
# Files
# ---------------------------------------------------------------------------------------------


def test_write_cohort_round_trip(tmp_path: Path) -> None:
    small = simulate_cohort(n_samples=40, n_genes=250, seed=3)
    paths = write_cohort(small, tmp_path / "cohort")
    assert set(paths) == {"expression", "labels", "nk_prism", "truth", "contributions"}
    assert [p.name for p in paths.values()] == [
        "expression.csv",
        "labels.csv",
        "nk_prism.txt",
        "truth.json",
        "contributions.csv",
    ]

    expression = pd.read_csv(paths["expression"], index_col="sample_id")
    pd.testing.assert_frame_equal(expression, small.counts, check_names=False)
    assert paths["expression"].read_text().startswith("sample_id,")

    labels = read_labels(paths["labels"])
    pd.testing.assert_frame_equal(labels, small.labels, check_index_type=False)

    prism_text = paths["nk_prism"].read_text().splitlines()
    assert prism_text[0].split("\t") == ["cell_line", "DepMap_ID", "Condition", "pctviability"]
    prism = read_nk_prism(paths["nk_prism"], auc="log2-killing")
    assert list(prism.index) == list(small.labels.index)
    np.testing.assert_allclose(prism["killing_auc"], small.labels["killing_auc"])
    np.testing.assert_allclose(prism[VIABILITY], small.labels[VIABILITY])

    assert json.loads(paths["truth"].read_text()) == json.loads(json.dumps(small.truth))


def test_nk_prism_table_layout(cohort: Cohort) -> None:
    table = cohort.nk_prism_table()
    assert list(table.columns) == ["cell_line", "DepMap_ID", "Condition", "pctviability"]
    assert len(table) == N_SAMPLES * (1 + len(RATIOS))
    first = table.iloc[: 1 + len(RATIOS)]
    assert first["Condition"].tolist() == ["CTRL", "D1_NK_0.5", "D1_NK_1", "D1_NK_2", "D1_NK_4"]
    assert first["pctviability"].iloc[0] == 100.0
    assert set(first["DepMap_ID"]) == {"SIM-00001"}


# ---------------------------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------------------------


def test_too_few_genes_raises() -> None:
    n_structured = len(load_catalog(GENOME_CATALOG_VERSION).all_genes())
    with pytest.raises(InputError, match="smaller than the"):
        simulate_cohort(n_samples=10, n_genes=n_structured - 1)
    assert simulate_cohort(n_samples=10, n_genes=n_structured).counts.shape[1] == n_structured


@pytest.mark.parametrize(
    "overrides",
    [
        {"not_a_parameter": 1},
        {"et_ratios": (2.0, 1.0)},
        {"et_ratios": (1.0,)},
        {"disease_mix": (("AML", 1.0), ("Burkitt", 1.0))},
        {"mechanism_count_probs": (0.5, 0.2)},
        {"n_samples": 0},
        {"library_size_range": (1e7, 1e6)},
    ],
)
def test_invalid_parameters_raise(overrides: dict[str, object]) -> None:
    with pytest.raises(InputError):
        simulate_cohort(**{"n_samples": 10, "n_genes": 300, **overrides})
