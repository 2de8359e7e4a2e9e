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
