"""Domain checks: quiet on the training distribution, loud on other platforms and tissues."""

from __future__ import annotations

from functools import cache

import numpy as np
import pandas as pd
import pytest

from nkpredict.domain import DomainModel
from nkpredict.model.fitted import NKResistanceModel
from nkpredict.simulate.cohort import Cohort, simulate_cohort
from nkpredict.simulate.nonblood import solid_tumour_profiles

N_GENES = 600


@cache
def _cohort(seed: int, scenario: str = "additive") -> Cohort:
    return simulate_cohort(n_samples=200, n_genes=N_GENES, seed=seed, scenario=scenario)


@cache
def _model(with_lineages: bool = True) -> NKResistanceModel:
    train = _cohort(11)
    lineages = train.labels["lineage"] if with_lineages else None
    return NKResistanceModel(
        booster={"n_estimators": 10, "early_stopping_rounds": None, "n_jobs": 1}
    ).fit(train.counts, train.labels["resistant"], lineages=lineages)


def _assess(model: NKResistanceModel, expression: pd.DataFrame):
    scorer = model.scorer
    genes = scorer.gene_values(model.prepare(expression))
    features = scorer.features(genes)
    domain = model.domain
    assert domain is not None
    return domain.assess(features, genes, scorer.coverage(features))


def test_training_distribution_is_rarely_flagged() -> None:
    model = _model()
    assert model.domain is not None and model.domain.held_out_rate <= 0.1
    fresh = _assess(model, _cohort(12).counts)
    assert fresh.out_of_domain.mean() <= 0.1
    assert fresh.lineage is not None
    assert np.mean(np.array(fresh.lineage) == _cohort(12).labels["lineage"].to_numpy()) >= 0.95


def test_another_platform_and_non_blood_profiles_are_flagged() -> None:
    model = _model()
    external = _cohort(13, "platform-shift").external
    assert external is not None and external.expression is not None
    shifted = _assess(model, external.expression)
    assert shifted.out_of_domain.mean() >= 0.9
    solid = _assess(model, solid_tumour_profiles(_cohort(12).tpm))
    assert solid.out_of_domain.mean() >= 0.9
    assert all("unseen_lineage" in r or "ambiguous_lineage" in r for r in solid.reasons)


def test_low_coverage_is_a_reason() -> None:
    model = _model()
    counts = _cohort(12).counts.iloc[:5].copy()
    catalogue = [g for g in model.feature_builder.model_genes_ if g in counts.columns]
    counts = counts.drop(columns=catalogue[: len(catalogue) // 4])
    assessed = _assess(model, counts)
    assert all("low_coverage" in r for r in assessed.reasons)


def test_without_lineages_there_are_no_lineage_checks() -> None:
    model = _model(with_lineages=False)
    assessed = _assess(model, solid_tumour_profiles(_cohort(12).tpm))
    assert assessed.lineage is None
    assert not any("lineage" in reason for r in assessed.reasons for reason in r)
    assert assessed.out_of_domain.mean() >= 0.9  # the distance and platform checks still see it


def test_round_trip_keeps_the_assessment() -> None:
    model = _model()
    domain = model.domain
    assert domain is not None
    again = DomainModel.from_dict(domain.to_dict())
    scorer = model.scorer
    genes = scorer.gene_values(model.prepare(_cohort(13, "platform-shift").counts))
    features = scorer.features(genes)
    coverage = scorer.coverage(features)
    first, second = (
        domain.assess(features, genes, coverage),
        again.assess(features, genes, coverage),
    )
    assert first.reasons == second.reasons
    assert first.lineage == second.lineage


@pytest.mark.parametrize("quantile", [0.9, 0.995])
def test_thresholds_follow_the_quantile(quantile: float) -> None:
    model = _model()
    scorer = model.scorer
    train = _cohort(11)
    genes = scorer.gene_values(model.prepare(train.counts))
    domain = DomainModel.fit(
        scorer.features(genes),
        list(model.feature_builder.get_feature_names_out()),
        genes,
        list(train.labels["lineage"]),
        quantile=quantile,
    )
    assert domain.held_out_rate <= 5 * (1 - quantile) + 0.02


@pytest.mark.parametrize("with_lineages", [True, False])
def test_one_sample_checks_equal_the_batch_checks_bit_for_bit(with_lineages: bool) -> None:
    """The one-sample path (``_scores_one``, ``_assessment_one``) gives the same scores, bit
    for bit, and the same reasons as the array path, on samples as measured, with unmeasured
    genes, on other platforms and out of range."""
    model = _model(with_lineages)
    domain = model.domain
    assert domain is not None
    scorer = model.scorer
    external = _cohort(13, "platform-shift").external
    assert external is not None and external.expression is not None
    rng = np.random.default_rng(5)
    frames = [_cohort(12).counts.iloc[:20], external.expression.iloc[:10]]
    rows = []
    for frame in frames:
        genes = scorer.gene_values(model.prepare(frame))
        rows += list(genes)
    holes = np.array(rows[:10])
    holes[rng.random(holes.shape) < 0.3] = np.nan
    rows += [*holes, np.array(rows[0]) * 3.0, np.full(len(rows[0]), np.nan)]
    reference = domain.reference
    for genes in rows:
        one = np.array([genes])
        features = scorer.features(one)
        values, selected = features[:, domain._features], one
        programs = features[:, domain._programs] if domain.program_columns.size else None
        fast = reference._scores_one(values, selected, programs)
        slow = reference._scores_many(values, selected, programs)
        assert fast[0].tobytes() == slow[0].tobytes()
        assert fast[1] == slow[1]
        coverage = scorer.coverage(features)
        for cut in (fast[0], fast[0] * 0.5):  # the thresholds' side of a few more scores
            a = domain._assessment_one(cut, coverage, fast[1], fast[2])
            b = domain._assessment_many(cut, coverage, slow[1], slow[2])
            assert a.reasons == b.reasons
            assert a.out_of_domain.tolist() == b.out_of_domain.tolist()
