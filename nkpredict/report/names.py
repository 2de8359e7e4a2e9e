"""Readable names of the report: metrics, estimators, domain checks and calibration methods.

Metric keys stay the contract names of MLflow, the train summary and ``/v1/model``
(``cv_roc_auc``, ``baseline_lineage_cv_roc_auc``, ``lolo_roc_auc`` ...); the report shows them
in words (``ROC AUC (cross-validated)``) and keeps the key as a tooltip, so a reader can find
the same number in the tracking server.
"""

from __future__ import annotations

import re

__all__ = [
    "BASELINE_LABELS",
    "CALIBRATION_LABELS",
    "DOMAIN_CHECK_LABELS",
    "METRIC_LABELS",
    "baseline_label",
    "metric_label",
    "metric_name",
]

METRIC_LABELS: dict[str, str] = {
    "roc_auc": "ROC AUC",
    "pr_auc": "PR AUC (average precision)",
    "brier": "Brier score",
    "balanced_accuracy": "balanced accuracy",
    "rmse": "RMSE",
    "spearman": "Spearman correlation",
}
"""Each metric of :data:`nkpredict.evaluate.metrics.METRICS` in words."""

BASELINE_LABELS: dict[str, str] = {
    "linear": "linear model on the NK features",
    "signature": "one signature score",
    "lineage": "lineage alone",
    "xgb_allgenes": "XGBoost on all genes",
}
"""Each baseline of :data:`nkpredict.evaluate.baselines.BASELINE_NAMES` in words."""

DOMAIN_CHECK_LABELS: dict[str, str] = {
    "distance": "far from the training cohort (distance in the standardized feature space)",
    "feature_range": "a feature beyond the training range (in training standard deviations)",
    "platform": "scale or platform looks different (mean, spread, share of near-zero genes)",
    "unseen_lineage": "lineage unlike every training lineage",
    "ambiguous_lineage": "lineage ambiguous (no training lineage clearly recognised)",
    "low_coverage": "low coverage (few catalogue genes measured)",
}
"""Each domain check (:data:`nkpredict.vocabulary.DomainReason`) in words."""

CALIBRATION_LABELS: dict[str, str] = {
    "none": "no calibration (the model's own probabilities)",
    "platt": "Platt scaling (a logistic curve on the model's log-odds)",
    "isotonic": "isotonic regression (a monotone step function of the log-odds)",
}
"""Each calibration method (:data:`nkpredict.vocabulary.CalibrationMethod`) in words."""

_SUFFIXES = {
    "_ci_low": "lower end of the 95% interval",
    "_ci_high": "upper end of the 95% interval",
    "_fold_sd": "standard deviation over folds",
}


def metric_name(metric: str) -> str:
    """``roc_auc`` -> ``ROC AUC``; an unknown metric keeps its spaces-for-underscores name."""
    return METRIC_LABELS.get(metric, metric.replace("_", " "))


def baseline_label(name: str) -> str:
    """``lineage`` -> ``lineage alone``; an unknown baseline keeps its name."""
    return BASELINE_LABELS.get(name, name.replace("_", " "))


def metric_label(key: str, best_baseline: str | None = None) -> str:
    """A summary metric key in words.

    Parameters
    ----------
    key : str
        E.g. ``cv_roc_auc``, ``cv_within_lineage_roc_auc``, ``lolo_roc_auc``,
        ``baseline_lineage_cv_roc_auc``, ``cv_roc_auc_minus_best_baseline``,
        ``oracle_brier`` (each optionally with ``_ci_low``, ``_ci_high`` or ``_fold_sd``).
    best_baseline : str, optional
        Named in the label of the difference to the best baseline.

    Returns
    -------
    str
        E.g. ``ROC AUC (cross-validated)``; an unrecognised key is returned unchanged.

    Examples
    --------
    >>> metric_label("cv_roc_auc")
    'ROC AUC (cross-validated)'
    >>> metric_label("baseline_lineage_cv_within_lineage_roc_auc")
    'ROC AUC within lineage, baseline: lineage alone (cross-validated)'
    """
    suffix = next((s for s in _SUFFIXES if key.endswith(s)), "")
    stem = key[: len(key) - len(suffix)]
    text = _stem_label(stem, best_baseline)
    if text is None:
        return key
    return f"{text}, {_SUFFIXES[suffix]}" if suffix else text


def _stem_label(stem: str, best_baseline: str | None) -> str | None:
    difference = re.fullmatch(r"cv_(.+)_minus_best_baseline", stem)
    if difference:
        against = f" ({baseline_label(best_baseline)})" if best_baseline else ""
        return f"{metric_name(difference.group(1))}: nkpredict minus best baseline{against}"
    if stem.startswith("oracle_"):
        metric = metric_name(stem.removeprefix("oracle_"))
        return f"{metric} of the true probabilities (best achievable)"
    scheme = re.fullmatch(r"(?:baseline_(.+?)_)?(cv|lolo)_(within_lineage_)?(.+)", stem)
    if not scheme:
        return None
    baseline, kind, within, metric = scheme.groups()
    text = metric_name(metric) + (" within lineage" if within else "")
    if baseline:
        text += f", baseline: {baseline_label(baseline)}"
    return text + (" (cross-validated)" if kind == "cv" else ", leave-one-lineage-out")
