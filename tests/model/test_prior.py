"""The biological prior: exact attributions, cross-fitting, groups respected, plain-JSON state."""

from __future__ import annotations

import json

import numpy as np
import pytest

from nkpredict.exceptions import InputError, NotFittedError
from nkpredict.model import prior as prior_module
from nkpredict.model.prior import KnowledgePrior


def _data(n: int = 120, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 6)) * [1.0, 2.0, 0.5, 1.0, 1.0, 3.0] + 4.0
    logit = 1.5 * (X[:, 0] - 4.0) - 0.8 * (X[:, 1] - 4.0) / 2.0
    y = (rng.random(n) < 1.0 / (1.0 + np.exp(-logit))).astype(int)
    return X, y


def test_contributions_add_up_to_the_margin() -> None:
    X, y = _data()
    prior = KnowledgePrior().fit(X, y)
    np.testing.assert_allclose(
        prior.contributions(X).sum(axis=1) + prior.intercept_, prior.margin(X)
    )
    assert prior.coef_[0] > 0 > prior.coef_[1]  # the planted directions


def test_training_margins_are_cross_fitted() -> None:
    X, y = _data()
    prior = KnowledgePrior().fit(X, y)
    assert prior.oof_margin_.shape == (len(y),)
    assert not np.allclose(prior.oof_margin_, prior.margin(X))


def test_inner_folds_never_split_a_group(monkeypatch: pytest.MonkeyPatch) -> None:
    X, y = _data()
    groups = np.repeat(np.arange(30), 4)
    seen: list[list[tuple[np.ndarray, np.ndarray]]] = []
    real = prior_module.inner_folds

    def spy(*args: object, **kwargs: object) -> list[tuple[np.ndarray, np.ndarray]]:
        folds = real(*args, **kwargs)  # type: ignore[arg-type]
        seen.append(folds)
        return folds

    monkeypatch.setattr(prior_module, "inner_folds", spy)
    KnowledgePrior().fit(X, y, groups=groups)
    assert seen
    for fit, held_out in seen[0]:
        assert not set(groups[fit]) & set(groups[held_out])


def test_missing_values_count_as_the_training_mean() -> None:
    X, y = _data()
    prior = KnowledgePrior().fit(X, y)
    row = X[:1].copy()
    row[0, 0] = np.nan
    assert prior.contributions(row)[0, 0] == 0.0


def test_round_trip_through_json() -> None:
    X, y = _data()
    prior = KnowledgePrior().fit(X, y)
    again = KnowledgePrior.from_dict(json.loads(json.dumps(prior.to_dict())))
    np.testing.assert_array_equal(again.margin(X), prior.margin(X))


def test_regression_prior() -> None:
    X, _ = _data()
    y = 2.0 * X[:, 0] + np.random.default_rng(1).normal(size=len(X))
    prior = KnowledgePrior(task="regression").fit(X, y)
    assert np.corrcoef(prior.oof_margin_, y)[0, 1] > 0.8


def test_clear_errors() -> None:
    with pytest.raises(NotFittedError):
        KnowledgePrior().margin(np.zeros((1, 2)))
    X, _ = _data(n=20)
    with pytest.raises(InputError, match="of each class"):
        KnowledgePrior().fit(X, np.r_[np.ones(19), 0])


def test_feature_weights_set_each_features_penalty() -> None:
    """A weight below 1 penalizes a feature more (its coefficient shrinks), folded into
    ``scale_`` so attributions stay exact and the saved format is unchanged."""
    X, y = _data()
    plain = KnowledgePrior().fit(X, y)
    ones = KnowledgePrior().fit(X, y, feature_weights=np.ones(6))
    np.testing.assert_allclose(ones.coef_, plain.coef_)
    weights = np.array([0.3, 1.0, 1.0, 1.0, 1.0, 1.0])
    weighted = KnowledgePrior().fit(X, y, feature_weights=weights)
    np.testing.assert_allclose(weighted.scale_, plain.scale_ / weights)
    assert abs(weighted.coef_[0] * plain.scale_[0] / weighted.scale_[0]) < abs(plain.coef_[0])
    np.testing.assert_allclose(
        weighted.contributions(X).sum(axis=1) + weighted.intercept_, weighted.margin(X)
    )
    restored = KnowledgePrior.from_dict(json.loads(json.dumps(weighted.to_dict())))
    np.testing.assert_allclose(restored.margin(X), weighted.margin(X))
    for bad in (np.ones(5), np.array([1.0, 1.0, 0.0, 1.0, 1.0, 1.0]), np.full(6, np.nan)):
        with pytest.raises(InputError, match="feature_weights"):
            KnowledgePrior().fit(X, y, feature_weights=bad)


def test_one_penalty_by_default_several_searched() -> None:
    X, y = _data()
    assert KnowledgePrior().fit(X, y).penalty_ == prior_module.PENALTIES[0] == 0.03
    searched = KnowledgePrior(penalties=(0.01, 1.0)).fit(X, y)
    assert set(searched.inner_loss_) == {0.01, 1.0}
