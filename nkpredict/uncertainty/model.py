"""A fitted model's uncertainty: calibration plus conformal sets, from out-of-fold predictions.

:class:`UncertaintyModel` is what :class:`~nkpredict.model.fitted.NKResistanceModel` stores as
``uncertainty_`` once the training job has cross-validated it: the probability calibrator
(classification) and the conformal predictor, both fitted on the same out-of-fold predictions
(averaged over CV repeats), with the lineage of each training sample as its Mondrian bin.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from nkpredict.uncertainty.calibration import ProbabilityCalibrator
from nkpredict.uncertainty.conformal import DEFAULT_LEVEL, ConformalPredictor
from nkpredict.vocabulary import CalibrationMethod, Task

__all__ = ["UncertaintyModel"]

_EPS = 1e-6


def logit(probability: np.ndarray) -> np.ndarray:
    """Log-odds of probabilities (clipped away from 0 and 1)."""
    p = np.clip(np.asarray(probability, dtype=np.float64), _EPS, 1 - _EPS)
    return np.log(p / (1 - p))


@dataclass
class UncertaintyModel:
    """Calibration and conformal prediction of one fitted model.

    Attributes
    ----------
    task : {"classification", "regression"}
    conformal : ConformalPredictor
    calibrator : ProbabilityCalibrator or None
        None for regression.
    n_calibration : int
        Number of out-of-fold predictions both were fitted on.
    """

    task: Task
    conformal: ConformalPredictor
    calibrator: ProbabilityCalibrator | None
    n_calibration: int

    @classmethod
    def fit(
        cls,
        task: Task,
        predicted: np.ndarray,
        y: np.ndarray,
        lineages: Sequence[str] | None = None,
        level: float = DEFAULT_LEVEL,
        method: CalibrationMethod = "auto",
        random_state: int = 0,
        groups: Sequence[Any] | None = None,
    ) -> UncertaintyModel:
        """Fit on out-of-fold predictions.

        Parameters
        ----------
        predicted : ndarray, shape (n_samples,)
            Out-of-fold P(resistant) (classification) or readout (regression).
        y : ndarray, shape (n_samples,)
            True labels (1 = resistant) or readouts.
        lineages : sequence of str, optional
            Lineage of each sample: the Mondrian bins of the conformal predictor.
        level : float
            Level of the prediction sets and intervals.
        method : {"auto", "platt", "isotonic", "none"}
            Calibration method (classification).
        groups : sequence, optional
            The sample of each prediction, when a sample is predicted once per CV repeat:
            its rows stay together when the calibration method is chosen.
        """
        predicted = np.asarray(predicted, dtype=np.float64)
        y = np.asarray(y, dtype=np.float64)
        calibrator = None
        if task == "classification":
            calibrator = ProbabilityCalibrator(method, random_state).fit(
                logit(predicted)[:, None], y.astype(int), groups
            )
        conformal = ConformalPredictor.fit(task, predicted, y, lineages, level)
        return cls(task, conformal, calibrator, len(y))

    def calibrate(self, margin: np.ndarray) -> np.ndarray:
        """Calibrated P(resistant) of the model's log-odds (classification)."""
        if self.calibrator is None:
            raise ValueError("regression models have no probability calibration")
        return self.calibrator.calibrate(margin)

    def describe(self) -> dict[str, Any]:
        """What ``/v1/model`` and the report show: method, level, bins and their thresholds."""
        conformal = self.conformal
        return {
            "calibration": None
            if self.calibrator is None
            else {"method": self.calibrator.method_, "log_loss": self.calibrator.selection_},
            "conformal_level": conformal.level,
            "n_calibration": self.n_calibration,
            "mondrian_bins": {
                b: {"n": len(conformal.scores[b]), "threshold": conformal.thresholds.get(b)}
                for b in conformal.scores
                if b
            },
            "pooled_threshold": conformal.thresholds[""],
        }

    # ------------------------------------------------------------------ persistence
    def to_dict(self) -> dict[str, Any]:
        """Plain JSON data."""
        return {
            "task": self.task,
            "n_calibration": self.n_calibration,
            "conformal": self.conformal.to_dict(),
            "calibrator": None if self.calibrator is None else self.calibrator.to_dict(),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> UncertaintyModel:
        """Rebuild a model written by :meth:`to_dict`."""
        calibrator = data["calibrator"]
        return cls(
            data["task"],
            ConformalPredictor.from_dict(data["conformal"]),
            None if calibrator is None else ProbabilityCalibrator.from_dict(calibrator),
            int(data["n_calibration"]),
        )
