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
One estimator, with its own interval. The point estimate of a metric is the mean over
repeats of the metric computed on that repeat's pooled out-of-fold predictions (pooling
avoids the noise of tiny folds, where AUC is often undefined). The 95% interval is the
percentile bootstrap of *that same statistic*: each resample draws positions with
replacement and recomputes, for every repeat, the metric of that repeat's predictions at the
drawn positions, then averages over repeats. Without groups, samples are resampled (within
each class for classification, so every resample keeps the observed prevalence and AUC stays
defined); with a group column (cell lines, patients), whole groups are resampled, so samples
of one group never count as independent evidence. The interval reflects the sampling
uncertainty of the cohort, which dominates for the cohort sizes of NK screens; the
fold-to-fold spread is reported separately as ``*_fold_sd``. Every estimator is bootstrapped
with the same resamples, so differences between estimators (:meth:`CVResult.compare`) are
paired.

Within-lineage scores (:meth:`CVResult.within_group_summary`) compute the metric inside each
lineage and average the lineages weighted by their size; the model against its best baseline
(:meth:`CVResult.best_baseline_difference`) is the paired difference on the same folds and
resamples.

Parallel fits (``n_jobs``)
--------------------------
Every (estimator, fold) fit is independent of the others, so :func:`cross_validate` can run
them in a pool of worker processes (joblib's ``loky``). The matrix is written once to a
memory-mapped file that every worker maps read-only, in a scratch folder of the job
(:func:`nkpredict.evaluate.scratch.scratch_folder`, which also removes the folders of killed
jobs); it is neither re-read nor re-sent per fit (estimators with a true ``float32_input``
attribute, which convert their input to float32 first, map a float32 copy of it instead: the
same values in half the memory). Each fit gets ``cores // workers`` threads (the estimators'
``n_jobs``), so workers times threads never exceeds the cores. Every fit sees the same data,
seeds and folds as in the serial loop and results are assembled in the same order: the
numbers are identical (tests compare the metrics of both paths).
"""

from __future__ import annotations

import inspect
import logging
import time
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pandas as pd

from nkpredict.evaluate.folds import Fold, align_groups, leave_one_group_out_folds, target_values
from nkpredict.evaluate.metrics import (
    HIGHER_IS_BETTER,
    METRICS,
    PRIMARY_METRIC,
    MetricFunction,
    Resamples,
    metric_function,
    percentile_interval,
    resample,
    resample_counts,
    resampled_metric,
    score,
    weighted_roc_auc,
)
from nkpredict.evaluate.scratch import scratch_folder
from nkpredict.exceptions import InputError, LabelError
from nkpredict.vocabulary import TASKS, Task, check_choice

__all__ = [
    "MODEL_NAME",
    "WITHIN_GROUP_METRICS",
    "CVResult",
    "CrossValidator",
    "EstimatorFactory",
    "cross_validate",
    "fit_plan",
    "fit_with_groups",
    "group_table",
    "leave_one_group_out",
    "leave_one_group_out_result",
    "metric_prefix",
    "paired_difference",
]

logger = logging.getLogger(__name__)

WITHIN_GROUP_METRICS: dict[Task, tuple[str, ...]] = {
    "classification": ("roc_auc",),
    "regression": ("rmse", "spearman"),
}
"""Metrics reported inside each lineage (:meth:`CVResult.within_group_summary`)."""

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


def metric_prefix(estimator: str, scheme: str = "cv") -> str:
    """Prefix of an estimator's summary metrics: ``cv_`` or ``baseline_<name>_cv_``.

    ``scheme`` names the evaluation (``cv``; ``lolo`` for leave-one-lineage-out).
    """
    return f"{scheme}_" if estimator == MODEL_NAME else f"baseline_{estimator}_{scheme}_"


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
    models : list
        The fitted fold estimators :func:`cross_validate` was asked to ``keep``: those of the
        first repeat, in fold order (empty otherwise).
    """

    task: Task
    predictions: pd.DataFrame
    fold_metrics: pd.DataFrame
    models: list[Any] = field(default_factory=list)

    @classmethod
    def concat(cls, parts: Sequence[CVResult]) -> CVResult:
        """One result of the estimators of ``parts`` (same task and folds), in their order.

        Cross-validating estimators in several calls and concatenating the results gives
        the result of one call with all of them.
        """
        if not parts:
            raise InputError("no cross-validation results to concatenate")
        if len({part.task for part in parts}) > 1:
            raise InputError("cannot concatenate results of different tasks")
        return cls(
            task=parts[0].task,
            predictions=pd.concat([p.predictions for p in parts], ignore_index=True),
            fold_metrics=pd.concat([p.fold_metrics for p in parts], ignore_index=True),
            models=[m for p in parts for m in p.models],
        )

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

    # ------------------------------------------------------------ one estimator, its interval
    def prediction_matrix(self, estimators: list[str]) -> tuple[pd.Series, dict[str, np.ndarray]]:
        """Out-of-fold predictions of ``estimators`` on the samples all of them predicted.

        Returns
        -------
        y : Series, shape (n_common,)
            Labels indexed by ``sample_id``, in the order of the first estimator's samples.
        predictions : dict of str to ndarray, shape (n_common, n_repeats)
            Per estimator, one column per repeat. Samples without a prediction in some
            repeat of some estimator (a fold that could not be fitted) are left out, so all
            estimators are scored on the same samples.
        """
        tables = {}
        for name in estimators:
            rows = self._rows(name)
            tables[name] = rows.pivot_table(
                index="sample_id", columns="repeat", values="y_pred", sort=False, dropna=False
            )
        y = self.pooled(estimators[0])["y_true"]
        common = y.index
        for table in tables.values():
            complete = table.index[table.notna().all(axis=1).to_numpy()]
            common = common[common.isin(complete)]
        matrices = {
            name: table.loc[common].to_numpy(dtype=np.float64) for name, table in tables.items()
        }
        return y.loc[common], matrices

    def _resamples(
        self, y: pd.Series, n_bootstrap: int, seed: int, groups: pd.Series | None
    ) -> Resamples:
        labels = None if groups is None else _groups_of(groups, y.index)
        return resample(
            y.to_numpy(dtype=np.float64),
            n_bootstrap,
            seed,
            self.task == "classification",
            labels,
        )

    def estimator_summary(
        self,
        estimator: str,
        n_bootstrap: int = 1000,
        seed: int = 0,
        groups: pd.Series | None = None,
        scheme: str = "cv",
    ) -> dict[str, float]:
        """Point estimates, their 95% bootstrap intervals and fold sd of one estimator.

        See the module docstring: the point is the mean over repeats of the metric of each
        repeat's out-of-fold predictions, and the interval is the percentile bootstrap of that
        same statistic. ``groups`` (indexed by sample) makes the bootstrap resample whole
        groups. Names are prefixed by :func:`metric_prefix` with ``scheme``.
        """
        prefix = metric_prefix(estimator, scheme)
        y, matrices = self.prediction_matrix([estimator])
        values, predictions = y.to_numpy(dtype=np.float64), matrices[estimator]
        resamples = self._resamples(y, n_bootstrap, seed, groups)
        everything = np.arange(values.size)[None, :]
        out: dict[str, float] = {}
        for metric, fn in METRICS[self.task].items():
            point = resampled_metric(fn, values, predictions, everything)[0]
            low, high = percentile_interval(resampled_metric(fn, values, predictions, resamples))
            out[f"{prefix}{metric}"] = float(point)
            out[f"{prefix}{metric}_ci_low"] = low
            out[f"{prefix}{metric}_ci_high"] = high
        primary = PRIMARY_METRIC[self.task]
        out[f"{prefix}{primary}_fold_sd"] = self.fold_sd(estimator, primary)
        return out

    def summary(
        self,
        n_bootstrap: int = 1000,
        seed: int = 0,
        groups: pd.Series | None = None,
        scheme: str = "cv",
    ) -> dict[str, float]:
        """The MLflow metric dictionary of every estimator.

        Names: for :data:`MODEL_NAME` ``cv_<metric>``, ``cv_<metric>_ci_low``,
        ``cv_<metric>_ci_high`` for each metric of the task, plus ``cv_roc_auc_fold_sd``
        (classification) or ``cv_rmse_fold_sd`` (regression); for any other estimator the
        same names prefixed ``baseline_<name>_`` (e.g. ``baseline_linear_cv_roc_auc``).
        ``scheme`` replaces ``cv`` (``lolo`` for leave-one-lineage-out). See the module
        docstring for how points and intervals are computed.
        """
        out: dict[str, float] = {}
        for estimator in self.estimators:
            out.update(self.estimator_summary(estimator, n_bootstrap, seed, groups, scheme))
        return out

    # ------------------------------------------------------------ within groups
    def within_group_summary(
        self,
        within: pd.Series,
        name: str = "within_lineage",
        n_bootstrap: int = 1000,
        seed: int = 0,
        groups: pd.Series | None = None,
        scheme: str = "cv",
    ) -> dict[str, float]:
        """Metrics computed inside each group of ``within`` (a lineage), then averaged.

        For each cross-validation repeat, the metric is computed on the out-of-fold
        predictions of each group separately (groups where it is undefined, e.g. one class,
        are skipped), the groups' values are averaged weighted by their number of samples,
        and that average is averaged over repeats. The interval is the bootstrap of the same
        statistic (whole ``groups`` resampled when given, else samples).

        Returns
        -------
        dict
            ``<prefix><name>_<metric>`` with ``_ci_low`` and ``_ci_high`` for the ranking
            metrics (``roc_auc``; ``rmse`` and ``spearman`` for regression) of every
            estimator, e.g. ``cv_within_lineage_roc_auc``.
        """
        out: dict[str, float] = {}
        for estimator in self.estimators:
            y, matrices = self.prediction_matrix([estimator])
            codes, _ = pd.factorize(_groups_of(within, y.index), sort=True)
            values, predictions = y.to_numpy(dtype=np.float64), matrices[estimator]
            resamples = self._resamples(y, n_bootstrap, seed, groups)
            prefix = metric_prefix(estimator, scheme)
            for metric in WITHIN_GROUP_METRICS[self.task]:
                fn = metric_function(self.task, metric)
                point = _within_group_values(fn, values, predictions, codes, [np.arange(y.size)])
                spread = _within_group_values(fn, values, predictions, codes, resamples)
                low, high = percentile_interval(spread)
                key = f"{prefix}{name}_{metric}"
                out |= {key: float(point[0]), f"{key}_ci_low": low, f"{key}_ci_high": high}
        return out

    # ------------------------------------------------------------ paired comparisons
    def compare(
        self,
        a: str,
        b: str,
        metric: str = "roc_auc",
        n_bootstrap: int = 1000,
        seed: int = 0,
        groups: pd.Series | None = None,
    ) -> dict[str, float]:
        """Paired comparison of estimators ``a`` and ``b`` on ``metric``.

        Returns
        -------
        dict
            ``difference``: ``metric(a) - metric(b)``, each the estimator's statistic (mean
            over repeats) on the samples both predicted; ``ci_low``, ``ci_high``: 95%
            percentile bootstrap interval of the difference (the same resamples for both,
            whole ``groups`` when given); ``p_not_better``: share of resamples in which ``a``
            is not better than ``b`` (lower is better for ``brier`` and ``rmse``).
        """
        fn = metric_function(self.task, metric)
        y, matrices = self.prediction_matrix([a, b])
        values = y.to_numpy(dtype=np.float64)
        everything = np.arange(values.size)[None, :]
        point = resampled_metric(fn, values, matrices[a], everything) - resampled_metric(
            fn, values, matrices[b], everything
        )
        resamples = self._resamples(y, n_bootstrap, seed, groups)
        diff = resampled_metric(fn, values, matrices[a], resamples) - resampled_metric(
            fn, values, matrices[b], resamples
        )
        low, high = percentile_interval(diff)
        finite = diff[~np.isnan(diff)]
        worse = finite <= 0 if HIGHER_IS_BETTER[metric] else finite >= 0
        return {
            "difference": float(point[0]),
            "ci_low": low,
            "ci_high": high,
            "p_not_better": float(worse.mean()) if finite.size else np.nan,
        }

    def best_baseline(self, metric: str | None = None) -> str | None:
        """The estimator other than :data:`MODEL_NAME` with the best ``metric`` (default: the
        task's primary metric), or None without baselines."""
        metric = metric or PRIMARY_METRIC[self.task]
        fn = metric_function(self.task, metric)
        scores: dict[str, float] = {}
        for name in self.estimators:
            if name == MODEL_NAME:
                continue
            y, matrices = self.prediction_matrix([name])
            everything = np.arange(y.size)[None, :]
            value = resampled_metric(fn, y.to_numpy(dtype=np.float64), matrices[name], everything)
            if np.isfinite(value[0]):
                scores[name] = float(value[0])
        if not scores:
            return None
        pick = max if HIGHER_IS_BETTER[metric] else min
        return pick(scores, key=scores.__getitem__)

    def best_baseline_difference(
        self, n_bootstrap: int = 1000, seed: int = 0, groups: pd.Series | None = None
    ) -> tuple[str | None, dict[str, float]]:
        """The model against its best baseline on the same folds, for the primary metric.

        Returns
        -------
        best : str or None
            Name of the best baseline (None without baselines or without the model).
        metrics : dict
            ``cv_<primary>_minus_best_baseline`` with ``_ci_low`` and ``_ci_high``
            (``cv_roc_auc_minus_best_baseline``; ``cv_rmse_minus_best_baseline`` for
            regression, where negative means the model is better); empty without a baseline.
        """
        primary = PRIMARY_METRIC[self.task]
        best = self.best_baseline(primary) if MODEL_NAME in self.estimators else None
        if best is None:
            return None, {}
        versus = self.compare(MODEL_NAME, best, primary, n_bootstrap, seed, groups)
        key = f"cv_{primary}_minus_best_baseline"
        return best, {
            key: versus["difference"],
            f"{key}_ci_low": versus["ci_low"],
            f"{key}_ci_high": versus["ci_high"],
        }


def _groups_of(groups: pd.Series, samples: pd.Index) -> np.ndarray:
    """Group labels of ``samples`` (a subset of the index of ``groups``), shape (n,)."""
    if not isinstance(groups, pd.Series):
        raise InputError("groups must be a pandas Series indexed by sample")
    aligned = groups.reindex(samples)
    if aligned.isna().any():
        raise InputError(
            f"{int(aligned.isna().sum())} sample(s) have no group; every sample needs one"
        )
    return aligned.to_numpy(dtype=object)


def _within_group_values(
    fn: MetricFunction,
    y: np.ndarray,
    predictions: np.ndarray,
    codes: np.ndarray,
    resamples: Resamples,
) -> np.ndarray:
    """Sample-weighted mean over groups of the per-group statistic, per resample.

    ROC AUC is computed for all resamples at once from how often each sample was drawn
    (:func:`~nkpredict.evaluate.metrics.weighted_roc_auc`); other metrics resample by loop.
    """
    n_groups = int(codes.max(initial=-1)) + 1
    if fn is metric_function("classification", "roc_auc"):
        counts = resample_counts(resamples, y.size)
        total = np.zeros(len(resamples))
        weight = np.zeros(len(resamples))
        for code in range(n_groups):
            members = np.flatnonzero(codes == code)
            drawn = counts[:, members]
            per_repeat = np.stack(
                [
                    weighted_roc_auc(y[members], predictions[members, r], drawn)
                    for r in range(predictions.shape[1])
                ]
            )
            finite = np.isfinite(per_repeat)
            n_finite = finite.sum(axis=0)
            value = np.where(
                n_finite > 0,
                np.where(finite, per_repeat, 0.0).sum(axis=0) / np.maximum(n_finite, 1),
                np.nan,
            )
            size = drawn.sum(axis=1)
            defined = np.isfinite(value)
            total += np.where(defined, value * size, 0.0)
            weight += np.where(defined, size, 0.0)
        return np.where(weight > 0, total / np.where(weight > 0, weight, 1.0), np.nan)
    out = np.full(len(resamples), np.nan)
    for b, rows in enumerate(resamples):
        total_b = weight_b = 0.0
        for code in range(n_groups):
            members = rows[codes[rows] == code]
            if members.size == 0:
                continue
            value_b = resampled_metric(fn, y, predictions, members[None, :])[0]
            if np.isfinite(value_b):
                total_b += value_b * members.size
                weight_b += members.size
        if weight_b:
            out[b] = total_b / weight_b
    return out


def paired_difference(
    result: CVResult,
    a: str,
    b: str,
    metric: str = "roc_auc",
    n_bootstrap: int = 1000,
    seed: int = 0,
    groups: pd.Series | None = None,
) -> dict[str, float]:
    """Does estimator ``a`` beat ``b`` on the same folds? See :meth:`CVResult.compare`."""
    return result.compare(a, b, metric, n_bootstrap, seed, groups)


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


def _fit_params(estimator: Any, groups: np.ndarray | None) -> dict[str, Any]:
    """Keyword arguments handing ``groups`` to the ``fit`` that takes them (inner splits).

    An estimator whose ``fit`` has a ``groups`` parameter gets ``groups=``; a scikit-learn
    pipeline gets ``<step>__groups=`` for each step whose ``fit`` has one. Estimators without
    inner splits get nothing.
    """
    if groups is None:
        return {}
    steps = getattr(estimator, "steps", None)
    if steps is not None:
        return {
            f"{name}__groups": groups
            for name, step in steps
            if step not in (None, "passthrough") and _takes_groups(step)
        }
    return {"groups": groups} if _takes_groups(estimator) else {}


def _takes_groups(estimator: Any) -> bool:
    fit = getattr(estimator, "fit", None)
    return fit is not None and "groups" in inspect.signature(fit).parameters


def fit_with_groups(estimator: Any, X: pd.DataFrame, y: Any, groups: Any = None) -> Any:
    """``estimator.fit(X, y)`` handing ``groups`` (n_samples,) to every inner split that
    takes them (see :func:`_fit_params`); returns the fitted estimator."""
    labels = None if groups is None else np.asarray(groups, dtype=object)
    return estimator.fit(X, y, **_fit_params(estimator, labels))


def _with_threads(estimator: Any, threads: int | None) -> Any:
    """``estimator`` with ``threads`` in every thread-count parameter that is set.

    Parameters named ``n_jobs`` (or ``<step>__n_jobs`` in a pipeline) whose value is not
    ``None`` get ``threads``; ``None`` leaves the estimator as configured. XGBoost's
    results do not depend on its thread count, so this changes the time of a fit only.
    """
    if threads is None:
        return estimator
    get_params = getattr(estimator, "get_params", None)
    if get_params is None:
        return estimator
    names = {
        name: threads
        for name, value in get_params(deep=True).items()
        if (name == "n_jobs" or name.endswith("__n_jobs")) and value is not None
    }
    return estimator.set_params(**names) if names else estimator


def _fold_predictions(
    name: str,
    factory: EstimatorFactory,
    X: pd.DataFrame,
    y: np.ndarray,
    fold: Fold,
    task: Task,
    groups: np.ndarray | None = None,
    threads: int | None = None,
) -> tuple[np.ndarray, Any]:
    """Fit a fresh estimator on the fold's training samples and predict its test samples.

    ``threads``: the fit's thread count (:func:`_with_threads`); ``None`` keeps the
    estimator's own. Returns the predictions and the fitted estimator (None when the fold
    could not be fitted).
    """
    if task == "classification" and np.unique(y[fold.train]).size < 2:
        logger.warning(
            "%s, repeat %d fold %d: the training samples hold a single class; "
            "not fitted, its %d test samples get no prediction",
            name,
            fold.repeat,
            fold.fold,
            fold.test.size,
        )
        return np.full(fold.test.size, np.nan), None
    estimator = _with_threads(factory(), threads)
    train_groups = None if groups is None else groups[fold.train]
    fit_with_groups(estimator, X.iloc[fold.train], y[fold.train], train_groups)
    logger.debug("%s fitted on repeat %d fold %d", name, fold.repeat, fold.fold)
    return _predict(estimator, X.iloc[fold.test], task), estimator


# ---------------------------------------------------------------------------- parallel fits


def _takes_float32(estimator: Any) -> bool:
    """Whether ``estimator`` converts its input to float32 before anything else (its
    ``float32_input`` attribute): it may then be handed float32 values, the same numbers it
    would compute, in half the memory."""
    return bool(getattr(estimator, "float32_input", False))


@dataclass(frozen=True)
class _MappedMatrix:
    """The prepared matrix as a file every worker maps read-only (written once), and its
    float32 copy for estimators that :func:`_takes_float32` (when one of them runs).

    Pickling this sends paths and the sample and gene names, not the values.
    """

    path: str
    path32: str | None
    index: pd.Index
    columns: pd.Index

    @classmethod
    def write(cls, X: pd.DataFrame, folder: Path, float32: bool) -> _MappedMatrix:
        path = folder / "matrix.npy"
        values = X.to_numpy()
        np.save(path, values, allow_pickle=False)
        path32 = None
        if float32:
            path32 = folder / "matrix32.npy"
            np.save(path32, values.astype(np.float32), allow_pickle=False)
        return cls(str(path), None if path32 is None else str(path32), X.index, X.columns)

    def frame(self, float32: bool = False) -> pd.DataFrame:
        """The matrix (or its float32 copy) as a DataFrame over the mapped file (mapped once
        per process)."""
        path = self.path32 if float32 and self.path32 is not None else self.path
        frame = _MAPPED.get(path)
        if frame is None:
            values = np.asarray(np.load(path, mmap_mode="r", allow_pickle=False))
            frame = pd.DataFrame(values, index=self.index, columns=self.columns, copy=False)
            for known in [p for p in _MAPPED if p not in (self.path, self.path32)]:
                del _MAPPED[known]  # one job's matrices at a time: an earlier job's are gone
            _MAPPED[path] = frame
        return frame


_MAPPED: dict[str, pd.DataFrame] = {}
"""The matrices this worker process has mapped, by file path."""


def _timed_fold(
    name: str,
    factory: EstimatorFactory,
    X: pd.DataFrame | _MappedMatrix,
    y: np.ndarray,
    fold: Fold,
    task: Task,
    groups: np.ndarray | None,
    threads: int | None,
    keep: bool = False,
    float32: bool = False,
) -> tuple[np.ndarray, float, Any]:
    """:func:`_fold_predictions`, its wall time in seconds and, when ``keep``, the fitted
    estimator (runs in a worker; an estimator not kept is not sent back). ``float32``: fit
    on the mapped matrix's float32 copy (an estimator that :func:`_takes_float32`)."""
    started = time.perf_counter()
    matrix = X.frame(float32) if isinstance(X, _MappedMatrix) else X
    y_pred, fitted = _fold_predictions(name, factory, matrix, y, fold, task, groups, threads)
    return y_pred, time.perf_counter() - started, fitted if keep else None


def fit_plan(n_jobs: int, n_fits: int) -> tuple[int, int | None]:
    """Worker processes and threads per fit for ``n_fits`` independent fits.

    Parameters
    ----------
    n_jobs : int
        ``1``: in this process, every estimator with its own thread count (``None``
        threads). More: at most that many workers; negative counts like joblib (``-1``: one
        per core, ``-2``: all cores but one).
    n_fits : int

    Returns
    -------
    workers : int
        ``min(n_jobs, n_fits)`` (at least 1).
    threads : int or None
        ``cores // workers`` (at least 1) with workers, so workers x threads <= cores.
    """
    if n_jobs == 0:
        raise InputError("n_jobs must not be 0 (1: serial, -1: one worker per core)")
    if n_jobs == 1:
        return 1, None
    cores = joblib.cpu_count()
    wanted = n_jobs if n_jobs > 0 else max(1, cores + 1 + n_jobs)
    workers = max(1, min(wanted, n_fits))
    return workers, max(1, cores // workers)


_WORKER_RESTARTED = "A worker stopped while some jobs were given to the executor"
"""The start of loky's warning when it replaces a worker of the pool."""


@contextmanager
def _quiet_worker_restarts() -> Iterator[None]:
    """Leave out loky's "A worker stopped" warning while the pool runs.

    loky restarts a worker whose memory grew by more than 300 MB since its first fit (its leak
    check; large fits leave that much with the allocator) and warns, from the pool's manager
    thread. Nothing is lost: the worker sent its fit back before it stopped, and a new one
    takes the next fit. The warning would only alarm a user who can do nothing about it."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=_WORKER_RESTARTED, category=UserWarning)
        yield


def _run_fits(
    units: list[tuple[str, Fold]],
    estimators: Mapping[str, EstimatorFactory],
    X: pd.DataFrame,
    values: np.ndarray,
    task: Task,
    groups: np.ndarray | None,
    n_jobs: int,
    keep: str | None = None,
) -> Iterator[tuple[np.ndarray, float, Any]]:
    """Predictions, seconds and kept estimator (see :func:`cross_validate`) of every
    (estimator, fold) unit, in unit order."""
    workers, threads = fit_plan(n_jobs, len(units))
    if threads is None:
        for name, fold in units:
            kept = name == keep and fold.repeat == 0
            yield _timed_fold(name, estimators[name], X, values, fold, task, groups, None, kept)
        return
    logger.info("%d fits on %d workers, %d thread(s) each", len(units), workers, threads)
    float32 = {name for name in estimators if _takes_float32(estimators[name]())}
    with scratch_folder() as folder, _quiet_worker_restarts():
        shared = _MappedMatrix.write(X, folder, float32=bool(float32))
        pool = joblib.Parallel(n_jobs=workers, backend="loky", return_as="generator")
        yield from pool(
            joblib.delayed(_timed_fold)(
                name,
                estimators[name],
                shared,
                values,
                fold,
                task,
                groups,
                threads,
                name == keep and fold.repeat == 0,
                name in float32,
            )
            for name, fold in units
        )


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


CrossValidator = Callable[..., CVResult]
""":func:`cross_validate` or an engine's ``cross_validate`` (same arguments, same result)."""


def cross_validate(
    estimators: Mapping[str, EstimatorFactory],
    X: pd.DataFrame,
    y: pd.Series,
    folds: list[Fold],
    task: Task,
    progress: Callable[[str], None] | None = None,
    groups: pd.Series | None = None,
    n_jobs: int = 1,
    keep: str | None = None,
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
    groups : Series, optional
        Group of each sample (cell line, patient), indexed like ``y``: handed to the inner
        splits (early stopping, tuning) of every estimator that has them, so no group is
        split between an inner fit and its validation samples either.
    n_jobs : int
        ``1`` (default): one fit after the other in this process, each estimator with its
        own thread count. Otherwise the fits run in worker processes (see the module
        docstring and :func:`fit_plan`; ``-1``: one worker per core); the result is the same.
    keep : str, optional
        An estimator whose fitted fold estimators of the first repeat are kept in
        :attr:`CVResult.models` (the model's cross-validation members).

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
    group_of = None if groups is None else align_groups(groups, y)
    units = [(name, fold) for name in estimators for fold in folds]
    rows: dict[str, list[pd.DataFrame]] = {name: [] for name in estimators}
    seconds = dict.fromkeys(estimators, 0.0)
    metric_rows = []
    fitted = _run_fits(units, estimators, X, values, task, group_of, n_jobs, keep)
    models = []
    for (name, fold), (y_pred, elapsed, estimator) in zip(units, fitted, strict=True):
        if estimator is not None:
            models.append(estimator)
        rows[name].append(_prediction_rows(name, fold, y, y_pred))
        metric_rows += _fold_metric_rows(name, fold, task, values[fold.test], y_pred)
        seconds[name] += elapsed
        if progress is not None:
            progress(f"{name}: repeat {fold.repeat + 1}/{n_repeats}, fold {fold.fold + 1}")
    for name, elapsed in seconds.items():
        logger.info("%s cross-validated on %d folds in %.1f s of fits", name, len(folds), elapsed)
    predictions = [
        pd.concat(parts).sort_values(["repeat", "position"], kind="stable")
        for parts in rows.values()
    ]
    return CVResult(
        task=task,
        predictions=pd.concat(predictions, ignore_index=True).drop(columns="position"),
        fold_metrics=pd.DataFrame(metric_rows),
        models=models,
    )


def leave_one_group_out_result(
    factory: EstimatorFactory,
    X: pd.DataFrame,
    y: pd.Series,
    groups: pd.Series,
    task: Task,
    progress: Callable[[str], None] | None = None,
    inner_groups: pd.Series | None = None,
    run: CrossValidator = cross_validate,
) -> CVResult:
    """Hold out each group (a lineage) in turn: one repeat, one fold per group.

    ``inner_groups`` (e.g. cell lines) are handed to the inner splits as in
    :func:`cross_validate`. ``run`` fits the folds: :func:`cross_validate` or an engine's
    (parallel or on a cluster). Summarise it with ``result.summary(scheme="lolo")`` (the
    ``lolo_*`` metrics) and :func:`group_table`.
    """
    task = check_choice(task, TASKS, "task")
    group_of = align_groups(groups, y)
    return run(
        {MODEL_NAME: factory},
        X,
        y,
        leave_one_group_out_folds(group_of),
        task,
        progress,
        inner_groups,
    )


def group_table(result: CVResult, groups: pd.Series) -> pd.DataFrame:
    """Per-group scores of :data:`MODEL_NAME`'s out-of-fold predictions.

    Returns
    -------
    DataFrame, shape (n_groups + 1, n_columns)
        ``group``, ``n``, ``n_resistant`` (classification), then the task's metrics computed
        on that group's predictions (NaN where undefined, e.g. ``roc_auc`` for a group with
        one class); the final row ``ALL`` scores all predictions pooled.
    """
    held_out = result.predictions[result.predictions["estimator"] == MODEL_NAME]
    held_out = held_out.assign(group=_groups_of(groups, pd.Index(held_out["sample_id"])))
    parts = [*held_out.groupby("group"), ("ALL", held_out)]
    return pd.DataFrame([_group_row(group, part, result.task) for group, part in parts])


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
        :func:`group_table` of :func:`leave_one_group_out_result`.
    """
    result = leave_one_group_out_result(factory, X, y, groups, task, progress)
    return group_table(result, groups)


def _group_row(group: Any, part: pd.DataFrame, task: Task) -> dict[str, Any]:
    row: dict[str, Any] = {"group": group, "n": len(part)}
    if task == "classification":
        row["n_resistant"] = int(part["y_true"].sum())
    return row | score(task, part["y_true"], part["y_pred"])
