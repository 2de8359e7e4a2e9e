"""Evaluation figures (matplotlib, headless): ROC, precision-recall, calibration, residuals."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from sklearn.metrics import precision_recall_curve, roc_curve

__all__ = ["classification_figure", "regression_figure"]


def classification_figure(
    curves: dict[str, tuple[np.ndarray, np.ndarray]], calibration: pd.DataFrame
) -> Figure:
    """ROC, precision-recall and calibration panels.

    Parameters
    ----------
    curves : dict
        Name -> (y_true, y_prob), each of shape (n_samples,); the first entry is the model.
    calibration : DataFrame
        Columns ``mean_predicted`` and ``fraction_positive`` (one row per bin) of the model.
    """
    fig, (roc_ax, pr_ax, cal_ax) = plt.subplots(1, 3, figsize=(13, 4.2))
    for name, (y_true, y_prob) in curves.items():
        fpr, tpr, _ = roc_curve(y_true, y_prob)
        precision, recall, _ = precision_recall_curve(y_true, y_prob)
        roc_ax.plot(fpr, tpr, label=name)
        pr_ax.plot(recall, precision, label=name)
    roc_ax.plot([0, 1], [0, 1], color="grey", linestyle=":")
    roc_ax.set(xlabel="False positive rate", ylabel="True positive rate", title="ROC")
    pr_ax.set(xlabel="Recall", ylabel="Precision", title="Precision-recall")
    cal_ax.plot([0, 1], [0, 1], color="grey", linestyle=":")
    cal_ax.plot(calibration["mean_predicted"], calibration["fraction_positive"], marker="o")
    cal_ax.set(
        xlabel="Mean predicted probability",
        ylabel="Fraction resistant",
        title="Calibration (out of fold)",
        xlim=(0, 1),
        ylim=(0, 1),
    )
    roc_ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    return fig


def regression_figure(y_true: np.ndarray, y_pred: np.ndarray, label: str) -> Figure:
    """Observed vs predicted scatter for a regression readout (both shape (n_samples,))."""
    fig, ax = plt.subplots(figsize=(4.5, 4.2))
    ax.scatter(y_true, y_pred, s=8, alpha=0.6)
    low, high = float(np.min(y_true)), float(np.max(y_true))
    ax.plot([low, high], [low, high], color="grey", linestyle=":")
    ax.set(xlabel=f"Observed {label}", ylabel=f"Predicted {label}", title="Out-of-fold")
    fig.tight_layout()
    return fig
