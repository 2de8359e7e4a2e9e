"""The report's performance part: how well the model predicts, and on what evidence.

Three views, each saying where its numbers come from:

- :func:`performance_table`: the one table a reviewer reads first. For the primary metric:
  the model pooled, within lineage and leave-one-lineage-out; the lineage-only baseline and the
  best baseline on the same folds; the paired difference to the best baseline; the best
  achievable score on simulated data. From the metrics recorded with the model.
- :func:`lineage_table`: per lineage, the model's score inside it (cross-validated on all
  lineages) and with it held out (leave-one-lineage-out).
- :func:`curves_section`: ROC, precision-recall and calibration curves of the out-of-fold
  predictions of the training run's cross-validation when its result is given; otherwise of
  the given cohort with its labels, said as such (new data: an external check; the training
  samples: optimistic).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pandas as pd

from nkpredict.evaluate.cv import MODEL_NAME, CVResult, group_table
from nkpredict.evaluate.metrics import (
    HIGHER_IS_BETTER,
    PRIMARY_METRIC,
    calibration_table,
    classification_metrics,
    regression_metrics,
)
from nkpredict.exceptions import LabelError
from nkpredict.model.fitted import NKResistanceModel
from nkpredict.report.figures import figure_data_uri
from nkpredict.report.names import baseline_label, metric_label, metric_name
from nkpredict.report.plots import classification_figure, regression_figure

__all__ = [
    "NEW_DATA_CAVEAT",
    "OUT_OF_FOLD_NOTE",
    "ObservedLabels",
    "curves_section",
    "format_estimate",
    "format_number",
    "lineage_table",
    "observed_labels",
    "performance_table",
]

NEW_DATA_CAVEAT = (
    "These curves are drawn on the samples of this report with the labels given, not out of "
    "fold: on samples the model was not trained on they are an external check; on its own "
    "training samples they are optimistic."
)
OUT_OF_FOLD_NOTE = (
    "Out-of-fold predictions of the training run's cross-validation: every sample was "
    "predicted by a model that did not see it (averaged over the CV repeats), so these curves "
    "are an honest picture of performance on new samples like these."
)


def format_number(value: Any) -> str:
    """Three decimals for floats, ``n/a`` for None and NaN, ``str`` otherwise."""
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return "n/a"
    return f"{value:.3f}" if isinstance(value, float) else str(value)


def format_estimate(metrics: dict[str, Any], key: str) -> str:
    """``estimate [ci_low, ci_high]`` of metric ``key`` (no interval when none is recorded)."""
    text = format_number(metrics.get(key))
    if f"{key}_ci_low" in metrics:
        low = format_number(metrics[f"{key}_ci_low"])
        text += f" [{low}, {format_number(metrics.get(f'{key}_ci_high'))}]"
    return text


def _cell(metrics: dict[str, Any], key: str, best: str | None) -> dict[str, str]:
    if key not in metrics:
        return {"text": "", "key": ""}
    return {"text": format_estimate(metrics, key), "key": key, "title": metric_label(key, best)}


def performance_table(
    metrics: dict[str, Any], best_baseline: str | None, task: str
) -> dict[str, Any]:
    """The performance table of the primary metric (template context).

    Returns
    -------
    dict
        ``metric`` (its name in words), ``higher_is_better``, ``columns`` (three headers:
        pooled, within lineage, leave one lineage out) and ``rows``: ``label``, ``what`` (how
        to read it) and ``cells`` (``text`` = ``estimate [95% interval]``, ``key`` = the
        metric's contract name, empty where not measured). Empty ``rows`` when no metric is
        recorded.
    """
    metric = PRIMARY_METRIC.get(task, "roc_auc")  # type: ignore[call-overload]
    prefixes: list[tuple[str, str, str]] = [
        ("nkpredict", "cv_", "the model; its leave-one-lineage-out score is on unseen lineages"),
        (
            "baseline: lineage alone",
            "baseline_lineage_cv_",
            "what knowing the lineage alone predicts: the model should beat it within lineages",
        ),
    ]
    if best_baseline is not None and best_baseline != "lineage":
        prefixes.append(
            (
                f"best baseline: {baseline_label(best_baseline)}",
                f"baseline_{best_baseline}_cv_",
                "the strongest baseline on the same folds",
            )
        )
    rows = []
    for label, prefix, what in prefixes:
        keys = [f"{prefix}{metric}", f"{prefix}within_lineage_{metric}"]
        keys.append(f"lolo_{metric}" if prefix == "cv_" else "")
        if not any(k in metrics for k in keys):
            continue
        rows.append(
            {
                "label": label,
                "what": what,
                "cells": [_cell(metrics, k, best_baseline) for k in keys],
            }
        )
    difference = f"cv_{metric}_minus_best_baseline"
    if difference in metrics:
        against = baseline_label(best_baseline) if best_baseline else "best baseline"
        rows.append(
            {
                "label": f"nkpredict minus best baseline ({against})",
                "what": "paired difference on the same folds and resamples; an interval that "
                "excludes 0 is a clear difference",
                "cells": [_cell(metrics, difference, best_baseline), _blank(), _blank()],
            }
        )
    oracle = f"oracle_{metric}"
    if oracle in metrics:
        rows.append(
            {
                "label": "best achievable (simulator's true probabilities)",
                "what": "the ceiling on simulated data: the generator's own probabilities",
                "cells": [_cell(metrics, oracle, best_baseline), _blank(), _blank()],
            }
        )
    return {
        "metric": metric_name(metric),
        "higher_is_better": HIGHER_IS_BETTER.get(metric, True),
        "columns": [
            "all samples (cross-validated)",
            "within lineage (cross-validated)",
            "leave one lineage out",
        ],
        "rows": rows,
    }


def _blank() -> dict[str, str]:
    return {"text": "", "key": ""}


def lineage_table(
    model: NKResistanceModel, result: CVResult | None, lineages: pd.Series | None
) -> dict[str, Any]:
    """Per-lineage performance (template context).

    Parameters
    ----------
    model : NKResistanceModel
        Its ``metadata_["leave_one_lineage_out"]`` (records of
        :func:`~nkpredict.evaluate.cv.group_table`) gives the held-out-lineage scores, and
        ``metadata_["within_lineage"]`` the within-lineage ones when ``result`` is None.
    result : CVResult, optional
        The training run's cross-validation: gives each lineage's score inside the pooled CV.
    lineages : Series, optional
        Lineage of each training sample, indexed by sample id (needed with ``result``).

    Returns
    -------
    dict
        ``metric`` (in words), ``rows`` (``lineage``, ``n``, ``n_resistant``, ``within``,
        ``lolo``; formatted) and ``note``; empty ``rows`` when neither source is available.
    """
    metric = PRIMARY_METRIC[model.task]
    by_lineage: dict[str, dict[str, Any]] = {}
    for record in (model.metadata_ or {}).get("leave_one_lineage_out") or []:
        row = by_lineage.setdefault(str(record["group"]), _lineage_row(record))
        row["lolo"] = format_number(_float(record.get(metric)))
    if result is not None and lineages is not None and MODEL_NAME in result.estimators:
        within = group_table(result, lineages).to_dict(orient="records")
    else:  # recorded with the model by the training run, when it knew lineages
        within = (model.metadata_ or {}).get("within_lineage") or []
    for record in within:
        row = by_lineage.setdefault(str(record["group"]), _lineage_row(record))
        row["within"] = format_number(_float(record.get(metric)))
    rows = [by_lineage[k] for k in sorted(by_lineage, key=lambda k: (k == "ALL", k))]
    for row in rows:
        if row["lineage"] == "ALL":
            row["lineage"] = "all lineages (pooled)"
    sources = []
    if any(r["within"] != "" for r in rows):
        sources.append(
            "within lineage: the out-of-fold predictions of every CV repeat (models trained "
            "on all lineages), scored inside each lineage"
        )
    if any(r["lolo"] != "" for r in rows):
        sources.append(
            "leave one lineage out: each lineage predicted by a model trained on the others"
        )
    return {"metric": metric_name(metric), "rows": rows, "note": "; ".join(sources)}


def _lineage_row(record: dict[str, Any]) -> dict[str, Any]:
    n_resistant = record.get("n_resistant")
    return {
        "lineage": str(record["group"]),
        "n": int(record["n"]),
        "n_resistant": "" if n_resistant is None else int(n_resistant),
        "within": "",
        "lolo": "",
    }


def _float(value: Any) -> float | None:
    return None if value is None else float(value)


# --------------------------------------------------------------------------- curves


@dataclass
class ObservedLabels:
    """The observed target of the report's samples (``y`` indexed by sample id) and the
    label column it came from; ``note`` says why there is none when ``y`` is None."""

    y: pd.Series | None
    column: str
    note: str = ""


def observed_labels(
    model: NKResistanceModel,
    sample_ids: pd.Index,
    labels: pd.DataFrame | None,
    label_column: str | None,
) -> ObservedLabels:
    """The model's label of the samples ``sample_ids`` from ``labels`` (by its definition)."""
    column = label_column or model.label_definition_.column
    if labels is None:
        note = "No labels given: curves on this cohort need the observed label of each sample."
        return ObservedLabels(None, column, note)
    if column not in labels.columns:
        note = f"The labels have no column {column!r}; the curves need the model's label."
        return ObservedLabels(None, column, note)
    try:
        y, _ = replace(model.label_definition_, column=column).resolve(labels)
    except LabelError as exc:
        return ObservedLabels(None, column, f"Labels could not be used: {exc}")
    y.index = y.index.astype(str)
    y = y[y.index.isin(sample_ids.astype(str))]
    if y.empty:
        note = f"Labels could not be used: no label in {column!r} matches a sample id"
        return ObservedLabels(None, column, note)
    return ObservedLabels(y, column)


def curves_section(
    model: NKResistanceModel,
    predictions: pd.DataFrame,
    observed: ObservedLabels,
    result: CVResult | None = None,
) -> dict[str, Any]:
    """ROC, precision-recall and calibration (or observed-vs-predicted) figure and metrics.

    Parameters
    ----------
    model : NKResistanceModel
    predictions : DataFrame
        :meth:`~NKResistanceModel.predict_table` of the report's samples, indexed by sample id.
    observed : ObservedLabels
        The samples' labels (used when ``result`` is None).
    result : CVResult, optional
        The training run's cross-validation: its out-of-fold predictions are drawn (the model
        and every baseline) and the cohort's labels are not needed.

    Returns
    -------
    dict
        ``available``, ``source`` (``out_of_fold``, ``this_cohort`` or ``none``), ``note``,
        ``image``, ``metrics`` (rows ``metric`` in words, ``value``).
    """
    if result is not None and MODEL_NAME in result.estimators:
        return _out_of_fold(model, result)
    if observed.y is None:
        return {"available": False, "source": "none", "note": observed.note}
    y = observed.y
    if model.task == "classification":
        column = (
            "calibrated_probability"
            if "calibrated_probability" in predictions.columns
            else "probability"
        )
        probability = predictions.loc[y.index, column].to_numpy(dtype=float)
        which = "calibrated probabilities" if column != "probability" else "probabilities"
        count = f"{len(y)} labelled samples ({int(y.sum())} resistant), column {observed.column!r}"
        return _classification(
            {"nkpredict": (y.to_numpy(), probability)},
            "this cohort",
            f"{count}; the model's {which}. {NEW_DATA_CAVEAT}",
            "this_cohort",
        )
    prediction = predictions.loc[y.index, "score"].to_numpy(dtype=float)
    note = f"{len(y)} labelled samples, column {observed.column!r}. {NEW_DATA_CAVEAT}"
    return _regression(y.to_numpy(dtype=float), prediction, observed.column, "this cohort", note)


def _out_of_fold(model: NKResistanceModel, result: CVResult) -> dict[str, Any]:
    pooled = {name: result.pooled(name).dropna() for name in result.estimators}
    n_repeats = int(result.predictions["repeat"].nunique())
    model_rows = pooled[MODEL_NAME]
    y = model_rows["y_true"].to_numpy()
    summary = f"{len(y)} training samples, {n_repeats} CV repeat{'s' if n_repeats != 1 else ''}" + (
        f" ({int(y.sum())} resistant)" if model.task == "classification" else ""
    )
    note = f"{summary}. {OUT_OF_FOLD_NOTE}"
    if model.task == "classification":
        curves = {
            (MODEL_NAME if name == MODEL_NAME else f"baseline: {baseline_label(name)}"): (
                frame["y_true"].to_numpy(),
                frame["y_pred"].to_numpy(),
            )
            for name, frame in pooled.items()
        }
        return _classification(curves, "out of fold", note, "out_of_fold")
    return _regression(
        y.astype(float),
        model_rows["y_pred"].to_numpy(dtype=float),
        model.label_definition_.column,
        "out of fold",
        note,
    )


def _metric_rows(metrics: dict[str, float]) -> list[dict[str, str]]:
    return [{"metric": metric_name(k), "value": format_number(v)} for k, v in metrics.items()]


def _classification(
    curves: dict[str, tuple[np.ndarray, np.ndarray]], where: str, note: str, source: str
) -> dict[str, Any]:
    y, probability = next(iter(curves.values()))
    table = calibration_table(y, probability, n_bins=max(2, min(10, len(y) // 20)))
    return {
        "available": True,
        "source": source,
        "note": note,
        "image": figure_data_uri(classification_figure(curves, table, where)),
        "metrics": _metric_rows(classification_metrics(y, probability)),
    }


def _regression(
    y: np.ndarray, prediction: np.ndarray, column: str, where: str, note: str
) -> dict[str, Any]:
    return {
        "available": True,
        "source": "out_of_fold" if where == "out of fold" else "this_cohort",
        "note": note,
        "image": figure_data_uri(regression_figure(y, prediction, column, where)),
        "metrics": _metric_rows(regression_metrics(y, prediction)),
    }
