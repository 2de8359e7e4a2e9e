"""Time-budgeted hyperparameter search for the boosted trees (Optuna, optional extra).

The search runs inside :meth:`BoostedTrees.fit`, on the training samples it is given only, so
when cross-validation fits the model per fold the tuning is nested: no outer test sample ever
influences the parameters chosen for it. Each trial fits on an inner split with early stopping
and is scored by the validation loss; the best trial's parameters (and its number of rounds) are
then used for the final fit on all of the fold's training samples.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
from sklearn.model_selection import train_test_split

from nkpredict.exceptions import InputError

__all__ = ["SEARCH_SPACE", "search_parameters"]

logger = logging.getLogger(__name__)

#: Parameters the search may change, with their ranges (``log`` marks a log-uniform range).
SEARCH_SPACE: dict[str, tuple[str, float, float]] = {
    "max_depth": ("int", 1, 5),
    "learning_rate": ("log", 0.01, 0.2),
    "min_child_weight": ("log", 0.5, 20.0),
    "subsample": ("float", 0.5, 1.0),
    "colsample_bytree": ("float", 0.2, 1.0),
    "reg_lambda": ("log", 0.1, 20.0),
}


def _suggest(trial: Any) -> dict[str, Any]:
    params: dict[str, Any] = {}
    for name, (kind, low, high) in SEARCH_SPACE.items():
        if kind == "int":
            params[name] = trial.suggest_int(name, int(low), int(high))
        else:
            params[name] = trial.suggest_float(name, low, high, log=kind == "log")
    return params


def search_parameters(
    make_estimator: Any,
    values: np.ndarray,
    target: np.ndarray,
    budget_seconds: float,
    stratify: bool,
    seed: int,
    validation_fraction: float,
) -> dict[str, Any]:
    """Search :data:`SEARCH_SPACE` for ``budget_seconds`` and return the best parameters.

    Parameters
    ----------
    make_estimator : callable
        ``make_estimator(**params)`` returns an object with ``validation_loss(x_fit, y_fit,
        x_val, y_val) -> float`` (the boosted trees with those parameters).
    values : ndarray, shape (n_samples, n_features)
    target : ndarray, shape (n_samples,)
    budget_seconds : float
        Wall-clock budget; at least one trial always runs.
    stratify : bool
        Stratify the inner split by ``target`` (classification).
    seed : int
    validation_fraction : float
        Share of samples held out to score each trial.
    """
    try:
        import optuna
    except ImportError:
        raise InputError("--tuning-budget needs Optuna: pip install 'nkpredict[tune]'") from None
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    x_fit, x_val, y_fit, y_val = train_test_split(
        values,
        target,
        test_size=validation_fraction,
        random_state=seed,
        stratify=target if stratify else None,
    )  # the same split the early stopping of the final fit uses

    def objective(trial: Any) -> float:
        return float(make_estimator(**_suggest(trial)).validation_loss(x_fit, y_fit, x_val, y_val))

    study = optuna.create_study(direction="minimize", sampler=optuna.samplers.TPESampler(seed=seed))
    study.optimize(objective, n_trials=1)
    study.optimize(objective, timeout=max(budget_seconds, 0.0), n_trials=500)
    logger.info(
        "tuning: %d trials, best validation loss %.4f with %s",
        len(study.trials),
        study.best_value,
        study.best_params,
    )
    return dict(study.best_params)
