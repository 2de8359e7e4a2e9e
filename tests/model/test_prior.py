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
