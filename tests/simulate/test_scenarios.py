"""Simulator scenarios: each planted effect is visible, seeded, with its per-sample truth."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from nkpredict.catalog import load_catalog
from nkpredict.exceptions import InputError
from nkpredict.simulate.cohort import Cohort, simulate_cohort
from nkpredict.simulate.files import write_cohort
from nkpredict.simulate.scenarios import DECOYS, HLA_6P21
from nkpredict.vocabulary import SCENARIOS

N_GENES = 400


def _log2(cohort: Cohort, gene: str) -> pd.Series:
    return np.log2(cohort.tpm[gene].astype(float) + 1.0)


def _corr(a: pd.Series | np.ndarray, b: pd.Series | np.ndarray) -> float:
    return float(np.corrcoef(np.asarray(a, dtype=float), np.asarray(b, dtype=float))[0, 1])


@pytest.fixture(scope="module")
def cohorts() -> dict[str, Cohort]:
    return {
        name: simulate_cohort(n_samples=600, n_genes=N_GENES, seed=3, scenario=name)
        for name in SCENARIOS
    }


def test_additive_is_the_default_cohort() -> None:
    plain = simulate_cohort(n_samples=80, n_genes=300, seed=4)
    additive = simulate_cohort(n_samples=80, n_genes=300, seed=4, scenario="additive")
    pd.testing.assert_frame_equal(plain.counts, additive.counts)
    pd.testing.assert_frame_equal(plain.labels, additive.labels)


@pytest.mark.parametrize("name", SCENARIOS)
def test_small_seeded_cohorts_with_contributions_that_add_up(name: str) -> None:
    first = simulate_cohort(n_samples=40, n_genes=N_GENES, seed=9, scenario=name)
    again = simulate_cohort(n_samples=40, n_genes=N_GENES, seed=9, scenario=name)
    pd.testing.assert_frame_equal(first.counts, again.counts)
    pd.testing.assert_frame_equal(first.contributions, again.contributions)
    parts = first.contributions.drop(columns="true_logit").sum(axis=1)
    np.testing.assert_allclose(parts, first.metadata["true_logit"], atol=1e-9)
    np.testing.assert_allclose(
        first.labels["true_probability"], 1 / (1 + np.exp(-first.contributions["true_logit"]))
    )
    named = {d["name"] for d in first.truth["scenario"]["drivers"]}
    assert named <= set(first.contributions.columns)
    assert first.truth["scenario"]["name"] == name


def test_unknown_scenario_is_an_input_error() -> None:
    with pytest.raises(InputError, match="scenario"):
        simulate_cohort(n_samples=40, n_genes=N_GENES, scenario="additiv")


def test_lineage_restricted_driver_has_no_marginal_but_a_within_lineage_effect(
    cohorts: dict[str, Cohort],
) -> None:
    cohort = cohorts["lineage-restricted"]
    cd48, logit = _log2(cohort, "CD48"), cohort.metadata["true_logit"]
    inside = cohort.metadata["lineage"] == "B-cell"
    assert abs(_corr(cd48, logit)) < 0.1
    assert _corr(cd48[inside], logit[inside]) < -0.4
    assert (cohort.contributions.loc[~inside, "CD48_LOSS_B-CELL"] == 0).all()
    assert "ADHESION_LOSS" not in cohort.contributions.columns


def test_saturating_caps_mechanisms_and_viability_exceeds_100(
    cohorts: dict[str, Cohort],
) -> None:
    cohort = cohorts["saturating"]
    weight = {m["name"]: m["log_odds_weight"] for m in cohort.truth["mechanisms"]}
    b7h6 = cohort.contributions["B7H6_LOSS"]
    assert b7h6.max() <= 2 * weight["B7H6_LOSS"] + 1e-9
    assert b7h6.min() >= 0
    assert set(np.round(cohort.contributions["HLA_GAIN"], 6)) <= {0.0, round(1.5 * 2.2, 6)}
    resistant = cohort.labels["resistant"] == 1
    assert (cohort.labels.loc[resistant, "viability_et_0.5"] > 100).mean() > 0.2


def test_interactions_hla_e_protects_only_against_nkg2a_high_donors(
    cohorts: dict[str, Cohort],
) -> None:
    cohort = cohorts["interactions"]
    high = cohort.metadata["donor_nkg2a_high"] == 1
    effect = cohort.contributions["HLA_E_X_NKG2A"]
    assert (effect[~high] == 0).all() and effect[high].std() > 1
    hla_e, logit = _log2(cohort, "HLA-E"), cohort.metadata["true_logit"]
    assert _corr(hla_e[high], logit[high]) > _corr(hla_e[~high], logit[~high]) + 0.15
    shedding = cohort.metadata["shedding_high"].astype(bool)
    assert (cohort.contributions.loc[~shedding, "NKG2DL_LOSS"] == 0).all()


def test_cnv_deletions_show_in_mrna_and_loss_of_function_does_not(
    cohorts: dict[str, Cohort],
) -> None:
    cohort = cohorts["cnv"]
    meta = cohort.metadata
    deleted = meta["cnv_ncr3lg1_del"] == 1
    assert _log2(cohort, "NCR3LG1")[~deleted].mean() - _log2(cohort, "NCR3LG1")[deleted].mean() > 2
    lost = meta["cnv_hla_6p21_loss"] == 1
    for gene in HLA_6P21:  # the neighbours are dragged down with HLA class I
        assert _log2(cohort, gene)[~lost].mean() - _log2(cohort, gene)[lost].mean() > 0.5, gene
    b2m = meta["cnv_b2m_lof"] == 1
    assert abs(_log2(cohort, "B2M")[b2m].mean() - _log2(cohort, "B2M")[~b2m].mean()) < 0.5
    assert cohort.contributions.loc[b2m, "B2M_LOF"].eq(-2.5).all()
    assert cohort.labels.loc[b2m, "resistant"].mean() < cohort.labels["resistant"].mean()


def test_off_catalogue_driver_is_strong_and_outside_the_catalogue(
    cohorts: dict[str, Cohort],
) -> None:
    cohort = cohorts["off-catalogue"]
    (driver,) = [d for d in cohort.truth["scenario"]["drivers"] if d["axes"] == ["GENOME_WIDE"]]
    (gene,) = driver["genes"]
    assert gene not in load_catalog().all_genes()
    assert _corr(_log2(cohort, gene), cohort.metadata["true_logit"]) > 0.4


def test_confounded_decoys_correlate_through_lineage_only(cohorts: dict[str, Cohort]) -> None:
    """Against the additive cohort of the same seed: the decoys' pooled association with the
    log-odds grows (decoys go up with the lineages' log-odds), their association inside each
    disease does not (no effect of their own)."""
    cohort, plain = cohorts["confounded"], cohorts["additive"]
    assert cohort.truth["scenario"]["decoys"] == list(DECOYS)

    def association(source: Cohort, gene: str) -> tuple[float, float]:
        values, logit = _log2(source, gene), source.metadata["true_logit"]
        disease = source.metadata["disease"]
        within = [
            _corr(values[disease == d], logit[disease == d])
            for d in disease.unique()
            if (disease == d).sum() > 30
        ]
        return _corr(values, logit), float(np.mean(within))

    for gene in DECOYS:
        pooled, within = association(cohort, gene)
        pooled_plain, within_plain = association(plain, gene)
        assert pooled > pooled_plain + 0.15, gene
        assert abs(within - within_plain) < 0.1, gene


def test_platform_shift_writes_an_external_cohort_on_another_scale(
    cohorts: dict[str, Cohort], tmp_path: Path
) -> None:
    cohort = cohorts["platform-shift"]
    external = cohort.external
    assert external is not None and external.expression is not None
    assert list(external.expression.columns) == list(cohort.counts.columns)
    assert float(external.expression.to_numpy().max()) < 20  # log2 intensities, not counts
    assert not external.labels.index.equals(cohort.labels.index) or not external.labels.equals(
        cohort.labels
    )
    paths = write_cohort(cohort, tmp_path)
    assert paths["external_expression"] == tmp_path / "external" / "expression.csv"
    truth = json.loads(paths["truth"].read_text())
    assert truth["scenario"]["external"]["files"] == "external/"
    table = pd.read_csv(paths["contributions"], index_col=0)
    assert "true_logit" in table.columns and len(table) == 600
