"""Metrics of predictions: point values, percentile-bootstrap intervals, calibration, the oracle.

Metrics
-------
Classification: ``roc_auc``, ``pr_auc`` (average precision), ``brier`` and
``balanced_accuracy`` (calls at probability 0.5). Regression: ``rmse`` and ``spearman``. A
metric that is undefined on its data (one class only, a constant vector, no samples) is NaN and
is skipped when metrics are averaged.

Each metric function takes ``y_true`` and ``y_pred`` of shape (n_rows, n_samples) and returns
shape (n_rows,), so the same code scores one prediction vector and a whole matrix of bootstrap
resamples (:func:`bootstrap_indices`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import rankdata

from nkpredict.exceptions import InputError, LabelError
from nkpredict.vocabulary import TASKS, Task, check_choice

__all__ = [
    "CI_LEVEL",
    "CLASSIFICATION_THRESHOLD",
    "HIGHER_IS_BETTER",
    "METRICS",
    "MIN_BOOTSTRAP_GROUPS",
    "ORACLE_METRICS",
    "PRIMARY_METRIC",
    "MetricFunction",
    "Resamples",
    "bootstrap_indices",
    "calibration_table",
    "check_binary",
    "classification_metrics",
    "group_bootstrap_indices",
    "metric_function",
    "oracle_metrics",
    "percentile_interval",
    "regression_metrics",
    "resample",
    "resample_counts",
    "resampled_metric",
    "score",
    "score_with_intervals",
    "weighted_roc_auc",
]

MetricFunction = Callable[[np.ndarray, np.ndarray], np.ndarray]
"""``metric(y_true, y_pred)``, both of shape (n_rows, n_samples), returns shape (n_rows,)."""

Resamples = np.ndarray | list[np.ndarray]
"""Bootstrap resamples of sample positions: one row per resample, shape (n_bootstrap, n) when
every resample has the same size (sample bootstrap), else a list of position arrays (group
bootstrap, where resamples of whole groups differ in size)."""

CI_LEVEL = 0.95
CLASSIFICATION_THRESHOLD = 0.5
MIN_BOOTSTRAP_GROUPS = 10
"""Fewer groups than this make :func:`group_bootstrap_indices` warn."""

logger = logging.getLogger(__name__)


# ---------------------------------------------------------------------------- metrics


def _class_counts(y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    n_pos = y.sum(axis=1)
    return n_pos, y.shape[1] - n_pos


def _roc_auc(y: np.ndarray, p: np.ndarray) -> np.ndarray:
    """Mann-Whitney AUC with average ranks for ties (identical to ``roc_auc_score``)."""
    n_pos, n_neg = _class_counts(y)
    ranks = rankdata(p, axis=1)
    u = (ranks * y).sum(axis=1) - n_pos * (n_pos + 1) / 2.0
    defined = (n_pos > 0) & (n_neg > 0)
    return np.where(defined, u / np.where(defined, n_pos * n_neg, 1.0), np.nan)


def _average_precision_row(y: np.ndarray, p: np.ndarray) -> float:
    order = np.argsort(-p, kind="mergesort")
    y_sorted, p_sorted = y[order], p[order]
    last_of_tie = np.r_[np.flatnonzero(np.diff(p_sorted)), y.size - 1]
    tps = np.cumsum(y_sorted)[last_of_tie]
    if tps[-1] == 0:
        return np.nan
    precision = tps / (last_of_tie + 1.0)
    recall = tps / tps[-1]
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def _pr_auc(y: np.ndarray, p: np.ndarray) -> np.ndarray:
    """Average precision (step-wise, as ``average_precision_score``); NaN without positives."""
    return np.array([_average_precision_row(yi, pi) for yi, pi in zip(y, p, strict=True)])


def _brier(y: np.ndarray, p: np.ndarray) -> np.ndarray:
    return ((p - y) ** 2).mean(axis=1) if y.shape[1] else np.full(y.shape[0], np.nan)


def _balanced_accuracy(y: np.ndarray, p: np.ndarray) -> np.ndarray:
    n_pos, n_neg = _class_counts(y)
    called = p >= CLASSIFICATION_THRESHOLD
    defined = (n_pos > 0) & (n_neg > 0)
    tpr = (called * y).sum(axis=1) / np.where(defined, n_pos, 1.0)
    tnr = (~called * (1.0 - y)).sum(axis=1) / np.where(defined, n_neg, 1.0)
    return np.where(defined, (tpr + tnr) / 2.0, np.nan)


def _rmse(y: np.ndarray, p: np.ndarray) -> np.ndarray:
    return np.sqrt(_brier(y, p))


def _spearman(y: np.ndarray, p: np.ndarray) -> np.ndarray:
    ry = rankdata(y, axis=1)
    rp = rankdata(p, axis=1)
    ry -= ry.mean(axis=1, keepdims=True)
    rp -= rp.mean(axis=1, keepdims=True)
    denom = np.sqrt((ry**2).sum(axis=1) * (rp**2).sum(axis=1))
    defined = denom > 0
    return np.where(defined, (ry * rp).sum(axis=1) / np.where(defined, denom, 1.0), np.nan)


METRICS: dict[Task, dict[str, MetricFunction]] = {
    "classification": {
        "roc_auc": _roc_auc,
        "pr_auc": _pr_auc,
        "brier": _brier,
        "balanced_accuracy": _balanced_accuracy,
    },
    "regression": {"rmse": _rmse, "spearman": _spearman},
}
"""Metric functions per task, in reporting order."""
HIGHER_IS_BETTER: dict[str, bool] = {
    "roc_auc": True,
    "pr_auc": True,
    "brier": False,
    "balanced_accuracy": True,
    "rmse": False,
    "spearman": True,
}
PRIMARY_METRIC: dict[Task, str] = {"classification": "roc_auc", "regression": "rmse"}
"""The metric that ranks models of each task (summary fold sd, model comparison)."""
ORACLE_METRICS: dict[Task, tuple[str, ...]] = {
    "classification": ("roc_auc", "pr_auc", "brier"),
    "regression": ("rmse", "spearman"),
}


def metric_function(task: Task, metric: str) -> MetricFunction:
    """The function of ``metric`` for ``task``; :class:`InputError` for an unknown metric."""
    try:
        return METRICS[task][metric]
    except KeyError:
        known = ", ".join(METRICS[task])
        raise InputError(f"unknown {task} metric {metric!r}; known: {known}") from None


def check_binary(y: np.ndarray) -> None:
    """Raise :class:`LabelError` unless every label of ``y`` (any shape) is 0 or 1."""
    if not np.isin(y, (0, 1)).all():
        raise LabelError("classification labels must be 0 (sensitive) or 1 (resistant)")


def _paired_arrays(y_true: Any, y_pred: Any) -> tuple[np.ndarray, np.ndarray]:
    """Float arrays of equal length, pairs with a NaN prediction dropped."""
    y = np.asarray(y_true, dtype=np.float64).ravel()
    p = np.asarray(y_pred, dtype=np.float64).ravel()
    if y.shape != p.shape:
        raise InputError(f"{y.size} labels but {p.size} predictions")
    if np.isnan(y).any():
        raise LabelError("labels contain missing values")
    keep = ~np.isnan(p)
    return y[keep], p[keep]


def score(task: Task, y_true: Any, y_pred: Any) -> dict[str, float]:
    """All metrics of ``task`` for one prediction vector.

    Parameters
    ----------
    task : {"classification", "regression"}
    y_true : array-like, shape (n_samples,)
        0/1 labels (classification) or readouts (regression).
    y_pred : array-like, shape (n_samples,)
        Probability of class 1, or predicted readout; NaN predictions are skipped.

    Returns
    -------
    dict
        Metric name -> value (NaN where undefined).
    """
    task = check_choice(task, TASKS, "task")
    y, p = _paired_arrays(y_true, y_pred)
    if task == "classification":
        check_binary(y)
    if y.size == 0:
        return dict.fromkeys(METRICS[task], np.nan)
    return {name: float(fn(y[None, :], p[None, :])[0]) for name, fn in METRICS[task].items()}


def score_with_intervals(
    task: Task, y_true: Any, y_pred: Any, n_bootstrap: int = 1000, seed: int = 0
) -> dict[str, float]:
    """Metrics of one prediction vector with 95% percentile-bootstrap intervals.

    Used to score a fixed model on new data (no cross-validation). Returns ``<metric>``,
    ``<metric>_ci_low`` and ``<metric>_ci_high`` for every metric of ``task``; classification
    resamples within each class, as :meth:`~nkpredict.evaluate.cv.CVResult.summary` does.
    """
    point = score(task, y_true, y_pred)
    y, p = _paired_arrays(y_true, y_pred)
    indices = bootstrap_indices(y, n_bootstrap, seed, stratify=task == "classification")
    out: dict[str, float] = {}
    for name, fn in METRICS[task].items():
        values = fn(y[indices], p[indices]) if y.size else np.full(n_bootstrap, np.nan)
        low, high = percentile_interval(values)
        out |= {name: point[name], f"{name}_ci_low": low, f"{name}_ci_high": high}
    return out


def classification_metrics(y_true: Any, y_prob: Any) -> dict[str, float]:
    """``roc_auc``, ``pr_auc``, ``brier``, ``balanced_accuracy`` of probabilities.

    ``y_true`` (n_samples,) holds 0/1 labels, ``y_prob`` (n_samples,) the probability of
    class 1. Ranking metrics and balanced accuracy are NaN when only one class is present.
    """
    return score("classification", y_true, y_prob)


def regression_metrics(y_true: Any, y_pred: Any) -> dict[str, float]:
    """``rmse`` and ``spearman`` of predicted readouts, both of shape (n_samples,)."""
    return score("regression", y_true, y_pred)


def oracle_metrics(y_true: Any, true_probability: Any, task: Task) -> dict[str, float]:
    """Score the generator's own probabilities (or expected readouts) like a model's.

    On simulated cohorts this is the best achievable score, to be reported next to the
    model's (``oracle_roc_auc``, ``oracle_pr_auc``, ``oracle_brier``; for regression
    ``oracle_rmse`` and ``oracle_spearman``).
    """
    metrics = score(task, y_true, true_probability)
    return {f"oracle_{name}": metrics[name] for name in ORACLE_METRICS[task]}


def calibration_table(y_true: Any, y_prob: Any, n_bins: int = 10) -> pd.DataFrame:
    """Reliability table over quantile bins of the predicted probability.

    Parameters
    ----------
    y_true : array-like, shape (n_samples,)
        0/1 labels.
    y_prob : array-like, shape (n_samples,)
        Predicted probability of class 1 (NaN entries are left out).
    n_bins : int
        Number of quantile bins; fewer when many probabilities are tied.

    Returns
    -------
    DataFrame, shape (n_nonempty_bins, 4)
        ``bin`` (0-based), ``mean_predicted``, ``fraction_positive``, ``count``.
    """
    if n_bins < 1:
        raise InputError(f"n_bins must be at least 1, got {n_bins}")
    y, p = _paired_arrays(y_true, y_prob)
    check_binary(y)
    if p.size == 0:
        raise InputError("no predictions to build a calibration table from")
    edges = np.unique(np.quantile(p, np.linspace(0.0, 1.0, n_bins + 1)))
    bins = np.searchsorted(edges[1:-1], p, side="right")
    table = (
        pd.DataFrame({"bin": bins, "predicted": p, "observed": y})
        .groupby("bin")
        .agg(
            mean_predicted=("predicted", "mean"),
            fraction_positive=("observed", "mean"),
            count=("observed", "size"),
        )
        .reset_index()
    )
    return table.astype({"bin": int, "count": int})


# ---------------------------------------------------------------------------- bootstrap


def bootstrap_indices(y: np.ndarray, n_bootstrap: int, seed: int, stratify: bool) -> np.ndarray:
    """Resampled sample positions, shape (n_bootstrap, n_samples); within class if stratified."""
    if y.size == 0:
        return np.empty((n_bootstrap, 0), dtype=np.intp)
    rng = np.random.default_rng(seed)
    strata = [np.flatnonzero(y == c) for c in np.unique(y)] if stratify else [np.arange(y.size)]
    return np.concatenate(
        [rng.choice(s, size=(n_bootstrap, s.size), replace=True) for s in strata], axis=1
    )


def group_bootstrap_indices(groups: np.ndarray, n_bootstrap: int, seed: int) -> list[np.ndarray]:
    """Resamples of whole groups: each draws as many groups as there are, with replacement.

    Parameters
    ----------
    groups : ndarray, shape (n_samples,)
        Group label of each sample (cell line, patient).
    n_bootstrap : int
    seed : int

    Returns
    -------
    list of ndarray
        ``n_bootstrap`` arrays of sample positions; a drawn group brings all its samples, so
        a sample appears exactly as often as its group was drawn.
    """
    codes, _ = pd.factorize(np.asarray(groups, dtype=object), sort=True)
    members = [np.flatnonzero(codes == c) for c in range(codes.max(initial=-1) + 1)]
    if 0 < len(members) < MIN_BOOTSTRAP_GROUPS:
        logger.warning(
            "bootstrap over only %d groups: its intervals are rough (a percentile bootstrap "
            "needs %d or more groups to be trusted)",
            len(members),
            MIN_BOOTSTRAP_GROUPS,
        )
    if not members:
        return [np.empty(0, dtype=np.intp) for _ in range(n_bootstrap)]
    drawn = np.random.default_rng(seed).integers(0, len(members), size=(n_bootstrap, len(members)))
    return [np.concatenate([members[c] for c in row]) for row in drawn]


def resample(
    y: np.ndarray, n_bootstrap: int, seed: int, stratify: bool, groups: np.ndarray | None = None
) -> Resamples:
    """The bootstrap of one evaluation: whole groups when ``groups`` (n_samples,) is given,
    else samples (within class when ``stratify``); see :func:`bootstrap_indices` and
    :func:`group_bootstrap_indices`."""
    if groups is not None:
        return group_bootstrap_indices(groups, n_bootstrap, seed)
    return bootstrap_indices(y, n_bootstrap, seed, stratify)


def resampled_metric(
    fn: MetricFunction, y: np.ndarray, predictions: np.ndarray, resamples: Resamples
) -> np.ndarray:
    """The mean over repeats of ``fn`` on every resample, shape (n_resamples,).

    Parameters
    ----------
    fn : MetricFunction
    y : ndarray, shape (n_samples,)
    predictions : ndarray, shape (n_samples, n_repeats)
        One column of out-of-fold predictions per cross-validation repeat.
    resamples : Resamples
        Positions into ``y``; ``np.arange(n)[None, :]`` gives the point estimate itself.

    Returns
    -------
    ndarray
        NaN where the metric is undefined in every repeat (e.g. one class drawn).
    """
    if isinstance(resamples, np.ndarray):
        if resamples.shape[1] == 0:
            return np.full(resamples.shape[0], np.nan)
        per_repeat = np.stack(
            [fn(y[resamples], predictions[:, r][resamples]) for r in range(predictions.shape[1])]
        )
    else:
        per_repeat = np.full((predictions.shape[1], len(resamples)), np.nan)
        for b, rows in enumerate(resamples):
            if rows.size:
                targets = np.broadcast_to(y[rows], (predictions.shape[1], rows.size))
                per_repeat[:, b] = fn(targets, predictions[rows].T)
    with np.errstate(invalid="ignore"):
        defined = ~np.isnan(per_repeat)
        total = np.where(defined, per_repeat, 0.0).sum(axis=0)
        count = defined.sum(axis=0)
    return np.where(count > 0, total / np.maximum(count, 1), np.nan)


def resample_counts(resamples: Resamples, n_samples: int) -> np.ndarray:
    """How often each sample is drawn in each resample, shape (n_resamples, n_samples)."""
    counts = np.zeros((len(resamples), n_samples))
    for b, rows in enumerate(resamples):
        counts[b] = np.bincount(rows, minlength=n_samples)
    return counts


def weighted_roc_auc(y: np.ndarray, p: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """ROC AUC of one prediction vector under many sample weightings at once.

    With integer weights (how often a bootstrap resample drew each sample) this equals
    :func:`_roc_auc` of the resampled vectors, ties counted one half.

    Parameters
    ----------
    y : ndarray, shape (n_samples,)
        0/1 labels.
    p : ndarray, shape (n_samples,)
        Predictions.
    weights : ndarray, shape (n_rows, n_samples)

    Returns
    -------
    ndarray, shape (n_rows,)
        NaN where a row weighs no positive or no negative sample.
    """
    if y.size == 0:
        return np.full(weights.shape[0], np.nan)
    order = np.argsort(p, kind="mergesort")
    p_sorted, y_sorted, w_sorted = p[order], y[order], weights[:, order]
    starts = np.r_[0, np.flatnonzero(np.diff(p_sorted)) + 1]
    positive = np.add.reduceat(w_sorted * y_sorted, starts, axis=1)
    negative = np.add.reduceat(w_sorted * (1.0 - y_sorted), starts, axis=1)
    below = np.cumsum(negative, axis=1) - negative
    numerator = (positive * (below + 0.5 * negative)).sum(axis=1)
    denominator = positive.sum(axis=1) * negative.sum(axis=1)
    defined = denominator > 0
    return np.where(defined, numerator / np.where(defined, denominator, 1.0), np.nan)


def percentile_interval(values: np.ndarray) -> tuple[float, float]:
    """The :data:`CI_LEVEL` percentile interval of ``values`` (n,), NaN skipped; NaNs if none."""
    finite = values[~np.isnan(values)]
    if finite.size == 0:
        return np.nan, np.nan
    tail = (1.0 - CI_LEVEL) / 2.0 * 100.0
    low, high = np.percentile(finite, [tail, 100.0 - tail])
    return float(low), float(high)
