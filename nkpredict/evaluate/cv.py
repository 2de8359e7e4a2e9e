"""Honest evaluation: grouped cross-validation, baselines on the same folds, metrics with CIs.

Every estimator is given as a *factory* returning an unfitted scikit-learn-style estimator that
takes the prepared matrix (samples x HGNC symbols, log2(TPM+1)) and is fitted from scratch on
every training fold, so every data-dependent step (gene statistics, scaling, genome-wide gene
selection) sees only that fold's training samples. All estimators share the same folds
(:func:`~nkpredict.evaluate.folds.make_folds`), which makes their comparison paired; the
baselines are in :mod:`nkpredict.evaluate.baselines`, the metrics in
:mod:`nkpredict.evaluate.metrics`.

Point estimates and intervals (:meth:`CVResult.summary`)
---------------------------------------------------------
The point estimate is the mean over repeats of the metric computed on that repeat's pooled
out-of-fold predictions (pooling avoids the noise of tiny folds, where AUC is often undefined).
The 95% interval is a percentile bootstrap over *samples*: samples are resampled with
replacement (within each class for classification, so every resample keeps the observed
prevalence and AUC stays defined) and the metric is recomputed on the per-sample predictions
averaged over repeats. It reflects the sampling uncertainty of the cohort, which dominates for
the cohort sizes of NK screens; the fold-to-fold spread is reported separately as
``*_fold_sd``. Every estimator is bootstrapped with the same resampled indices.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from nkpredict.evaluate.folds import Fold, align_groups, leave_one_group_out_folds, target_values
from nkpredict.evaluate.metrics import (
    HIGHER_IS_BETTER,
    METRICS,
    PRIMARY_METRIC,
    bootstrap_indices,
    metric_function,
    percentile_interval,
    score,
)
from nkpredict.exceptions import InputError, LabelError
from nkpredict.vocabulary import TASKS, Task, check_choice

__all__ = [
    "MODEL_NAME",
    "CVResult",
    "EstimatorFactory",
    "cross_validate",
    "leave_one_group_out",
    "metric_prefix",
    "paired_difference",
]

logger = logging.getLogger(__name__)

EstimatorFactory = Callable[[], Any]
"""A callable returning an unfitted estimator (``fit`` and ``predict_proba`` or ``predict``)."""

MODEL_NAME = "nkpredict"
"""Estimator name whose metrics are reported without the ``baseline_<name>_`` prefix."""


def _nanmean(values: Any) -> float:
    finite = np.asarray(values, dtype=np.float64)
    finite = finite[~np.isnan(finite)]
    return float(finite.mean()) if finite.size else np.nan


def _nanstd(values: Any) -> float:
    finite = np.asarray(values, dtype=np.float64)
    finite = finite[~np.isnan(finite)]
    return float(finite.std(ddof=1)) if finite.size > 1 else np.nan


# ---------------------------------------------------------------------------- CV result


def metric_prefix(estimator: str) -> str:
    """Prefix of an estimator's summary metrics: ``cv_`` or ``baseline_<name>_cv_``."""
    return "cv_" if estimator == MODEL_NAME else f"baseline_{estimator}_cv_"


@dataclass
class CVResult:
    """Out-of-fold predictions and per-fold metrics of one cross-validation.

    Attributes
    ----------
    task : {"classification", "regression"}
    predictions : DataFrame, shape (n_estimators * n_repeats * n_samples, 6)
        ``estimator``, ``repeat``, ``fold``, ``sample_id``, ``y_true``, ``y_pred``
        (probability of class 1 or predicted readout; NaN for samples of unfitted folds).
    fold_metrics : DataFrame
        ``estimator``, ``repeat``, ``fold``, ``metric``, ``value`` (NaN where undefined).
    """

    task: Task
    predictions: pd.DataFrame
    fold_metrics: pd.DataFrame

    @property
    def estimators(self) -> list[str]:
        """Names of the cross-validated estimators, in fitting order."""
        return list(dict.fromkeys(self.predictions["estimator"]))

    def _rows(self, estimator: str) -> pd.DataFrame:
        if estimator not in self.estimators:
            known = ", ".join(self.estimators)
            raise InputError(f"no estimator {estimator!r} in this result; known: {known}")
        return self.predictions[self.predictions["estimator"] == estimator]

    def pooled(self, estimator: str) -> pd.DataFrame:
        """Per-sample label and prediction averaged over repeats.

        Returns
        -------
        DataFrame, shape (n_samples, 2)
            Indexed by ``sample_id``: ``y_true``, ``y_pred``.
        """
        return (
            self._rows(estimator)
            .groupby("sample_id", sort=False)
            .agg(y_true=("y_true", "first"), y_pred=("y_pred", "mean"))
        )

    def repeat_metrics(self, estimator: str) -> pd.DataFrame:
        """Metrics of each repeat's pooled out-of-fold predictions, shape (n_repeats, n_metrics)."""
        rows = {
            repeat: score(self.task, part["y_true"], part["y_pred"])
            for repeat, part in self._rows(estimator).groupby("repeat")
        }
        return pd.DataFrame.from_dict(rows, orient="index").rename_axis("repeat")

    def fold_sd(self, estimator: str, metric: str) -> float:
        """Standard deviation of ``metric`` over all folds of all repeats (NaN folds skipped)."""
        table = self.fold_metrics
        chosen = table[(table["estimator"] == estimator) & (table["metric"] == metric)]
        return _nanstd(chosen["value"])

    def _bootstrap_values(
        self, estimator: str, metric: str, indices: np.ndarray, pooled: pd.DataFrame
    ) -> np.ndarray:
        fn = metric_function(self.task, metric)
        if indices.shape[1] == 0:
            return np.full(indices.shape[0], np.nan)
        y = pooled["y_true"].to_numpy(dtype=np.float64)
        p = pooled[estimator].to_numpy(dtype=np.float64)
        return fn(y[indices], p[indices])

    def _paired_pool(self, estimators: list[str]) -> pd.DataFrame:
        """Repeat-averaged predictions of ``estimators`` (columns) on their common samples."""
        pools = [self.pooled(name) for name in estimators]
        predictions = [
            pool["y_pred"].rename(name) for pool, name in zip(pools, estimators, strict=True)
        ]
        return pd.concat([pools[0]["y_true"], *predictions], axis=1, join="inner").dropna()

    def _resample(self, pooled: pd.DataFrame, n_bootstrap: int, seed: int) -> np.ndarray:
        y = pooled["y_true"].to_numpy()
        return bootstrap_indices(y, n_bootstrap, seed, self.task == "classification")

    def estimator_summary(
        self, estimator: str, n_bootstrap: int = 1000, seed: int = 0
    ) -> dict[str, float]:
        """Point estimates, 95% bootstrap intervals and fold sd of one estimator (prefixed)."""
        prefix = metric_prefix(estimator)
        per_repeat = self.repeat_metrics(estimator)
        pooled = self._paired_pool([estimator])
        indices = self._resample(pooled, n_bootstrap, seed)
        out: dict[str, float] = {}
        for metric in METRICS[self.task]:
            low, high = percentile_interval(
                self._bootstrap_values(estimator, metric, indices, pooled)
            )
            out[f"{prefix}{metric}"] = _nanmean(per_repeat[metric])
            out[f"{prefix}{metric}_ci_low"] = low
            out[f"{prefix}{metric}_ci_high"] = high
        primary = PRIMARY_METRIC[self.task]
        out[f"{prefix}{primary}_fold_sd"] = self.fold_sd(estimator, primary)
        return out

    def summary(self, n_bootstrap: int = 1000, seed: int = 0) -> dict[str, float]:
        """The MLflow metric dictionary of every estimator.

        Names: for :data:`MODEL_NAME` ``cv_<metric>``, ``cv_<metric>_ci_low``,
        ``cv_<metric>_ci_high`` for each metric of the task, plus ``cv_roc_auc_fold_sd``
        (classification) or ``cv_rmse_fold_sd`` (regression); for any other estimator the
        same names prefixed ``baseline_<name>_`` (e.g. ``baseline_linear_cv_roc_auc``).
        See the module docstring for how points and intervals are computed.
        """
        out: dict[str, float] = {}
        for estimator in self.estimators:
            out.update(self.estimator_summary(estimator, n_bootstrap, seed))
        return out

    def compare(
        self, a: str, b: str, metric: str = "roc_auc", n_bootstrap: int = 1000, seed: int = 0
    ) -> dict[str, float]:
        """Paired comparison of estimators ``a`` and ``b`` on ``metric``.

        Returns
        -------
        dict
            ``difference``: mean over repeats of ``metric(a) - metric(b)``; ``ci_low``,
            ``ci_high``: 95% percentile bootstrap interval of the difference on the
            repeat-averaged predictions (the same resampled samples for both);
            ``p_not_better``: share of resamples in which ``a`` is not better than ``b``
            (lower is better for ``brier`` and ``rmse``).
        """
        metric_function(self.task, metric)
        point = self.repeat_metrics(a)[metric] - self.repeat_metrics(b)[metric]
        pooled = self._paired_pool([a, b])
        indices = self._resample(pooled, n_bootstrap, seed)
        diff = self._bootstrap_values(a, metric, indices, pooled) - self._bootstrap_values(
            b, metric, indices, pooled
        )
        low, high = percentile_interval(diff)
        finite = diff[~np.isnan(diff)]
        worse = finite <= 0 if HIGHER_IS_BETTER[metric] else finite >= 0
        return {
            "difference": _nanmean(point),
            "ci_low": low,
            "ci_high": high,
            "p_not_better": float(worse.mean()) if finite.size else np.nan,
        }


def paired_difference(
    result: CVResult,
    a: str,
    b: str,
    metric: str = "roc_auc",
    n_bootstrap: int = 1000,
    seed: int = 0,
) -> dict[str, float]:
    """Does estimator ``a`` beat ``b`` on the same folds? See :meth:`CVResult.compare`."""
    return result.compare(a, b, metric, n_bootstrap, seed)


# ---------------------------------------------------------------------------- running CV


def _aligned(X: pd.DataFrame, y: pd.Series) -> pd.DataFrame:
    """``X`` with its rows in the order of ``y`` (fold positions refer to ``y``)."""
    if not isinstance(X, pd.DataFrame) or not isinstance(y, pd.Series):
        raise InputError("X must be a samples x genes DataFrame and y a Series")
    if not X.index.is_unique or not y.index.is_unique:
        raise InputError("sample identifiers must be unique")
    if X.index.equals(y.index):
        return X
    if len(X.index) != len(y.index) or not X.index.isin(y.index).all():
        raise LabelError("y must hold exactly the samples of X (same index)")
    return X.loc[y.index]


def _check_folds(folds: list[Fold], n_samples: int) -> None:
    if not folds:
        raise InputError("no folds to cross-validate")
    highest = max(max(f.train.max(initial=-1), f.test.max(initial=-1)) for f in folds)
    if highest >= n_samples:
        raise InputError(f"folds refer to sample {highest} but there are {n_samples} samples")


def _predict(estimator: Any, X: pd.DataFrame, task: Task) -> np.ndarray:
    if task == "classification":
        return np.asarray(estimator.predict_proba(X), dtype=np.float64)[:, 1]
    return np.asarray(estimator.predict(X), dtype=np.float64).ravel()


def _fold_predictions(
    name: str, factory: EstimatorFactory, X: pd.DataFrame, y: np.ndarray, fold: Fold, task: Task
) -> np.ndarray:
    """Fit a fresh estimator on the fold's training samples and predict its test samples."""
    if task == "classification" and np.unique(y[fold.train]).size < 2:
        logger.warning(
            "%s, repeat %d fold %d: the training samples hold a single class; "
            "not fitted, its %d test samples get no prediction",
            name,
            fold.repeat,
            fold.fold,
            fold.test.size,
        )
        return np.full(fold.test.size, np.nan)
    estimator = factory()
    estimator.fit(X.iloc[fold.train], y[fold.train])
    logger.debug("%s fitted on repeat %d fold %d", name, fold.repeat, fold.fold)
    return _predict(estimator, X.iloc[fold.test], task)


def _prediction_rows(name: str, fold: Fold, y: pd.Series, y_pred: np.ndarray) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "estimator": name,
            "repeat": fold.repeat,
            "fold": fold.fold,
            "sample_id": y.index.to_numpy()[fold.test],
            "y_true": y.to_numpy()[fold.test],
            "y_pred": y_pred,
            "position": fold.test,
        }
    )


def _fold_metric_rows(
    name: str, fold: Fold, task: Task, y_true: np.ndarray, y_pred: np.ndarray
) -> list[dict[str, Any]]:
    return [
        {"estimator": name, "repeat": fold.repeat, "fold": fold.fold, "metric": m, "value": v}
        for m, v in score(task, y_true, y_pred).items()
    ]


def cross_validate(
    estimators: Mapping[str, EstimatorFactory],
    X: pd.DataFrame,
    y: pd.Series,
    folds: list[Fold],
    task: Task,
    progress: Callable[[str], None] | None = None,
) -> CVResult:
    """Fit every estimator on every fold and collect out-of-fold predictions.

    Parameters
    ----------
    estimators : mapping of str to factory
        Name -> callable returning an unfitted estimator with ``fit(X, y)`` and
        ``predict_proba`` (classification) or ``predict`` (regression). Name the model
        :data:`MODEL_NAME` to get unprefixed summary metrics.
    X : DataFrame, shape (n_samples, n_genes)
        Prepared matrix (log2(TPM+1), HGNC symbols).
    y : Series, shape (n_samples,)
        Target indexed by sample; fold positions index into ``y`` (``X`` is reordered to it).
    folds : list of Fold
        From :func:`~nkpredict.evaluate.folds.make_folds`; shared by all estimators (paired
        comparison).
    task : {"classification", "regression"}
    progress : callable, optional
        Called with a short message after each of the ``len(estimators) * len(folds)`` fits.

    Returns
    -------
    CVResult
    """
    if not estimators:
        raise InputError("no estimators to cross-validate")
    X = _aligned(X, y)
    values = target_values(y, task)
    _check_folds(folds, len(values))
    n_repeats = len({f.repeat for f in folds})
    predictions, metric_rows = [], []
    for name, factory in estimators.items():
        started = time.perf_counter()
        rows = []
        for fold in folds:
            y_pred = _fold_predictions(name, factory, X, values, fold, task)
            rows.append(_prediction_rows(name, fold, y, y_pred))
            metric_rows += _fold_metric_rows(name, fold, task, values[fold.test], y_pred)
            if progress is not None:
                progress(f"{name}: repeat {fold.repeat + 1}/{n_repeats}, fold {fold.fold + 1}")
        predictions.append(pd.concat(rows).sort_values(["repeat", "position"], kind="stable"))
        logger.info(
            "%s cross-validated on %d folds in %.1f s",
            name,
            len(folds),
            time.perf_counter() - started,
        )
    return CVResult(
        task=task,
        predictions=pd.concat(predictions, ignore_index=True).drop(columns="position"),
        fold_metrics=pd.DataFrame(metric_rows),
    )


def leave_one_group_out(
    factory: EstimatorFactory,
    X: pd.DataFrame,
    y: pd.Series,
    groups: pd.Series,
    task: Task,
    progress: Callable[[str], None] | None = None,
) -> pd.DataFrame:
    """Hold out each group in turn (e.g. a lineage) and score the predictions per group.

    Returns
    -------
    DataFrame, shape (n_groups + 1, n_columns)
        ``group``, ``n``, ``n_resistant`` (classification), then the task's metrics computed
        on that group's held-out predictions (NaN where undefined, e.g. ``roc_auc`` for a
        group with one class); the final row ``ALL`` scores all held-out predictions pooled.
    """
    task = check_choice(task, TASKS, "task")
    group_of = align_groups(groups, y)
    result = cross_validate(
        {MODEL_NAME: factory}, X, y, leave_one_group_out_folds(group_of), task, progress
    )
    held_out = result.predictions.assign(
        group=pd.Series(group_of, index=y.index).loc[result.predictions["sample_id"]].to_numpy()
    )
    parts = [*held_out.groupby("group"), ("ALL", held_out)]
    return pd.DataFrame([_group_row(group, part, task) for group, part in parts])


def _group_row(group: Any, part: pd.DataFrame, task: Task) -> dict[str, Any]:
    row: dict[str, Any] = {"group": group, "n": len(part)}
    if task == "classification":
        row["n_resistant"] = int(part["y_true"].sum())
    return row | score(task, part["y_true"], part["y_pred"])
