"""Honest evaluation: grouped cross-validation, baselines on the same folds, metrics with CIs.

Every estimator is given as a *factory* returning an unfitted scikit-learn-style estimator that
takes the prepared matrix (samples x HGNC symbols, log2(TPM+1)) and is fitted from scratch on
every training fold, so every data-dependent step (gene statistics, scaling, genome-wide gene
selection) sees only that fold's training samples. All estimators share the same folds, which
makes their comparison paired.

Metrics
-------
Classification: ``roc_auc``, ``pr_auc`` (average precision), ``brier`` and
``balanced_accuracy`` (calls at probability 0.5). Regression: ``rmse`` and ``spearman``. A
metric that is undefined on its data (one class only, a constant vector, no samples) is NaN and
is skipped when metrics are averaged.

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
from scipy.stats import rankdata
from sklearn.base import BaseEstimator
from sklearn.linear_model import LinearRegression, LogisticRegression, RidgeCV
from sklearn.model_selection import (
    GroupKFold,
    LeaveOneGroupOut,
    RepeatedKFold,
    RepeatedStratifiedKFold,
    StratifiedGroupKFold,
)
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from xgboost import XGBClassifier, XGBRegressor

from nkpredict.exceptions import InputError, LabelError, NotFittedError
from nkpredict.features.builder import NKFeatureBuilder

logger = logging.getLogger(__name__)

EstimatorFactory = Callable[[], Any]
MetricFunction = Callable[[np.ndarray, np.ndarray], np.ndarray]

MODEL_NAME = "nkpredict"
"""Estimator name whose metrics are reported without the ``baseline_<name>_`` prefix."""
TASKS = ("classification", "regression")
CI_LEVEL = 0.95
CLASSIFICATION_THRESHOLD = 0.5
XGB_N_JOBS = 1
XGB_MAX_BIN = 64
"""Histogram bins of the all-genes XGBoost baseline (XGBoost's default is 256).

With a few hundred samples a gene has at most that many distinct values, while the split search
over thousands of genes x 256 bins dominates the run time: 64 bins cut one fit on
480 samples x 3,000 genes from about 9 s to 2.5 s of CPU."""
_SD_FLOOR = 1e-8


# ---------------------------------------------------------------------------- metrics
# Each metric takes y_true and y_pred of shape (n_rows, n_samples) and returns shape (n_rows,),
# so the same code scores one prediction vector and a whole matrix of bootstrap resamples.


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


METRICS: dict[str, dict[str, MetricFunction]] = {
    "classification": {
        "roc_auc": _roc_auc,
        "pr_auc": _pr_auc,
        "brier": _brier,
        "balanced_accuracy": _balanced_accuracy,
    },
    "regression": {"rmse": _rmse, "spearman": _spearman},
}
"""Metric functions per task, in reporting order."""
HIGHER_IS_BETTER = {
    "roc_auc": True,
    "pr_auc": True,
    "brier": False,
    "balanced_accuracy": True,
    "rmse": False,
    "spearman": True,
}
PRIMARY_METRIC = {"classification": "roc_auc", "regression": "rmse"}
ORACLE_METRICS = {
    "classification": ("roc_auc", "pr_auc", "brier"),
    "regression": ("rmse", "spearman"),
}


def _check_task(task: str) -> None:
    if task not in TASKS:
        raise InputError(f"task must be classification or regression, not {task!r}")


def _check_metric(task: str, metric: str) -> MetricFunction:
    try:
        return METRICS[task][metric]
    except KeyError:
        known = ", ".join(METRICS[task])
        raise InputError(f"unknown {task} metric {metric!r}; known: {known}") from None


def _check_binary(y: np.ndarray) -> None:
    if not np.isin(y, (0, 1)).all():
        raise LabelError("classification labels must be 0 (sensitive) or 1 (resistant)")


def _target_values(y: pd.Series, task: str) -> np.ndarray:
    """Validated target values, shape (n_samples,)."""
    _check_task(task)
    values = y.to_numpy()
    if pd.isna(values).any():
        raise LabelError("the target has missing values; drop those samples first")
    if task == "classification":
        _check_binary(values)
    return values


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


def score(task: str, y_true: Any, y_pred: Any) -> dict[str, float]:
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
    _check_task(task)
    y, p = _paired_arrays(y_true, y_pred)
    if task == "classification":
        _check_binary(y)
    if y.size == 0:
        return dict.fromkeys(METRICS[task], np.nan)
    return {name: float(fn(y[None, :], p[None, :])[0]) for name, fn in METRICS[task].items()}


def score_with_intervals(
    task: str, y_true: Any, y_pred: Any, n_bootstrap: int = 1000, seed: int = 0
) -> dict[str, float]:
    """Metrics of one prediction vector with 95% percentile-bootstrap intervals.

    Used to score a fixed model on new data (no cross-validation). Returns ``<metric>``,
    ``<metric>_ci_low`` and ``<metric>_ci_high`` for every metric of ``task``; classification
    resamples within each class, as :meth:`CVResult.summary` does.
    """
    point = score(task, y_true, y_pred)
    y, p = _paired_arrays(y_true, y_pred)
    indices = _bootstrap_indices(y, n_bootstrap, seed, stratify=task == "classification")
    out: dict[str, float] = {}
    for name, fn in METRICS[task].items():
        values = fn(y[indices], p[indices]) if y.size else np.full(n_bootstrap, np.nan)
        low, high = _percentile_interval(values)
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


def oracle_metrics(y_true: Any, true_probability: Any, task: str) -> dict[str, float]:
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
    _check_binary(y)
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


def _bootstrap_indices(y: np.ndarray, n_bootstrap: int, seed: int, stratify: bool) -> np.ndarray:
    """Resampled sample positions, shape (n_bootstrap, n_samples); within class if stratified."""
    if y.size == 0:
        return np.empty((n_bootstrap, 0), dtype=np.intp)
    rng = np.random.default_rng(seed)
    strata = [np.flatnonzero(y == c) for c in np.unique(y)] if stratify else [np.arange(y.size)]
    return np.concatenate(
        [rng.choice(s, size=(n_bootstrap, s.size), replace=True) for s in strata], axis=1
    )


def _percentile_interval(values: np.ndarray) -> tuple[float, float]:
    finite = values[~np.isnan(values)]
    if finite.size == 0:
        return np.nan, np.nan
    tail = (1.0 - CI_LEVEL) / 2.0 * 100.0
    low, high = np.percentile(finite, [tail, 100.0 - tail])
    return float(low), float(high)


def _nanmean(values: Any) -> float:
    finite = np.asarray(values, dtype=np.float64)
    finite = finite[~np.isnan(finite)]
    return float(finite.mean()) if finite.size else np.nan


def _nanstd(values: Any) -> float:
    finite = np.asarray(values, dtype=np.float64)
    finite = finite[~np.isnan(finite)]
    return float(finite.std(ddof=1)) if finite.size > 1 else np.nan


# ---------------------------------------------------------------------------- folds


@dataclass(frozen=True)
class CVConfig:
    """Cross-validation layout: ``n_repeats`` reshuffled rounds of ``n_splits`` folds."""

    n_splits: int = 5
    n_repeats: int = 3
    random_state: int = 0

    def __post_init__(self) -> None:
        if self.n_splits < 2 or self.n_repeats < 1:
            raise InputError(
                f"cross-validation needs n_splits >= 2 and n_repeats >= 1, "
                f"got {self.n_splits} and {self.n_repeats}"
            )


@dataclass(frozen=True, eq=False)
class Fold:
    """One train/test split; ``train`` and ``test`` are sample positions, shape (n,)."""

    repeat: int
    fold: int
    train: np.ndarray
    test: np.ndarray


def _align_groups(groups: pd.Series, y: pd.Series) -> np.ndarray:
    """Group labels in the order of ``y``, shape (n_samples,)."""
    if not isinstance(groups, pd.Series):
        raise InputError("groups must be a pandas Series indexed by sample")
    aligned = groups.reindex(y.index)
    if aligned.isna().any():
        missing = aligned.index[aligned.isna()]
        raise InputError(
            f"{missing.size} sample(s) have no group (first: {missing[0]!r}); "
            "every sample needs a group label"
        )
    return aligned.to_numpy()


def _leave_one_group_out(groups: np.ndarray) -> list[Fold]:
    splits = LeaveOneGroupOut().split(np.zeros(groups.size), groups=groups)
    return [Fold(0, i, train, test) for i, (train, test) in enumerate(splits)]


def _repeat_seeds(config: CVConfig) -> list[int]:
    state = np.random.SeedSequence(config.random_state).generate_state(config.n_repeats)
    return [int(s) for s in state]


def _grouped_folds(y: np.ndarray, groups: np.ndarray, config: CVConfig, task: str) -> list[Fold]:
    n_groups = np.unique(groups).size
    if n_groups < 2:
        raise InputError("grouped cross-validation needs at least two groups")
    if n_groups < config.n_splits:
        logger.warning(
            "only %d groups for %d folds: using leave-one-group-out (%d folds, one repeat, "
            "since repeating it would give identical folds)",
            n_groups,
            config.n_splits,
            n_groups,
        )
        return _leave_one_group_out(groups)
    folds = []
    for repeat, seed in enumerate(_repeat_seeds(config)):
        splitter = (
            StratifiedGroupKFold(config.n_splits, shuffle=True, random_state=seed)
            if task == "classification"
            else GroupKFold(config.n_splits, shuffle=True, random_state=seed)
        )
        splits = splitter.split(np.zeros(y.size), y, groups)
        folds += [Fold(repeat, i, train, test) for i, (train, test) in enumerate(splits)]
    return folds


def _plain_folds(y: np.ndarray, config: CVConfig, task: str) -> list[Fold]:
    if y.size < config.n_splits:
        raise InputError(f"{y.size} samples cannot be split into {config.n_splits} folds")
    kind = RepeatedStratifiedKFold if task == "classification" else RepeatedKFold
    splitter = kind(
        n_splits=config.n_splits, n_repeats=config.n_repeats, random_state=config.random_state
    )
    return [
        Fold(i // config.n_splits, i % config.n_splits, train, test)
        for i, (train, test) in enumerate(splitter.split(np.zeros(y.size), y))
    ]


def make_folds(y: pd.Series, groups: pd.Series | None, config: CVConfig, task: str) -> list[Fold]:
    """Cross-validation folds over the samples of ``y``.

    Parameters
    ----------
    y : Series, shape (n_samples,)
        Target (0/1 for classification); fold positions index into it.
    groups : Series or None
        Group of each sample (lineage, patient, cell line), indexed like ``y``. No group is
        ever split between train and test: ``StratifiedGroupKFold`` (classification) or
        shuffled ``GroupKFold`` (regression), reshuffled with a different seed per repeat.
        With fewer groups than ``n_splits``, leave-one-group-out (one repeat).
        Without groups: ``RepeatedStratifiedKFold`` / ``RepeatedKFold``.
    config : CVConfig
    task : {"classification", "regression"}

    Returns
    -------
    list of Fold
        Each sample is in exactly one test fold per repeat.
    """
    values = _target_values(y, task)
    if task == "classification" and np.unique(values).size < 2:
        raise LabelError("the target has a single class; nothing to cross-validate")
    if groups is None:
        folds = _plain_folds(values, config, task)
    else:
        folds = _grouped_folds(values, _align_groups(groups, y), config, task)
    empty = [f for f in folds if f.test.size == 0]
    if empty:
        logger.warning("%d empty test fold(s) dropped", len(empty))
        folds = [f for f in folds if f.test.size]
    return folds


# ---------------------------------------------------------------------------- baselines


class SignatureScoreEstimator(BaseEstimator):
    """One signature score mapped to a probability (or readout) by a 1-D linear link.

    The score is ``sign * feature`` from an :class:`NKFeatureBuilder` fitted on the training
    samples; by default ``-load:balance`` (inhibitory minus activating receptor load, higher
    = more resistant). It is standardized with the training mean and sd, then mapped by a
    logistic regression (classification) or a linear regression (regression).

    Parameters
    ----------
    task : {"classification", "regression"}
    feature : str
        Feature of :class:`NKFeatureBuilder` used as the signature.
    sign : float
        Multiplier giving the score its "higher = more resistant" orientation.
    """

    def __init__(
        self, task: str = "classification", feature: str = "load:balance", sign: float = -1.0
    ) -> None:
        self.task = task
        self.feature = feature
        self.sign = sign

    def fit(self, X: pd.DataFrame, y: Any) -> SignatureScoreEstimator:
        """Fit on a prepared matrix ``X`` (n_samples, n_genes) and target ``y`` (n_samples,)."""
        _check_task(self.task)
        target = np.asarray(y)
        if self.task == "classification" and np.unique(target).size < 2:
            raise LabelError("the signature baseline needs both classes in its training data")
        self.features_ = NKFeatureBuilder().fit(X)
        if self.feature not in self.features_.get_feature_names_out():
            raise InputError(f"feature {self.feature!r} cannot be built from these genes")
        raw = self._raw_score(X)
        self.mean_ = float(raw.mean())
        self.scale_ = max(float(raw.std()), _SD_FLOOR)
        link = LogisticRegression() if self.task == "classification" else LinearRegression()
        self.link_ = link.fit(self._standardized(raw)[:, None], target)
        if self.task == "classification":
            self.classes_ = self.link_.classes_
        return self

    def _raw_score(self, X: pd.DataFrame) -> np.ndarray:
        return self.sign * self.features_.transform(X)[self.feature].to_numpy()

    def score(self, X: pd.DataFrame) -> np.ndarray:
        """Standardized signature score, shape (n_samples,); higher = more resistant."""
        if not hasattr(self, "link_"):
            raise NotFittedError("SignatureScoreEstimator is not fitted")
        return self._standardized(self._raw_score(X))

    def _standardized(self, raw: np.ndarray) -> np.ndarray:
        return (raw - self.mean_) / self.scale_

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        """Class probabilities, shape (n_samples, 2); column 1 is "resistant"."""
        if self.task != "classification":
            raise InputError("predict_proba is only defined for classification")
        return self.link_.predict_proba(self.score(X)[:, None])

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        """0/1 calls (classification) or predicted readouts (regression), shape (n_samples,)."""
        return self.link_.predict(self.score(X)[:, None])

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        """The single input of the link, shape (1,)."""
        return np.array([f"signature:{self.feature}"], dtype=object)


def _linear_baseline(task: str) -> Pipeline:
    model = (
        LogisticRegression(C=0.1, max_iter=5000)
        if task == "classification"
        else RidgeCV(alphas=np.logspace(-2, 4, 13))
    )
    return Pipeline(
        [("features", NKFeatureBuilder()), ("scale", StandardScaler()), ("model", model)]
    )


def _xgb_allgenes(task: str, random_state: int, n_jobs: int) -> XGBClassifier | XGBRegressor:
    kind = XGBClassifier if task == "classification" else XGBRegressor
    return kind(
        n_estimators=300,
        tree_method="hist",
        max_bin=XGB_MAX_BIN,
        n_jobs=n_jobs,
        random_state=random_state,
    )


def baseline_estimators(
    task: str, random_state: int = 0, n_jobs: int = XGB_N_JOBS
) -> dict[str, EstimatorFactory]:
    """Baselines to fit on the same folds as the model.

    ``linear``
        :class:`NKFeatureBuilder` + ``StandardScaler`` + ``LogisticRegression(C=0.1)``
        (classification) or ``RidgeCV`` (regression): the same features, a linear model.
    ``signature``
        :class:`SignatureScoreEstimator` on ``-load:balance``: one knowledge-based score.
    ``xgb_allgenes``
        Plain XGBoost (300 trees, ``hist`` with :data:`XGB_MAX_BIN` bins, ``n_jobs``
        threads, other parameters at their defaults) on every input gene, no feature
        engineering: the model a user would write by hand.

    Returns
    -------
    dict
        Name -> factory of an unfitted estimator taking the prepared matrix.
    """
    _check_task(task)
    return {
        "linear": lambda: _linear_baseline(task),
        "signature": lambda: SignatureScoreEstimator(task=task),
        "xgb_allgenes": lambda: _xgb_allgenes(task, random_state, n_jobs),
    }


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

    task: str
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
        fn = _check_metric(self.task, metric)
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
        return _bootstrap_indices(y, n_bootstrap, seed, self.task == "classification")

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
            low, high = _percentile_interval(
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
        _check_metric(self.task, metric)
        point = self.repeat_metrics(a)[metric] - self.repeat_metrics(b)[metric]
        pooled = self._paired_pool([a, b])
        indices = self._resample(pooled, n_bootstrap, seed)
        diff = self._bootstrap_values(a, metric, indices, pooled) - self._bootstrap_values(
            b, metric, indices, pooled
        )
        low, high = _percentile_interval(diff)
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


def _predict(estimator: Any, X: pd.DataFrame, task: str) -> np.ndarray:
    if task == "classification":
        return np.asarray(estimator.predict_proba(X), dtype=np.float64)[:, 1]
    return np.asarray(estimator.predict(X), dtype=np.float64).ravel()


def _fold_predictions(
    name: str, factory: EstimatorFactory, X: pd.DataFrame, y: np.ndarray, fold: Fold, task: str
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
    name: str, fold: Fold, task: str, y_true: np.ndarray, y_pred: np.ndarray
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
    task: str,
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
        From :func:`make_folds`; shared by all estimators (paired comparison).
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
    values = _target_values(y, task)
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
    task: str,
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
    _check_task(task)
    group_of = _align_groups(groups, y)
    result = cross_validate(
        {MODEL_NAME: factory}, X, y, _leave_one_group_out(group_of), task, progress
    )
    held_out = result.predictions.assign(
        group=pd.Series(group_of, index=y.index).loc[result.predictions["sample_id"]].to_numpy()
    )
    parts = [*held_out.groupby("group"), ("ALL", held_out)]
    return pd.DataFrame([_group_row(group, part, task) for group, part in parts])


def _group_row(group: Any, part: pd.DataFrame, task: str) -> dict[str, Any]:
    row: dict[str, Any] = {"group": group, "n": len(part)}
    if task == "classification":
        row["n_resistant"] = int(part["y_true"].sum())
    return row | score(task, part["y_true"], part["y_pred"])
