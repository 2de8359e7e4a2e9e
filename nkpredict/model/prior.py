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

from nkpredict.estimator import (
    TaskRoleMixin,
    binary_target,
    check_fitted,
    check_input,
    classification_only,
)
from nkpredict.exceptions import InputError
from nkpredict.model.signed import fit_signed_linear
from nkpredict.model.splits import inner_folds
from nkpredict.vocabulary import TASKS, Task, check_choice

__all__ = ["PENALTIES", "PRIOR_ALONE_PENALTIES", "KnowledgePrior"]

logger = logging.getLogger(__name__)

PENALTIES: tuple[float, ...] = (0.03,)
"""The default inverse L2 penalty (logistic ``C``; ridge uses ``alpha = 1 / C``).

One fixed penalty, not a search: on the accuracy panel's cohorts (seeds 0-2, n = 120 and 300,
8-11 scenario x size cells) a penalty chosen per fit by inner cross-validation among 0.01-0.3
was worse than this fixed one at small n (the choice is noisy, and a different penalty in
every outer fold changes the scale of the margins from fold to fold). Give several to search
them by inner CV."""
PRIOR_ALONE_PENALTIES: tuple[float, ...] = (0.1,)
"""The penalty of a prior that is the whole model (no trees are looked for: too few samples).

A prior that trees start from is shrunk harder (:data:`PENALTIES`); one that stands alone is a
plain penalized linear model, and takes the linear baseline's penalty. On the accuracy panel
(seeds 0-2, 7 scenarios at n = 60, 48 training samples per fold, where the prior is the model)
the mean paired ROC AUC difference to the linear baseline was -0.000 with ``C = 0.03`` and +0.002
with ``C = 0.1`` (``lineage-restricted`` -0.016 -> -0.010, ``saturating`` -0.002 -> +0.010)."""
_SCALE_FLOOR = 1e-8


def _standardized(X: np.ndarray, mean: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """``(X - mean) / scale`` in float64, with missing (and infinite) values at 0 (the
    training mean).

    Computed in place on one new array, and the non-finite cells looked for only when there
    are any: this runs on every request (a one-sample call costs a few microseconds, where
    ``np.nan_to_num`` alone cost more than twice that)."""
    z = np.subtract(X, mean, dtype=np.float64)
    z /= scale
    finite = np.isfinite(z)
    if not finite.all():
        z[~finite] = 0.0
    return z


def _checked_weights(weights: Any, n_features: int) -> np.ndarray:
    """Feature weights as a float array of length ``n_features`` (ones when ``None``)."""
    if weights is None:
        return np.ones(n_features)
    array = np.asarray(weights, dtype=np.float64)
    if array.shape != (n_features,) or not (np.isfinite(array).all() and (array > 0).all()):
        raise InputError(
            f"feature_weights must be {n_features} positive finite numbers (one per feature); "
            f"got shape {array.shape}"
        )
    return array


def _checked_signs(signs: Any, n_features: int) -> np.ndarray:
    """Expected coefficient signs as an int array of -1, 0 and +1 (zeros when ``None``)."""
    if signs is None:
        return np.zeros(n_features, dtype=np.int8)
    array = np.asarray(signs)
    if array.shape != (n_features,) or not np.isin(array, (-1, 0, 1)).all():
        raise InputError(
            f"feature_signs must be {n_features} values of -1, 0 or 1 (one per feature); got "
            f"shape {array.shape}"
        )
    return array.astype(np.int8)


class KnowledgePrior(TaskRoleMixin, BaseEstimator):
    """Penalized linear model on standardized NK features; its margin is the trees' start.

    A binary classifier or a regressor by ``task`` (declared through ``__sklearn_tags__``;
    it passes scikit-learn's ``check_estimator`` in both roles). NaN is a missing value (the
    training mean); infinity is refused.

    Parameters
    ----------
    task : {"classification", "regression"}
    penalties : tuple of float
        Inverse L2 penalties; several are searched by inner cross-validation (log-loss or
        squared error), one is used as it is.
    n_folds : int
        Inner folds for the penalty search and for cross-fitting.
    random_state : int

    Attributes
    ----------
    penalty_ : float
        The inverse penalty chosen.
    inner_loss_ : dict of float to float
        Inner cross-validated loss of each penalty.
    oof_margin_ : ndarray, shape (n_samples,)
        Cross-fitted margin of each training sample.
    mean_, scale_, coef_ : ndarray, shape (n_features_in_,)
    intercept_ : float
    signs_ : ndarray of int8, shape (n_features_in_,)
        The sign constraints of the fit (0: free); set by :meth:`fit` only (a prior loaded
        from a file has its coefficients, not how they were constrained).
    classes_ : ndarray, shape (2,)
        The two labels (classification); the second is class 1.
    n_features_in_ : int
    feature_names_in_ : ndarray of str, shape (n_features_in_,)
        Only when ``X`` had string column names.
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
        self,
        X: np.ndarray,
        y: np.ndarray,
        penalty: float,
        weights: np.ndarray,
        signs: np.ndarray,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
        """Standardization and coefficients learned on ``X``: (mean, scale, coef, intercept).

        The scale is each feature's spread divided by its prior weight (``weights``:
        :meth:`fit`'s ``feature_weights``), so the L2 penalty on a feature's coefficient is
        divided by the square of its weight. With any nonzero ``signs`` (:meth:`fit`'s
        ``feature_signs``) the coefficients are fitted under those sign constraints
        (:func:`~nkpredict.model.signed.fit_signed_linear`), otherwise by scikit-learn."""
        mean = np.nanmean(X, axis=0)
        mean = np.where(np.isfinite(mean), mean, 0.0)
        scale = np.nanstd(X, axis=0)
        scale = np.where(np.isfinite(scale) & (scale > _SCALE_FLOOR), scale, 1.0)
        scale = scale / weights
        z = _standardized(X, mean, scale)
        if signs.any():
            coef, intercept = fit_signed_linear(z, y, penalty, signs, self.task)
            return mean, scale, coef, intercept
        linear = self._linear(penalty).fit(z, y)
        coef = np.ravel(linear.coef_).astype(np.float64)
        intercept = float(np.ravel(linear.intercept_)[0])
        return mean, scale, coef, intercept

    @staticmethod
    def _margin_of(
        X: np.ndarray, state: tuple[np.ndarray, np.ndarray, np.ndarray, float]
    ) -> np.ndarray:
        mean, scale, coef, intercept = state
        z = np.subtract(X, mean, dtype=np.float64)
        z /= scale
        margin = z @ coef
        if not np.isfinite(margin).all():  # a missing or infinite value: at the mean
            margin = _standardized(X, mean, scale) @ coef
        return intercept + margin

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
        weights: np.ndarray,
        signs: np.ndarray,
    ) -> np.ndarray:
        margin = np.empty(y.shape[0], dtype=np.float64)
        for fit, held_out in folds:
            state = self._fit_linear(X[fit], y[fit], penalty, weights, signs)
            margin[held_out] = self._margin_of(X[held_out], state)
        return margin

    def fit(
        self,
        X: np.ndarray,
        y: Any,
        groups: Any = None,
        feature_weights: np.ndarray | None = None,
        feature_signs: np.ndarray | None = None,
    ) -> KnowledgePrior:
        """Choose the penalty (when several), fit on all samples and cross-fit training margins.

        Parameters
        ----------
        X : ndarray, shape (n_samples, n_features)
        y : array-like, shape (n_samples,)
            0/1 (classification) or a readout (regression).
        groups : array-like, shape (n_samples,), optional
            Cell line, patient or lineage of each sample; no inner fold splits a group.
        feature_weights : array-like, shape (n_features,), optional
            Prior weight of each feature (positive; default 1): a weight ``w`` divides the
            penalty on that feature's standardized coefficient by ``w**2``. The weights are
            folded into ``scale_``, so attributions stay ``coef_ * z`` and saved priors keep
            their format.
        feature_signs : array-like of -1, 0 and 1, shape (n_features,), optional
            Expected sign of each feature's coefficient (for class 1 in classification); a
            nonzero sign keeps that coefficient on its side of zero or at zero (default: all
            free, the scikit-learn fit). Kept as ``signs_``.

        Raises
        ------
        InputError
            ``X`` or ``y`` malformed (shapes and dtypes named), too few samples or groups
            for two inner folds, or feature weights of another length or not positive.
        LabelError
            Classification with a continuous target, a third class or a single class.
        """
        check_choice(self.task, TASKS, "task")
        classification = self.task == "classification"
        values, target = check_input(
            self, X, y, reset=True, ensure_min_samples=2, y_numeric=not classification
        )
        if classification:
            self.classes_, target = binary_target(self, target)
        elif hasattr(self, "classes_"):
            del self.classes_  # refitted as a regressor
        target = np.asarray(target, dtype=np.float64)
        weights = _checked_weights(feature_weights, values.shape[1])
        signs = _checked_signs(feature_signs, values.shape[1])
        labels = None if groups is None else np.asarray(groups, dtype=object)
        if labels is not None and labels.shape[0] != values.shape[0]:
            raise InputError(
                f"groups must have one label per training sample: {labels.shape[0]} labels "
                f"for {values.shape[0]} samples"
            )
        folds = inner_folds(target, self.n_folds, self.random_state, classification, labels)
        if not folds:
            got = f"{values.shape[0]} samples"
            if labels is not None:
                got += f", {np.unique(labels).size} group(s)"
            if classification:
                sizes = np.unique(target, return_counts=True)[1]
                got += f", class sizes {sorted(int(c) for c in sizes)}"
            raise InputError(
                "the prior needs at least two groups, and two samples of each class, to fit "
                f"its inner folds; got {got}"
            )
        losses = {}
        margins = {}
        for penalty in self.penalties:
            margins[penalty] = self._out_of_fold(values, target, folds, penalty, weights, signs)
            losses[penalty] = self._loss(target, margins[penalty])
        best = min(self.penalties, key=lambda c: (losses[c], -c))
        self.penalty_ = float(best)
        self.inner_loss_ = {float(c): loss for c, loss in losses.items()}
        self.oof_margin_ = margins[best]
        mean, scale, coef, intercept = self._fit_linear(values, target, best, weights, signs)
        self.signs_ = signs
        self.mean_, self.scale_, self.coef_, self.intercept_ = mean, scale, coef, intercept
        logger.debug("prior: C=%g, inner loss %.4f", best, losses[best])
        return self

    # ------------------------------------------------------------------ scoring
    def _check_fitted(self) -> None:
        check_fitted(self, "coef_")

    def _array(self, X: np.ndarray) -> np.ndarray:
        """``X`` as an array of the fitted width (a shape check only: the array-level path)."""
        self._check_fitted()
        values = np.asarray(X)
        if values.ndim != 2 or values.shape[1] != self.coef_.shape[0]:
            raise InputError(
                f"the prior expects (n_samples, {self.coef_.shape[0]}) features; got shape "
                f"{values.shape}"
            )
        return values

    def margin(self, X: np.ndarray) -> np.ndarray:
        """Prior margin (log-odds or readout) of each sample, shape (n_samples,).

        Array level (the boosted trees' and the scoring path's): only the width is checked;
        :meth:`decision_function` and :meth:`predict` validate their input fully.
        """
        return self._margin_of(
            self._array(X), (self.mean_, self.scale_, self.coef_, self.intercept_)
        )

    def contributions(self, X: np.ndarray) -> np.ndarray:
        """Exact per-feature parts of :meth:`margin`, shape (n_samples, n_features).

        ``contributions(X).sum(axis=1) + intercept_ == margin(X)``.
        """
        return _standardized(self._array(X), self.mean_, self.scale_) * self.coef_

    def _validated_margin(self, X: Any) -> np.ndarray:
        self._check_fitted()
        return self.margin(check_input(self, X, reset=False))

    @classification_only
    def decision_function(self, X: Any) -> np.ndarray:
        """Log-odds of class 1, shape (n_samples,)."""
        return self._validated_margin(X)

    @classification_only
    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities, shape (n_samples, 2)."""
        p = 1.0 / (1.0 + np.exp(-self._validated_margin(X)))
        return np.column_stack([1.0 - p, p])

    def predict(self, X: Any) -> np.ndarray:
        """Classes (``classes_[1]`` where the log-odds are positive) or readouts."""
        margin = self._validated_margin(X)
        if self.task == "classification":
            return np.asarray(self.classes_[(margin > 0).astype(int)])
        return margin

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
        if prior.task == "classification":
            prior.classes_ = np.array([0, 1])  # saved priors are fitted on 0/1 labels
        if not (prior.mean_.shape == prior.scale_.shape == prior.coef_.shape):
            raise InputError("a saved prior's mean, scale and coef differ in length")
        return prior
