"""Evaluation figures (matplotlib, headless): ROC, precision-recall, calibration, residuals.

Colours follow :mod:`nkpredict.report.colours`: the model in ink, each other estimator in a
colour that means nothing else in the report, reference lines grey and dotted; every panel
has a legend. ``where`` names what the predictions are (``out of fold`` for the cross-
validation of a training run, ``this cohort`` for a report on given samples).
"""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from sklearn.metrics import (
    average_precision_score,
    precision_recall_curve,
    roc_auc_score,
    roc_curve,
)

from nkpredict.report.colours import INK, REFERENCE, estimator_colour

__all__ = ["classification_figure", "regression_figure"]


def classification_figure(
    curves: dict[str, tuple[np.ndarray, np.ndarray]],
    calibration: pd.DataFrame,
    where: str = "out of fold",
) -> Figure:
    """ROC, precision-recall and calibration panels.

    Parameters
    ----------
    curves : dict
        Name -> (y_true, y_prob), each of shape (n_samples,); the first entry is the model.
    calibration : DataFrame
        Columns ``mean_predicted`` and ``fraction_positive`` (one row per bin) of the model.
    where : str
        What the predictions are, shown in each panel's title.
    """
    fig, (roc_ax, pr_ax, cal_ax) = plt.subplots(1, 3, figsize=(13, 4.4))
    prevalence = None
    for position, (name, (y_true, y_prob)) in enumerate(curves.items()):
        colour = estimator_colour(position)
        width = 2.0 if position == 0 else 1.2
        fpr, tpr, _ = roc_curve(y_true, y_prob)
        precision, recall, _ = precision_recall_curve(y_true, y_prob)
        both = len(np.unique(y_true)) > 1
        auc = roc_auc_score(y_true, y_prob) if both else float("nan")
        ap = average_precision_score(y_true, y_prob) if both else float("nan")
        roc_ax.plot(fpr, tpr, color=colour, linewidth=width, label=f"{name} (AUC {auc:.3f})")
        pr_ax.plot(recall, precision, color=colour, linewidth=width, label=f"{name} (AP {ap:.3f})")
        if prevalence is None:
            prevalence = float(np.mean(y_true))
    roc_ax.plot([0, 1], [0, 1], color=REFERENCE, linestyle=":", label="chance")
    roc_ax.set(xlabel="False positive rate", ylabel="True positive rate", title=f"ROC ({where})")
    if prevalence is not None:
        pr_ax.axhline(prevalence, color=REFERENCE, linestyle=":", label="share resistant")
    pr_ax.set(
        xlabel="Recall (resistant found)",
        ylabel="Precision",
        title=f"Precision-recall ({where})",
    )
    model = next(iter(curves), "model")
    cal_ax.plot([0, 1], [0, 1], color=REFERENCE, linestyle=":", label="perfect calibration")
    cal_ax.plot(
        calibration["mean_predicted"],
        calibration["fraction_positive"],
        marker="o",
        color=INK,
        linewidth=2.0,
        label=model,
    )
    cal_ax.set(
        xlabel="Mean predicted probability of resistance",
        ylabel="Fraction resistant",
        title=f"Calibration ({where})",
        xlim=(0, 1),
        ylim=(0, 1),
    )
    for ax in (roc_ax, pr_ax, cal_ax):  # below each panel: a legend never hides a curve
        ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.16), frameon=False)
    fig.tight_layout()
    return fig


def regression_figure(
    y_true: np.ndarray, y_pred: np.ndarray, label: str, where: str = "out of fold"
) -> Figure:
    """Observed vs predicted scatter for a regression readout (both shape (n_samples,))."""
    fig, ax = plt.subplots(figsize=(4.8, 4.4))
    ax.scatter(y_true, y_pred, s=8, alpha=0.6, color=INK, label="sample")
    low, high = float(np.min(y_true)), float(np.max(y_true))
    ax.plot([low, high], [low, high], color=REFERENCE, linestyle=":", label="prediction = observed")
    ax.set(xlabel=f"Observed {label}", ylabel=f"Predicted {label}", title=f"Predicted ({where})")
    ax.legend(fontsize=8, loc="upper left")
    fig.tight_layout()
    return fig
