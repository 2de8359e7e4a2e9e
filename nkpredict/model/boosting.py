"""Gradient-boosted trees (XGBoost) with early stopping on an inner validation split.

Every boosting run goes through :func:`boost`. By default it calls :func:`xgboost.train`
in-process; :func:`use_trainer` swaps in another :data:`Trainer` for the runs started inside
its ``with`` block (``training.engines`` uses it to boost through ``xgboost.dask`` on a
cluster). Whatever trains the trees, the fitted :class:`BoostedTrees` holds a plain
:class:`xgboost.Booster`, so saving, serving and explaining never depend on the trainer.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

import numpy as np
import pandas as pd
import xgboost as xgb
from sklearn.base import BaseEstimator, clone
from sklearn.model_selection import train_test_split

from nkpredict.exceptions import InputError, ModelLoadError, NotFittedError
from nkpredict.vocabulary import Task

__all__ = ["BoostedTrees", "Trainer", "Validation", "boost", "use_trainer"]

logger = logging.getLogger(__name__)

_MIN_SAMPLES_FOR_EARLY_STOPPING = 40

Validation = tuple[np.ndarray, np.ndarray]
Trainer = Callable[
    [dict[str, Any], np.ndarray, np.ndarray, int, Validation | None, int | None], xgb.Booster
]
"""``trainer(params, x, y, num_boost_round, validation, early_stopping_rounds) -> Booster``.

``x`` is float32 (n_samples, n_features), ``y`` float32 (n_samples,); ``validation`` is
``(x_val, y_val)`` or None. With a validation set the trainer stops early like
:func:`xgboost.train` and the booster's ``best_iteration`` is set."""

_TRAINER: ContextVar[Trainer | None] = ContextVar("nkpredict_trainer", default=None)


@contextmanager
def use_trainer(trainer: Trainer) -> Iterator[None]:
    """Boost with ``trainer`` instead of in-process :func:`xgboost.train` inside the block.

    The choice is a context variable: it applies to the current thread (or task) only.
    """
    token = _TRAINER.set(trainer)
    try:
        yield
    finally:
        _TRAINER.reset(token)


def boost(
    params: dict[str, Any],
    x: np.ndarray,
    y: np.ndarray,
    num_boost_round: int,
    validation: Validation | None = None,
    early_stopping_rounds: int | None = None,
) -> xgb.Booster:
    """One boosting run with the current :data:`Trainer` (default: :func:`xgboost.train`)."""
    trainer = _TRAINER.get()
    if trainer is not None:
        return trainer(params, x, y, num_boost_round, validation, early_stopping_rounds)
    evals = [] if validation is None else [(xgb.DMatrix(*validation), "validation")]
    return xgb.train(
        params,
        xgb.DMatrix(x, label=y),
        num_boost_round=num_boost_round,
        evals=evals,
        early_stopping_rounds=early_stopping_rounds,
        verbose_eval=False,
    )


class BoostedTrees(BaseEstimator):
    """An XGBoost booster tuned by early stopping, with a scikit-learn interface.

    ``fit`` holds out ``validation_fraction`` of the training samples (stratified for
    classification), boosts until the validation loss stops improving for
    ``early_stopping_rounds`` rounds, then refits on all samples with the number of rounds
    found. The fitted booster is plain XGBoost (saved as UBJ/JSON, no pickles).

    Parameters
    ----------
    task : {"classification", "regression"}
    n_estimators : int
        Maximum number of boosting rounds.
    max_depth, learning_rate, subsample, colsample_bytree, min_child_weight, reg_lambda
        XGBoost tree parameters.
    early_stopping_rounds : int or None
        ``None`` or 0 switches early stopping off (all ``n_estimators`` rounds are used).
    validation_fraction : float
        Share of samples held out for early stopping.
    n_jobs : int or None
        Threads for XGBoost (``None``: all cores). One by default: the feature matrices are
        narrow, and multi-threaded boosting of shallow trees is slower than one thread on
        small data and collapses when other processes share the cores.
    device : str
        ``"cpu"`` or ``"cuda"``.
    random_state : int
    tuning_budget : float
        Seconds of Optuna search over tree parameters inside every ``fit`` (0 = off); see
        :mod:`nkpredict.model.tuning`. Because it runs inside ``fit``, cross-validation is nested.
    """

    def __init__(
        self,
        task: Task = "classification",
        n_estimators: int = 800,
        max_depth: int = 2,
        learning_rate: float = 0.03,
        subsample: float = 0.8,
        colsample_bytree: float = 0.5,
        min_child_weight: float = 3.0,
        reg_lambda: float = 1.0,
        early_stopping_rounds: int | None = 40,
        validation_fraction: float = 0.2,
        n_jobs: int | None = 1,
        device: str = "cpu",
        random_state: int = 0,
        tuning_budget: float = 0.0,
    ) -> None:
        self.task = task
        self.n_estimators = n_estimators
        self.max_depth = max_depth
        self.learning_rate = learning_rate
        self.subsample = subsample
        self.colsample_bytree = colsample_bytree
        self.min_child_weight = min_child_weight
        self.reg_lambda = reg_lambda
        self.early_stopping_rounds = early_stopping_rounds
        self.validation_fraction = validation_fraction
        self.n_jobs = n_jobs
        self.device = device
        self.random_state = random_state
        self.tuning_budget = tuning_budget

    def xgb_params(self) -> dict[str, Any]:
        """The XGBoost training parameters these settings stand for."""
        params: dict[str, Any] = {
            "objective": "binary:logistic" if self.task == "classification" else "reg:squarederror",
            "eval_metric": "logloss" if self.task == "classification" else "rmse",
            "tree_method": "hist",
            "max_depth": self.max_depth,
            "eta": self.learning_rate,
            "subsample": self.subsample,
            "colsample_bytree": self.colsample_bytree,
            "min_child_weight": self.min_child_weight,
            "lambda": self.reg_lambda,
            "device": self.device,
            "seed": self.random_state,
        }
        if self.n_jobs is not None:
            params["nthread"] = self.n_jobs
        return params

    def fit(self, X: pd.DataFrame | np.ndarray, y: Any) -> BoostedTrees:
        """Fit on features ``X`` (n_samples, n_features) and target ``y`` (n_samples,)."""
        values = np.asarray(X, dtype=np.float32)
        target = np.asarray(y, dtype=np.float32)
        if values.shape[0] != target.shape[0] or values.shape[0] == 0:
            raise InputError("features and target must have the same, non-zero number of rows")
        self.feature_names_in_ = (
            np.asarray(X.columns, dtype=object) if isinstance(X, pd.DataFrame) else None
        )
        trees = self._tuned(values, target) if self.tuning_budget > 0 else self
        self.n_rounds_ = trees._rounds_by_early_stopping(values, target)
        self.booster_ = boost(trees.xgb_params(), values, target, self.n_rounds_)
        return self

    def _tuned(self, values: np.ndarray, target: np.ndarray) -> BoostedTrees:
        """A copy with the parameters found by the time-budgeted search (kept in tuned_params_)."""
        from nkpredict.model.tuning import search_parameters

        def untuned(**params: Any) -> BoostedTrees:
            return clone(self).set_params(tuning_budget=0.0, **params)

        self.tuned_params_ = search_parameters(
            untuned,
            values,
            target,
            self.tuning_budget,
            stratify=self.task == "classification",
            seed=self.random_state,
            validation_fraction=self.validation_fraction,
        )
        return untuned(**self.tuned_params_)

    def _inner_split(self, values: np.ndarray, target: np.ndarray) -> list[np.ndarray]:
        stratify = target if self.task == "classification" else None
        split: list[np.ndarray] = train_test_split(
            values,
            target,
            test_size=self.validation_fraction,
            random_state=self.random_state,
            stratify=stratify,
        )
        return split

    def _early_stopped(
        self, x_fit: np.ndarray, y_fit: np.ndarray, x_val: np.ndarray, y_val: np.ndarray
    ) -> xgb.Booster:
        return boost(
            self.xgb_params(),
            x_fit,
            y_fit,
            self.n_estimators,
            (x_val, y_val),
            self.early_stopping_rounds or self.n_estimators,
        )

    def validation_loss(
        self, x_fit: np.ndarray, y_fit: np.ndarray, x_val: np.ndarray, y_val: np.ndarray
    ) -> float:
        """Best validation loss (log loss or RMSE) of an early-stopped fit on ``x_fit``."""
        return float(self._early_stopped(x_fit, y_fit, x_val, y_val).best_score)

    def _rounds_by_early_stopping(self, values: np.ndarray, target: np.ndarray) -> int:
        if not self.early_stopping_rounds or values.shape[0] < _MIN_SAMPLES_FOR_EARLY_STOPPING:
            return self.n_estimators
        x_fit, x_val, y_fit, y_val = self._inner_split(values, target)
        rounds = int(self._early_stopped(x_fit, y_fit, x_val, y_val).best_iteration) + 1
        logger.debug("early stopping chose %d boosting rounds", rounds)
        return rounds

    def _booster(self) -> xgb.Booster:
        if not hasattr(self, "booster_"):
            raise NotFittedError("BoostedTrees is not fitted")
        return self.booster_

    def predict_margin(self, X: pd.DataFrame | np.ndarray) -> np.ndarray:
        """Raw model output (log-odds for classification), shape (n_samples,)."""
        values = np.asarray(X, dtype=np.float32)
        return np.asarray(self._booster().inplace_predict(values, predict_type="margin"))

    def predict_proba(self, X: pd.DataFrame | np.ndarray) -> np.ndarray:
        """Class probabilities, shape (n_samples, 2); column 1 is "resistant"."""
        if self.task != "classification":
            raise InputError("predict_proba is only defined for classification models")
        p = 1.0 / (1.0 + np.exp(-self.predict_margin(X)))
        return np.column_stack([1.0 - p, p])

    def predict(self, X: pd.DataFrame | np.ndarray) -> np.ndarray:
        """0/1 calls at probability 0.5 (classification) or predicted scores (regression)."""
        if self.task == "classification":
            return (self.predict_proba(X)[:, 1] >= 0.5).astype(int)
        return self.predict_margin(X)

    def save(self, path: str) -> None:
        """Write the booster in XGBoost's own format (``.ubj`` or ``.json``)."""
        self._booster().save_model(path)

    @classmethod
    def load(cls, path: str, params: dict[str, Any], n_rounds: int) -> BoostedTrees:
        """Rebuild a fitted instance from a saved booster and its constructor parameters."""
        model = cls(**params)
        model.booster_ = xgb.Booster()
        try:
            model.booster_.load_model(path)
        except xgb.core.XGBoostError as exc:
            raise ModelLoadError(f"corrupted or unreadable booster at {path}: {exc}") from exc
        model.n_rounds_ = n_rounds
        model.feature_names_in_ = None
        return model
