"""Conformal prediction sets (classification) and intervals (regression), Mondrian by lineage.

Split-conformal prediction on the training job's out-of-fold predictions: every training sample
was predicted by a model that did not see it, so its *nonconformity score* (one minus the
out-of-fold probability of its true label; the absolute residual for regression) is a draw from
the distribution new samples will have. For a level ``1 - alpha`` the threshold of a bin of
``n`` calibration scores is the ``ceil((n + 1)(1 - alpha))``-th smallest; a new sample's set holds
every label whose score is at most its bin's threshold, so it contains the true label with
probability at least ``1 - alpha`` (Vovk et al. 2005; Angelopoulos & Bates 2023).

Mondrian: the bins are lineages (known for training samples, recognised from expression for new
ones, :mod:`nkpredict.domain.lineage`), so the guarantee holds within each lineage rather than
only on average. A lineage with fewer than ``min_bin_size`` calibration samples, or one the
model has not seen, uses the pooled threshold of all samples.

Binary sets are never empty here: the more probable label is always in the set (a slightly
conservative, standard choice that keeps every call readable). A set with both labels is an
``uncertain`` call.

The same thresholds as ``crepes``' non-smoothed Mondrian conformal classifier (tested), kept
as plain sorted scores in ``model.json`` so any level can be recomputed and nothing is pickled.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from nkpredict.exceptions import InputError
from nkpredict.vocabulary import Task

__all__ = ["CLASS_LABELS", "DEFAULT_LEVEL", "MIN_BIN_SIZE", "ConformalPredictor"]

DEFAULT_LEVEL = 0.9
"""Default level of prediction sets and intervals."""
MIN_BIN_SIZE = 20
"""Smallest number of calibration samples for a lineage to get its own threshold."""
CLASS_LABELS = ("resistant", "sensitive")
"""Labels of a classification set, in the order they are listed."""


def conformal_threshold(scores: np.ndarray, level: float) -> float:
    """The ``ceil((n + 1) * level)``-th smallest of ``scores`` (``inf`` when that exceeds n)."""
    n = len(scores)
    rank = math.ceil((n + 1) * level)
    if n == 0 or rank > n:
        return math.inf
    return float(np.sort(scores)[rank - 1])


@dataclass
class ConformalPredictor:
    """Calibration scores by bin and the thresholds they give at :attr:`level`.

    Attributes
    ----------
    task : {"classification", "regression"}
    level : float
        Coverage level of sets and intervals (0.9: the true label is in the set of 90% of
        samples).
    scores : dict of str to ndarray
        Calibration nonconformity scores per bin; ``""`` holds all of them (the pooled bin).
    min_bin_size : int
    """

    task: Task
    level: float
    scores: dict[str, np.ndarray]
    min_bin_size: int = MIN_BIN_SIZE
    thresholds: dict[str, float] = field(init=False)

    def __post_init__(self) -> None:
        if not 0.0 < self.level < 1.0:
            raise InputError(f"conformal level must be between 0 and 1; got {self.level}")
        self.thresholds = {
            bin_: conformal_threshold(values, self.level)
            for bin_, values in self.scores.items()
            if bin_ == "" or len(values) >= self.min_bin_size
        }

    @classmethod
    def fit(
        cls,
        task: Task,
        predicted: np.ndarray,
        y: np.ndarray,
        bins: Sequence[str] | None = None,
        level: float = DEFAULT_LEVEL,
        min_bin_size: int = MIN_BIN_SIZE,
    ) -> ConformalPredictor:
        """Scores of out-of-fold predictions.

        Parameters
        ----------
        predicted : ndarray, shape (n_samples,)
            Out-of-fold P(resistant) (classification) or readout (regression).
        y : ndarray, shape (n_samples,)
            True labels (1 = resistant) or readouts.
        bins : sequence of str, optional
            Lineage of each sample (Mondrian bins); pooled only when omitted.
        """
        predicted = np.asarray(predicted, dtype=np.float64)
        y = np.asarray(y, dtype=np.float64)
        if predicted.shape != y.shape or predicted.ndim != 1:
            raise InputError("conformal calibration needs one prediction per label")
        if task == "classification":
            scores = np.where(y == 1, 1.0 - predicted, predicted)
        else:
            scores = np.abs(y - predicted)
        by_bin = {"": scores}
        if bins is not None:
            names = np.asarray([str(b) for b in bins], dtype=object)
            for name in np.unique(names):
                by_bin[str(name)] = scores[names == name]
        return cls(task, level, by_bin, min_bin_size)

    def at_level(self, level: float) -> ConformalPredictor:
        """The same calibration at another level."""
        return ConformalPredictor(self.task, level, self.scores, self.min_bin_size)

    def threshold_of(self, bins: Sequence[str] | None, n: int) -> np.ndarray:
        """Each sample's threshold (its bin's, else the pooled one), shape (n,)."""
        pooled = self.thresholds[""]
        if bins is None:
            return np.full(n, pooled)
        return np.array([self.thresholds.get(b, pooled) for b in bins], dtype=np.float64)

    def bin_used(self, bins: Sequence[str] | None, n: int) -> list[str]:
        """The bin whose threshold each sample uses (``""``: the pooled one)."""
        if bins is None:
            return [""] * n
        return [b if b in self.thresholds else "" for b in bins]

    def sets(
        self,
        probability: np.ndarray,
        bins: Sequence[str] | None = None,
        decision_threshold: float = 0.5,
    ) -> list[list[str]]:
        """Prediction sets of P(resistant) ``probability`` (n_samples,), labels in
        :data:`CLASS_LABELS` order; the label the point call (at ``decision_threshold``)
        chooses is always included."""
        p = np.asarray(probability, dtype=np.float64)
        q = self.threshold_of(bins, len(p))
        called = p >= decision_threshold
        resistant = (1.0 - p <= q) | called
        sensitive = (p <= q) | ~called
        table = {
            (True, True): list(CLASS_LABELS),
            (True, False): [CLASS_LABELS[0]],
            (False, True): [CLASS_LABELS[1]],
        }
        return [table[(r, s)] for r, s in zip(resistant.tolist(), sensitive.tolist(), strict=True)]

    def intervals(
        self, predicted: np.ndarray, bins: Sequence[str] | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Lower and upper ends of the regression intervals around ``predicted``."""
        value = np.asarray(predicted, dtype=np.float64)
        q = self.threshold_of(bins, len(value))
        return value - q, value + q

    # ------------------------------------------------------------------ persistence
    def to_dict(self) -> dict[str, Any]:
        """Plain JSON data (the pooled bin under ``""``)."""
        return {
            "task": self.task,
            "level": self.level,
            "min_bin_size": self.min_bin_size,
            "scores": {b: np.sort(v).round(6).tolist() for b, v in self.scores.items()},
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ConformalPredictor:
        """Rebuild a predictor written by :meth:`to_dict`."""
        return cls(
            data["task"],
            float(data["level"]),
            {b: np.asarray(v, dtype=np.float64) for b, v in data["scores"].items()},
            int(data["min_bin_size"]),
        )
