"""Probability calibration fitted on out-of-fold predictions.

The boosted model's probabilities drift in calibration (early stopping, the prior's shrinkage),
so the probability a scientist reads is mapped through a calibrator fitted on the training job's
*out-of-fold* log-odds: what the model says about samples it did not see. Two standard maps are
fitted and the one with the lower cross-validated log loss is kept and recorded (or none, when
neither beats the probabilities as they are):

- ``platt``: a logistic regression on the log-odds (two numbers; smooth, never overfits much);
- ``isotonic``: a monotone step function (flexible; needs more samples).

Both come from scikit-learn (:class:`~sklearn.linear_model.LogisticRegression`,
:class:`~sklearn.isotonic.IsotonicRegression`); the fitted map is stored as plain numbers (a
slope and intercept, or the isotonic knots) so a saved model holds no pickle, and applying it
is one vectorised expression on the serving path.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import log_loss
from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold
from sklearn.utils.multiclass import check_classification_targets, type_of_target
from sklearn.utils.validation import check_is_fitted, validate_data

from nkpredict.exceptions import InputError
from nkpredict.vocabulary import CALIBRATION_METHODS, CalibrationMethod, check_choice

__all__ = ["ProbabilityCalibrator"]

_CLIP = 1e-6
_SELECTION_FOLDS = 5


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def _isotonic_knots(margin: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    # increasing for log-odds; decreasing only for a score that runs the other way
    increasing = bool(np.nan_to_num(np.corrcoef(margin, y)[0, 1], nan=1.0) >= 0)
    fitted = IsotonicRegression(
        out_of_bounds="clip", y_min=0.0, y_max=1.0, increasing=increasing
    ).fit(margin, y)
    return fitted.X_thresholds_.astype(np.float64), fitted.y_thresholds_.astype(np.float64)


def _platt(margin: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    fitted = LogisticRegression(C=100.0, solver="newton-cholesky").fit(margin[:, None], y)
    return float(fitted.coef_[0, 0]), float(fitted.intercept_[0])


def _apply(method: str, margin: np.ndarray, params: dict[str, Any]) -> np.ndarray:
    if method == "platt":
        return _sigmoid(params["slope"] * margin + params["intercept"])
    if method == "isotonic":
        return np.interp(margin, params["x"], params["y"])
    return _sigmoid(margin)


class ProbabilityCalibrator(ClassifierMixin, BaseEstimator):
    """Map a model's log-odds to calibrated P(resistant).

    Parameters
    ----------
    method : {"auto", "platt", "isotonic", "none"}
        ``auto`` fits both maps and keeps the one with the lower log loss in a stratified
        5-fold cross-validation over the calibration samples, or none when neither beats
        the probabilities as they are (isotonic needs 40 samples and 10 per class: its
        steps are too coarse below). ``none`` keeps the probabilities.
    random_state : int
        Seed of the selection folds.

    Attributes
    ----------
    method_ : str
        The map kept (``platt``, ``isotonic`` or ``none``).
    params_ : dict
        Its numbers (``slope``/``intercept`` or isotonic knots ``x``/``y``).
    selection_ : dict
        Cross-validated log loss of each candidate (what ``auto`` compared).
    classes_ : ndarray, shape (2,)
    n_features_in_ : int
        Number of log-odds columns: one per model (the mean of the columns is calibrated,
        e.g. the members of a bagged ensemble); 1 for one model.
    """

    def __init__(self, method: CalibrationMethod = "auto", random_state: int = 0) -> None:
        self.method = method
        self.random_state = random_state

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_class = False  # resistant or sensitive
        return tags

    def fit(self, X: Any, y: Any, groups: Any = None) -> ProbabilityCalibrator:
        """Fit on log-odds ``X`` (n_samples, n_models) and binary labels ``y`` (n_samples,).

        ``groups`` (n_samples,), optional: rows of one group (the same sample predicted in
        several CV repeats) stay together in the selection folds of ``auto``.

        Raises
        ------
        InputError
            Not two classes in ``y`` (a continuous target, one class, three classes).
        """
        method = check_choice(self.method, CALIBRATION_METHODS, "calibration method")
        X, y = validate_data(self, X, y, ensure_min_samples=2)
        check_classification_targets(y)
        if type_of_target(y) != "binary":
            raise InputError(
                "Only binary classification is supported: calibration needs two classes; "
                f"got {len(np.unique(y))} (the type of the target is {type_of_target(y)})"
            )
        self.classes_, target = np.unique(y, return_inverse=True)
        if len(self.classes_) < 2:
            raise InputError(
                f"calibration needs two classes; y holds one class ({self.classes_[0]})"
            )
        margin = X.mean(axis=1, dtype=np.float64)
        target = target.astype(np.float64)
        self.selection_: dict[str, float] = {}
        chosen: str = self._select(margin, target, groups) if method == "auto" else method
        self.method_ = chosen
        self.params_ = self._fit_map(chosen, margin, target)
        return self

    @staticmethod
    def _fit_map(method: str, margin: np.ndarray, target: np.ndarray) -> dict[str, Any]:
        if method == "platt":
            slope, intercept = _platt(margin, target)
            return {"slope": slope, "intercept": intercept}
        if method == "isotonic":
            x, y = _isotonic_knots(margin, target)
            return {"x": x, "y": y}
        return {}

    def _select(self, margin: np.ndarray, target: np.ndarray, groups: Any) -> str:
        """The candidate with the lower cross-validated log loss."""
        n_minority = int(min(target.sum(), len(target) - target.sum()))
        candidates = ["none", "platt"]
        if len(target) >= 40 and n_minority >= 10:
            candidates.append("isotonic")
        n_splits = max(2, min(_SELECTION_FOLDS, n_minority))
        folds = (
            StratifiedKFold(n_splits, shuffle=True, random_state=self.random_state)
            if groups is None
            else StratifiedGroupKFold(n_splits, shuffle=True, random_state=self.random_state)
        )
        splits = list(folds.split(margin[:, None], target, groups))
        for method in candidates:
            predicted = np.empty_like(margin)
            for train, test in splits:
                params = self._fit_map(method, margin[train], target[train])
                predicted[test] = _apply(method, margin[test], params)
            self.selection_[method] = float(
                log_loss(target, np.clip(predicted, _CLIP, 1 - _CLIP), labels=[0.0, 1.0])
            )
        return min(candidates, key=self.selection_.__getitem__)

    def calibrate(self, margin: np.ndarray) -> np.ndarray:
        """Calibrated P(resistant) of log-odds ``margin`` (n_samples,), float64."""
        if not hasattr(self, "method_"):  # check_is_fitted costs more than the map itself
            check_is_fitted(self, "method_")
        return _apply(self.method_, np.asarray(margin, dtype=np.float64), self.params_)

    def predict_proba(self, X: Any) -> np.ndarray:
        """Calibrated probabilities (n_samples, 2) of log-odds ``X`` (n_samples, n_models)."""
        check_is_fitted(self, "method_")
        X = validate_data(self, X, reset=False)
        resistant = self.calibrate(X.mean(axis=1, dtype=np.float64))
        return np.column_stack([1.0 - resistant, resistant])

    def predict(self, X: Any) -> np.ndarray:
        """The more probable class of each row of ``X``."""
        best = self.predict_proba(X).argmax(axis=1)  # checks it is fitted first
        return self.classes_[best]

    # ------------------------------------------------------------------ persistence
    def to_dict(self) -> dict[str, Any]:
        """The fitted map as plain JSON data."""
        check_is_fitted(self, "method_")
        return {
            "method": self.method_,
            "params": {k: np.asarray(v).tolist() for k, v in self.params_.items()},
            "selection": self.selection_,
            "n_features_in": self.n_features_in_,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ProbabilityCalibrator:
        """Rebuild a calibrator written by :meth:`to_dict`."""
        calibrator = cls(method=data["method"])
        calibrator.method_ = data["method"]
        params = data["params"]
        calibrator.params_ = {
            k: (np.asarray(v, dtype=np.float64) if isinstance(v, list) else float(v))
            for k, v in params.items()
        }
        calibrator.selection_ = dict(data.get("selection", {}))
        calibrator.classes_ = np.array([0, 1])
        calibrator.n_features_in_ = int(data.get("n_features_in", 1))
        return calibrator
