"""The metrics of one evaluation, as a reviewer reads them: pooled, within lineage, held-out
lineages, and against the best baseline on the same folds.

:func:`evaluation_summary` assembles what a training run logs and what the accuracy panel
tabulates from the cross-validation result (and, when lineages are known, the
leave-one-lineage-out result), so both report the same numbers under the same names.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from nkpredict.evaluate.cv import CVResult
from nkpredict.evaluate.metrics import HIGHER_IS_BETTER, PRIMARY_METRIC
from nkpredict.vocabulary import Task

__all__ = [
    "HEADLINE_METRICS",
    "EvaluationSummary",
    "comparison_sentence",
    "evaluation_summary",
    "headline",
]

HEADLINE_METRICS: dict[str, tuple[str, ...]] = {
    "classification": (
        "cv_roc_auc",
        "cv_within_lineage_roc_auc",
        "lolo_roc_auc",
        "baseline_lineage_cv_roc_auc",
        "baseline_xgb_allgenes_cv_roc_auc",
        "cv_roc_auc_minus_best_baseline",
        "oracle_roc_auc",
    ),
    "regression": (
        "cv_rmse",
        "cv_spearman",
        "cv_within_lineage_spearman",
        "lolo_rmse",
        "lolo_spearman",
        "baseline_lineage_cv_rmse",
        "baseline_xgb_allgenes_cv_rmse",
        "cv_rmse_minus_best_baseline",
    ),
}
"""The metrics shown first (train summary, report, ``/v1/model``), per task."""


@dataclass
class EvaluationSummary:
    """Metrics of one evaluation and the name of the best baseline (None without one)."""

    metrics: dict[str, float]
    best_baseline: str | None = None


def evaluation_summary(
    result: CVResult,
    groups: pd.Series | None = None,
    lineages: pd.Series | None = None,
    lolo: CVResult | None = None,
    n_bootstrap: int = 1000,
    seed: int = 0,
) -> EvaluationSummary:
    """Every metric of a cross-validation, with 95% intervals from one bootstrap.

    Parameters
    ----------
    result : CVResult
        The model (:data:`~nkpredict.evaluate.cv.MODEL_NAME`) and baselines on the same folds.
    groups : Series, optional
        Groups of the bootstrap (cell lines, patients), indexed by sample; whole groups are
        resampled.
    lineages : Series, optional
        Lineage of each sample: adds ``cv_within_lineage_<metric>`` for every estimator
        (``baseline_<name>_cv_within_lineage_<metric>``).
    lolo : CVResult, optional
        Leave-one-lineage-out result of the model: adds ``lolo_<metric>`` (the metric of the
        pooled held-out predictions) with intervals and ``lolo_<primary>_fold_sd``.
    n_bootstrap, seed : int

    Returns
    -------
    EvaluationSummary
        ``metrics`` also holds ``cv_<primary>_minus_best_baseline`` with ``_ci_low`` and
        ``_ci_high`` when there are baselines.
    """
    metrics = result.summary(n_bootstrap, seed, groups)
    if lineages is not None and lineages.nunique() > 1:
        metrics |= result.within_group_summary(
            lineages, "within_lineage", n_bootstrap, seed, groups
        )
    best, difference = result.best_baseline_difference(n_bootstrap, seed, groups)
    metrics |= difference
    if lolo is not None:
        metrics |= lolo.summary(n_bootstrap, seed, groups, scheme="lolo")
    return EvaluationSummary(metrics, best)


def headline(metrics: dict[str, float], task: str) -> list[tuple[str, float, float, float]]:
    """The :data:`HEADLINE_METRICS` present in ``metrics``: ``(name, value, ci_low, ci_high)``
    (NaN where a metric has no interval)."""
    rows = []
    nan = float("nan")
    for name in HEADLINE_METRICS.get(task, ()):
        if name in metrics:
            rows.append(
                (
                    name,
                    metrics[name],
                    metrics.get(f"{name}_ci_low", nan),
                    metrics.get(f"{name}_ci_high", nan),
                )
            )
    return rows


def comparison_sentence(
    metrics: dict[str, float],
    best_baseline: str | None,
    task: Task,
    metric_label: str | None = None,
    baseline_label: str | None = None,
) -> str:
    """How the model compares with its best baseline, in one plain sentence.

    The verdict follows the 95% interval of the paired difference on the same folds: better or
    worse only when the interval excludes zero, "no clear difference" otherwise.
    ``metric_label`` and ``baseline_label`` replace the metric's and the baseline's names in
    the sentence (the report writes them in words).

    Returns
    -------
    str
        Empty when the evaluation had no baselines.
    """
    metric = PRIMARY_METRIC[task]
    difference = metrics.get(f"cv_{metric}_minus_best_baseline")
    if best_baseline is None or difference is None:
        return ""
    low = metrics.get(f"cv_{metric}_minus_best_baseline_ci_low", float("nan"))
    high = metrics.get(f"cv_{metric}_minus_best_baseline_ci_high", float("nan"))
    higher = HIGHER_IS_BETTER[metric]
    if low > 0:
        verdict = "better than" if higher else "worse than"
    elif high < 0:
        verdict = "worse than" if higher else "better than"
    else:
        verdict = "not clearly different from"
    model = metrics.get(f"cv_{metric}", float("nan"))
    baseline = metrics.get(f"baseline_{best_baseline}_cv_{metric}", float("nan"))
    return (
        f"nkpredict is {verdict} its best baseline ({baseline_label or best_baseline}): "
        f"{metric_label or metric} {model:.3f} "
        f"against {baseline:.3f}, a difference of {difference:+.3f} "
        f"(95% interval {low:+.3f} to {high:+.3f}, same folds)."
    )
