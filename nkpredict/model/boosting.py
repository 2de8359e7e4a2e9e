"""Gradient-boosted trees (XGBoost) with early stopping on an inner validation split.

The inner split (:func:`inner_split`) is the one place the validation samples of early
stopping and of the tuning search are chosen; given groups (cell lines, patients) it never
puts samples of one group on both sides.

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
from sklearn.model_selection import GroupShuffleSplit, StratifiedGroupKFold, train_test_split

from nkpredict.exceptions import InputError, ModelLoadError, NotFittedError
from nkpredict.vocabulary import Task

__all__ = ["BoostedTrees", "Trainer", "Validation", "boost", "inner_split", "use_trainer"]

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


def inner_split(
    target: np.ndarray,
    validation_fraction: float,
    seed: int,
    stratify: bool,
    groups: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Positions of the fitting and the validation samples of one inner split.

    Parameters
    ----------
    target : ndarray, shape (n_samples,)
    validation_fraction : float
        Share of samples (without groups) or of groups (with groups) held out.
    seed : int
    stratify : bool
        Keep the class balance (classification).
    groups : ndarray, shape (n_samples,), optional
        Group of each sample. No group is split: for classification
        ``StratifiedGroupKFold`` with ``round(1 / validation_fraction)`` folds (its first
        fold validates), otherwise ``GroupShuffleSplit``. Without groups the split is
        ``train_test_split`` (stratified for classification), as before groups existed.

    Returns
    -------
    fit, validation : ndarray of int
    """
    positions = np.arange(target.shape[0])
    if groups is None:
        fit, validation = train_test_split(
            positions,
            test_size=validation_fraction,
            random_state=seed,
            stratify=target if stratify else None,
        )
        return np.asarray(fit), np.asarray(validation)
    labels = np.asarray(groups, dtype=object)
    n_groups = np.unique(labels).size
    if n_groups < 2:
        raise InputError("an inner split by groups needs at least two groups")
    n_splits = min(n_groups, max(2, round(1.0 / validation_fraction)))
    splitter: Any
    if stratify and np.unique(target).size > 1:
        splitter = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    else:
        splitter = GroupShuffleSplit(n_splits=1, test_size=1.0 / n_splits, random_state=seed)
    fit, validation = next(splitter.split(positions, target, labels))
    return np.asarray(fit), np.asarray(validation)


class BoostedTrees(BaseEstimator):
    """An XGBoost booster tuned by early stopping, with a scikit-learn interface.

    ``fit`` holds out ``validation_fraction`` of the training samples (stratified for
    classification; whole groups when ``fit`` gets ``groups``, see :func:`inner_split`), boosts
    until the validation loss stops improving for
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
        With ``tuning_trials`` it is only a cap on the time of those trials.
    tuning_trials : int
        Number of Optuna trials inside every ``fit`` (0 = time budget only). A trial count
        makes the search independent of machine load: the same data and seed give the same
        parameters.
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
        tuning_trials: int = 0,
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
        self.tuning_trials = tuning_trials

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

    def fit(self, X: pd.DataFrame | np.ndarray, y: Any, groups: Any = None) -> BoostedTrees:
        """Fit on features ``X`` (n_samples, n_features) and target ``y`` (n_samples,).

        ``groups`` (n_samples,), optional: group of each sample; the inner split of early
        stopping and tuning then keeps every group on one side (:func:`inner_split`).
        """
        values = np.asarray(X, dtype=np.float32)
        target = np.asarray(y, dtype=np.float32)
        if values.shape[0] != target.shape[0] or values.shape[0] == 0:
            raise InputError("features and target must have the same, non-zero number of rows")
        labels = None if groups is None else np.asarray(groups, dtype=object)
        if labels is not None and labels.shape[0] != values.shape[0]:
            raise InputError("groups must have one label per training sample")
        self.feature_names_in_ = (
            np.asarray(X.columns, dtype=object) if isinstance(X, pd.DataFrame) else None
        )
        tuned = self.tuning_budget > 0 or self.tuning_trials > 0
        trees = self._tuned(values, target, labels) if tuned else self
        self.n_rounds_ = trees._rounds_by_early_stopping(values, target, labels)
        self.booster_ = boost(trees.xgb_params(), values, target, self.n_rounds_)
        return self

    def _tuned(
        self, values: np.ndarray, target: np.ndarray, groups: np.ndarray | None
    ) -> BoostedTrees:
        """A copy with the parameters found by the search (kept in tuned_params_)."""
        from nkpredict.model.tuning import search_parameters

        def untuned(**params: Any) -> BoostedTrees:
            return clone(self).set_params(tuning_budget=0.0, tuning_trials=0, **params)

        fit, validation = self.inner_positions(target, groups)
        self.tuned_params_ = search_parameters(
            untuned,
            values,
            target,
            self.tuning_budget,
            fit=fit,
            validation=validation,
            seed=self.random_state,
            n_trials=self.tuning_trials,
        )
        return untuned(**self.tuned_params_)

    def inner_positions(
        self, target: np.ndarray, groups: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Fitting and validation positions of early stopping and tuning (:func:`inner_split`).

        With fewer than two groups the split falls back to samples (with a warning).
        """
        if groups is not None and np.unique(groups).size < 2:
            logger.warning("one group only: the inner split splits samples, not groups")
            groups = None
        return inner_split(
            target,
            self.validation_fraction,
            self.random_state,
            stratify=self.task == "classification",
            groups=groups,
        )

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

    def _rounds_by_early_stopping(
        self, values: np.ndarray, target: np.ndarray, groups: np.ndarray | None = None
    ) -> int:
        if not self.early_stopping_rounds or values.shape[0] < _MIN_SAMPLES_FOR_EARLY_STOPPING:
            return self.n_estimators
        fit, validation = self.inner_positions(target, groups)
        booster = self._early_stopped(
            values[fit], target[fit], values[validation], target[validation]
        )
        rounds = int(booster.best_iteration) + 1
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
