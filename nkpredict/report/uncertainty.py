"""The report's uncertainty section: calibration, conformal sets and the cohort's uncertain calls.

What it shows, from :meth:`~nkpredict.uncertainty.model.UncertaintyModel.describe` and the
prediction table of the report's samples:

- the calibration method chosen and why (the cross-validated log loss of each candidate on the
  out-of-fold predictions, the lowest kept);
- the conformal level and, per Mondrian bin (lineage), the number of calibration predictions,
  the threshold and the range of the model's probability in which a call is *uncertain* (its
  set holds both labels);
- the share of uncertain calls in this cohort, overall and per recognised lineage;
- with labels and no cross-validation result (a report on new data), how often the sets
  contain the observed label.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from nkpredict.model.fitted import NKResistanceModel
from nkpredict.report.names import CALIBRATION_LABELS
from nkpredict.report.performance import format_number
from nkpredict.uncertainty.conformal import CLASS_LABELS, MIN_BIN_SIZE

__all__ = ["SET_MEANING", "uncertain_range", "uncertainty_section"]

SET_MEANING = (
    "A prediction set is the list of labels the model cannot rule out at the chosen level: "
    "over samples like the training ones, the true label is in the set at least that often "
    "(for example 90% of sets at level 0.9). A set with one label is a confident call; a set "
    "with both labels is an 'uncertain' call: the evidence fits either label, so the sample "
    "needs a measurement before it is acted on. The guarantee holds on average over samples "
    "exchangeable with the training cohort, within each lineage that has its own threshold; "
    "it says nothing about a sample that is out of domain."
)


def uncertain_range(
    threshold: float, decision_threshold: float = 0.5
) -> tuple[float, float] | None:
    """The range of the model's probability in which a binary set holds both labels.

    A label is in the set when one minus its probability is at most ``threshold``, and the
    called label (at ``decision_threshold``) always is
    (:meth:`~nkpredict.uncertainty.conformal.ConformalPredictor.sets`): both labels from
    ``min(1 - threshold, decision_threshold)`` to ``max(threshold, decision_threshold)``.

    Returns
    -------
    tuple of float or None
        ``(low, high)``; None when no probability gives an uncertain call.
    """
    d = decision_threshold
    if threshold < d <= 1.0 - threshold:
        return None
    return (max(0.0, min(1.0 - threshold, d)), min(1.0, max(threshold, d)))


def _calibration(described: dict[str, Any] | None) -> dict[str, Any] | None:
    if described is None:
        return None
    method = described["method"]
    losses = described.get("log_loss") or {}
    rows = [
        {
            "method": CALIBRATION_LABELS.get(m, m),
            "log_loss": format_number(losses[m]),
            "chosen": m == method,
        }
        for m in ("none", "platt", "isotonic")
        if m in losses
    ]
    if not losses:
        why = f"set to {method} when the model was trained"
    elif method == "none":
        why = (
            "the model's own probabilities are kept: neither map lowered the log loss, "
            "cross-validated on the out-of-fold predictions"
        )
    else:
        why = (
            "kept because its log loss, cross-validated on the out-of-fold predictions, is the "
            "lowest of the candidates (no calibration included)"
        )
    if losses and "isotonic" not in losses:
        why += (
            "; isotonic regression was not tried: it needs more out-of-fold predictions "
            "(at least 40, and 10 of the rarer label) than this training cohort gave"
        )
    return {"method": CALIBRATION_LABELS.get(method, method), "why": why, "rows": rows}


def _bins(model: NKResistanceModel, described: dict[str, Any]) -> list[dict[str, Any]]:
    pooled = float(described["pooled_threshold"])
    classification = model.task == "classification"
    rows = []
    entries = [("all lineages (pooled)", described["n_calibration"], pooled, True)]
    for name, bin_ in described["mondrian_bins"].items():
        threshold = bin_.get("threshold")
        own = threshold is not None
        entries.append((name, bin_["n"], float(threshold) if own else pooled, own))
    for name, n, threshold, own in entries:
        row = {"bin": name, "n": n, "threshold": format_number(threshold), "own": own}
        if classification:
            span = uncertain_range(threshold, model.decision_threshold)
            row["uncertain"] = "never" if span is None else f"{span[0]:.2f} to {span[1]:.2f}"
        else:
            row["uncertain"] = f"prediction +- {format_number(threshold)}"
        rows.append(row)
    return rows


def _cohort(predictions: pd.DataFrame) -> dict[str, Any]:
    n = len(predictions)
    uncertain = predictions["call"] == "uncertain"
    by_lineage = []
    if "lineage" in predictions.columns and predictions["lineage"].notna().any():
        for lineage, part in predictions.groupby(predictions["lineage"].astype(str)):
            share = float((part["call"] == "uncertain").mean())
            by_lineage.append({"lineage": lineage, "n": len(part), "share": f"{share:.1%}"})
    counts = predictions["call"].value_counts()
    return {
        "n": n,
        "n_uncertain": int(uncertain.sum()),
        "share": f"{float(uncertain.mean()) if n else 0.0:.1%}",
        "calls": [{"call": c, "n": int(counts.get(c, 0))} for c in (*CLASS_LABELS, "uncertain")],
        "by_lineage": by_lineage,
    }


def _coverage(predictions: pd.DataFrame, observed: pd.Series | None) -> str:
    """How often the sets of the labelled samples hold the observed label (empty without)."""
    if observed is None or "prediction_set" not in predictions.columns:
        return ""
    sets = predictions.loc[observed.index, "prediction_set"].astype(str).str.split(";")
    truth = np.where(observed.to_numpy() == 1, CLASS_LABELS[0], CLASS_LABELS[1])
    covered = np.mean([t in s for t, s in zip(truth, sets, strict=True)])
    return (
        f"On the {len(observed)} labelled samples of this report, the set holds the observed "
        f"label in {covered:.1%} of cases."
    )


def uncertainty_section(
    model: NKResistanceModel,
    predictions: pd.DataFrame,
    observed: pd.Series | None = None,
    on_new_data: bool = True,
) -> dict[str, Any]:
    """Template context of the uncertainty section.

    Parameters
    ----------
    model : NKResistanceModel
    predictions : DataFrame
        Prediction table of the report's samples, indexed by sample id.
    observed : Series, optional
        Observed labels (1 = resistant) of labelled samples, indexed by sample id.
    on_new_data : bool
        False for the training report (its samples are the calibration samples, so their
        coverage says nothing): the coverage sentence is left out.

    Returns
    -------
    dict
        ``available``, ``note``, ``level``, ``n_calibration``, ``calibration`` (method in words,
        ``why``, candidate ``rows``), ``bins``, ``cohort`` (counts and shares), ``coverage``,
        ``meaning``, ``classification``.
    """
    uncertainty = model.uncertainty
    if uncertainty is None:
        return {
            "available": False,
            "note": "This model was saved without calibration or conformal sets (train it with "
            "the nkpredict pipeline, which fits them on the cross-validation's out-of-fold "
            "predictions): its calls have no prediction sets.",
        }
    described = uncertainty.describe()
    classification = model.task == "classification"
    return {
        "available": True,
        "note": "",
        "classification": classification,
        "level": described["conformal_level"],
        "n_calibration": described["n_calibration"],
        "min_bin_size": MIN_BIN_SIZE,
        "calibration": _calibration(described["calibration"]),
        "bins": _bins(model, described),
        "cohort": _cohort(predictions) if classification else None,
        "coverage": _coverage(predictions, observed) if classification and on_new_data else "",
        "meaning": SET_MEANING,
    }
