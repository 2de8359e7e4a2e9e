"""Hyperparameter search for the boosted trees (Optuna, optional extra).

The search runs inside :meth:`BoostedTrees.fit`, on the training samples it is given only, so
when cross-validation fits the model per fold the tuning is nested: no outer test sample ever
influences the parameters chosen for it. Each trial fits on one inner split
(:func:`nkpredict.model.splits.inner_split`, whole groups on one side when the fit has groups),
starting from the prior's margins like the final fit, and is scored by the early-stopped
validation loss; the best trial's parameters are then used for the rounds search and the final
fit on all of the fold's training samples.

The budget is a number of trials (reproducible whatever the machine load), optionally capped in
time; a time budget alone (the older ``--tuning-budget``) runs trials until it is spent.
"""

from __future__ import annotations

import logging
from typing import Any

from nkpredict.exceptions import InputError
from nkpredict.model.boosting import BoostingData

__all__ = ["MAX_TIMED_TRIALS", "SEARCH_SPACE", "search_parameters"]

logger = logging.getLogger(__name__)

MAX_TIMED_TRIALS = 500
"""Trials of a search bounded by time only."""

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
    fit: BoostingData,
    validation: BoostingData,
    budget_seconds: float,
    seed: int,
    n_trials: int = 0,
) -> dict[str, Any]:
    """Search :data:`SEARCH_SPACE` and return the best parameters.

    Parameters
    ----------
    make_estimator : callable
        ``make_estimator(**params)`` returns an object with ``validation_loss(fit,
        validation) -> float`` (the boosted trees with those parameters).
    fit, validation : BoostingData
        The two sides of the inner split scoring each trial.
    budget_seconds : float
        Wall-clock cap (0 = none when ``n_trials`` is given). Without ``n_trials`` the search
        runs until this budget is spent (at most :data:`MAX_TIMED_TRIALS` trials).
    seed : int
    n_trials : int
        Number of trials (0 = bounded by ``budget_seconds`` only). At least one trial runs.
    """
    try:
        import optuna
    except ImportError:
        raise InputError(
            "--tuning-trials and --tuning-budget need Optuna: pip install 'nkpredict[tune]'"
        ) from None
    if n_trials <= 0 and budget_seconds <= 0:
        raise InputError("a parameter search needs a number of trials or a time budget")
    optuna.logging.set_verbosity(optuna.logging.WARNING)

    def objective(trial: Any) -> float:
        return float(make_estimator(**_suggest(trial)).validation_loss(fit, validation))

    study = optuna.create_study(direction="minimize", sampler=optuna.samplers.TPESampler(seed=seed))
    study.optimize(objective, n_trials=1)
    remaining = (n_trials if n_trials > 0 else MAX_TIMED_TRIALS) - 1
    timeout = budget_seconds if budget_seconds > 0 else None
    if remaining > 0:
        study.optimize(objective, n_trials=remaining, timeout=timeout)
    logger.info(
        "tuning: %d trials, best validation loss %.4f with %s",
        len(study.trials),
        study.best_value,
        study.best_params,
    )
    return dict(study.best_params)
