"""The biological prior: a penalized linear model on the NK features.

Real NK screens are small (tens to a few hundred cell lines), and on the catalogue's features a
penalized linear model is hard to beat there. :class:`KnowledgePrior` is that model: features
standardized with the training means and spreads, an L2-penalized logistic regression
(classification) or ridge regression (regression) whose penalty is chosen by inner
cross-validation that respects groups. Its output, the *prior margin* (log-odds or readout), is
where the boosted trees start (XGBoost's ``base_margin``): the trees learn what the prior
misses.

Inside the training data the prior is **cross-fitted** (:attr:`KnowledgePrior.oof_margin_`): the
margin each training sample gets comes from a prior fitted without it, so the trees learn the
residual structure of new samples, not the prior's fit to its own training points.

Everything learned is a handful of floats (means, spreads, coefficients, intercept), saved as
plain JSON. Attributions are exact: ``margin = intercept + sum_j coef_j * z_j`` with
``z_j = (x_j - mean_j) / scale_j`` (0 for a missing value, i.e. the training mean).
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.linear_model import LogisticRegression, Ridge

from nkpredict.exceptions import InputError, NotFittedError
from nkpredict.model.splits import inner_folds
from nkpredict.vocabulary import Task

__all__ = ["PENALTIES", "KnowledgePrior"]

logger = logging.getLogger(__name__)

PENALTIES: tuple[float, ...] = (0.01, 0.03, 0.1, 0.3)
"""Inverse L2 penalties (logistic ``C``; ridge uses ``alpha = 1 / C``) tried by inner CV."""
_SCALE_FLOOR = 1e-8


def _standardized(X: np.ndarray, mean: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """``(X - mean) / scale`` with missing values at 0 (the training mean)."""
    z = (np.asarray(X, dtype=np.float64) - mean) / scale
    return np.nan_to_num(z, nan=0.0, posinf=0.0, neginf=0.0)


class KnowledgePrior(BaseEstimator):
    """Penalized linear model on standardized NK features; its margin is the trees' start.

    Parameters
    ----------
    task : {"classification", "regression"}
    penalties : tuple of float
        Inverse L2 penalties searched by inner cross-validation (log-loss or squared error).
    n_folds : int
        Inner folds for the penalty search and for cross-fitting.
    random_state : int
    """

    def __init__(
        self,
        task: Task = "classification",
        penalties: tuple[float, ...] = PENALTIES,
        n_folds: int = 5,
        random_state: int = 0,
    ) -> None:
        self.task = task
        self.penalties = penalties
        self.n_folds = n_folds
        self.random_state = random_state

    # ------------------------------------------------------------------ fitting

    def _linear(self, penalty: float) -> LogisticRegression | Ridge:
        if self.task == "classification":
            return LogisticRegression(C=penalty, solver="newton-cholesky", max_iter=200)
        return Ridge(alpha=1.0 / penalty)

    def _fit_linear(
        self, X: np.ndarray, y: np.ndarray, penalty: float
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
        """Standardization and coefficients learned on ``X``: (mean, scale, coef, intercept)."""
        mean = np.nanmean(X, axis=0)
        mean = np.where(np.isfinite(mean), mean, 0.0)
        scale = np.nanstd(X, axis=0)
        scale = np.where(np.isfinite(scale) & (scale > _SCALE_FLOOR), scale, 1.0)
        linear = self._linear(penalty).fit(_standardized(X, mean, scale), y)
        coef = np.ravel(linear.coef_).astype(np.float64)
        intercept = float(np.ravel(linear.intercept_)[0])
        return mean, scale, coef, intercept

    @staticmethod
    def _margin_of(
        X: np.ndarray, state: tuple[np.ndarray, np.ndarray, np.ndarray, float]
    ) -> np.ndarray:
        mean, scale, coef, intercept = state
        return intercept + _standardized(X, mean, scale) @ coef

    def _loss(self, y: np.ndarray, margin: np.ndarray) -> float:
        if self.task == "classification":
            p = np.clip(1.0 / (1.0 + np.exp(-margin)), 1e-12, 1 - 1e-12)
            return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))
        return float(np.mean((y - margin) ** 2))

    def _out_of_fold(
        self,
        X: np.ndarray,
        y: np.ndarray,
        folds: list[tuple[np.ndarray, np.ndarray]],
        penalty: float,
    ) -> np.ndarray:
        margin = np.empty(y.shape[0], dtype=np.float64)
        for fit, held_out in folds:
            state = self._fit_linear(X[fit], y[fit], penalty)
            margin[held_out] = self._margin_of(X[held_out], state)
        return margin

    def fit(self, X: np.ndarray, y: Any, groups: Any = None) -> KnowledgePrior:
        """Choose the penalty by inner CV, fit on all samples and cross-fit training margins.

        Parameters
        ----------
        X : ndarray, shape (n_samples, n_features)
        y : array-like, shape (n_samples,)
            0/1 (classification) or a readout (regression).
        groups : array-like, shape (n_samples,), optional
            Cell line, patient or lineage of each sample; no inner fold splits a group.
        """
        values = np.asarray(X, dtype=np.float64)
        target = np.asarray(y, dtype=np.float64)
        labels = None if groups is None else np.asarray(groups, dtype=object)
        if values.ndim != 2 or values.shape[0] != target.shape[0]:
            raise InputError(
                f"X must be (n_samples, n_features) with one target per sample; got "
                f"{values.shape} and {target.shape}"
            )
        folds = inner_folds(
            target, self.n_folds, self.random_state, self.task == "classification", labels
        )
        if not folds:
            raise InputError(
                "the prior needs at least two groups, and two samples of each class, to fit"
            )
        losses = {}
        margins = {}
        for penalty in self.penalties:
            margins[penalty] = self._out_of_fold(values, target, folds, penalty)
            losses[penalty] = self._loss(target, margins[penalty])
        best = min(self.penalties, key=lambda c: (losses[c], -c))
        self.penalty_ = float(best)
        self.inner_loss_ = {float(c): loss for c, loss in losses.items()}
        self.oof_margin_ = margins[best]
        mean, scale, coef, intercept = self._fit_linear(values, target, best)
        self.mean_, self.scale_, self.coef_, self.intercept_ = mean, scale, coef, intercept
        self.n_features_in_ = values.shape[1]
        logger.debug("prior: C=%g, inner loss %.4f", best, losses[best])
        return self

    # ------------------------------------------------------------------ scoring
    def _check_fitted(self) -> None:
        if not hasattr(self, "coef_"):
            raise NotFittedError("KnowledgePrior is not fitted")

    def margin(self, X: np.ndarray) -> np.ndarray:
        """Prior margin (log-odds or readout) of each sample, shape (n_samples,)."""
        self._check_fitted()
        return self._margin_of(X, (self.mean_, self.scale_, self.coef_, self.intercept_))

    def contributions(self, X: np.ndarray) -> np.ndarray:
        """Exact per-feature parts of :meth:`margin`, shape (n_samples, n_features).

        ``contributions(X).sum(axis=1) + intercept_ == margin(X)``.
        """
        self._check_fitted()
        return _standardized(X, self.mean_, self.scale_) * self.coef_

    # ------------------------------------------------------------------ persistence
    def to_dict(self) -> dict[str, Any]:
        """The fitted prior as plain JSON data."""
        self._check_fitted()
        return {
            "task": self.task,
            "penalty": self.penalty_,
            "mean": self.mean_.tolist(),
            "scale": self.scale_.tolist(),
            "coef": self.coef_.tolist(),
            "intercept": self.intercept_,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> KnowledgePrior:
        """Rebuild a fitted prior from :meth:`to_dict` output."""
        prior = cls(task=data["task"])
        prior.penalty_ = float(data["penalty"])
        prior.mean_ = np.asarray(data["mean"], dtype=np.float64)
        prior.scale_ = np.asarray(data["scale"], dtype=np.float64)
        prior.coef_ = np.asarray(data["coef"], dtype=np.float64)
        prior.intercept_ = float(data["intercept"])
        prior.n_features_in_ = prior.coef_.shape[0]
        if not (prior.mean_.shape == prior.scale_.shape == prior.coef_.shape):
            raise InputError("a saved prior's mean, scale and coef differ in length")
        return prior
