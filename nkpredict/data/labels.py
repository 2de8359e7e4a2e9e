"""Label definitions: how a measured NK-killing readout becomes the model's target.

A :class:`LabelDefinition` is recorded with every model so that anyone can tell what
"resistant" meant for it. Continuous readouts become a resistant/sensitive call by a fixed
``threshold`` or a ``quantile`` of the training labels (resolved once to a threshold), in the
direction given by ``resistant_when``: ``"above"`` for readouts where high means resistant
(% viability after co-culture), ``"below"`` where high means killed (killing AUC, PRISM
log-fold change of killing).
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np
import pandas as pd

from nkpredict.exceptions import LabelError
from nkpredict.vocabulary import TASKS, Direction, Task

__all__ = ["LabelDefinition", "infer_direction"]

logger = logging.getLogger(__name__)

_BINARY_TEXT = {"resistant": 1, "sensitive": 0, "true": 1, "false": 0, "yes": 1, "no": 0}


def infer_direction(column: str) -> Direction | None:
    """Guess whether high values of ``column`` mean resistant (``above``) or killed."""
    name = column.lower()
    if "viab" in name or "surviv" in name or "resist" in name:
        return "above"
    if "auc" in name or "kill" in name or "lfc" in name or "lysis" in name:
        return "below"
    return None


@dataclass(frozen=True)
class LabelDefinition:
    """What the target is.

    Parameters
    ----------
    column : str
        Label column the target comes from.
    task : {"classification", "regression"}
    threshold, quantile : float, optional
        Cut-off for turning a continuous readout into a call (classification only); give at
        most one. ``quantile`` is resolved to a ``threshold`` on the training labels.
    resistant_when : {"above", "below"}, optional
        Which side of the cut-off is resistant; inferred from the column name if omitted.
    """

    column: str
    task: Task = "classification"
    threshold: float | None = None
    quantile: float | None = None
    resistant_when: Direction | None = None

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise LabelError(f"task must be one of {', '.join(TASKS)}, not {self.task!r}")
        if self.quantile is not None and not 0.0 < self.quantile < 1.0:
            raise LabelError(f"quantile must lie strictly between 0 and 1, got {self.quantile}")

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-serialisable form."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LabelDefinition:
        """Inverse of :meth:`to_dict`."""
        return cls(**data)

    def describe(self) -> str:
        """One human-readable sentence."""
        if self.task == "regression":
            return f"regression on {self.column}"
        if self.threshold is None:
            return f"resistant = {self.column} == 1"
        side = ">" if self.resistant_when == "above" else "<"
        origin = f" (quantile {self.quantile:g})" if self.quantile is not None else ""
        return f"resistant = {self.column} {side} {self.threshold:g}{origin}"

    def resolve(self, labels: pd.DataFrame) -> tuple[pd.Series, LabelDefinition]:
        """Build the target from ``labels`` and return it with the fully resolved definition.

        Parameters
        ----------
        labels : DataFrame, shape (n_samples, n_columns)
            Must contain :attr:`column`.

        Returns
        -------
        y : Series, shape (n_samples,)
            0/1 integers (classification) or floats (regression); samples whose label is
            missing are dropped.
        definition : LabelDefinition
            ``self`` with the threshold and direction filled in.
        """
        if self.column not in labels.columns:
            raise LabelError(
                f"label column {self.column!r} not found; available: {', '.join(labels.columns)}"
            )
        raw = labels[self.column]
        missing = raw.isna()
        if missing.all():
            raise LabelError(f"label column {self.column!r} has no values")
        if missing.any():
            logger.warning("%d samples without a %s value are left out", missing.sum(), self.column)
        raw = raw[~missing]
        if self.task == "regression":
            return self._numeric(raw), self
        binary = self._as_binary(raw)
        if binary is not None:
            if self.threshold is not None or self.quantile is not None:
                raise LabelError(f"{self.column!r} is already binary; drop --threshold/--quantile")
            y, definition = binary, self
        else:
            y, definition = self._call(self._numeric(raw))
        if y.nunique() < 2:
            raise LabelError(f"the target from {self.column!r} has a single class")
        return y.astype(int).rename("resistant"), definition

    def _numeric(self, raw: pd.Series) -> pd.Series:
        values = pd.to_numeric(raw, errors="coerce")
        bad = values.isna() | ~np.isfinite(values.astype(float))
        if bad.any():
            sample = bad[bad].index[0]
            raise LabelError(
                f"label {self.column!r} of sample {sample!r} is not a finite number: "
                f"{raw.loc[sample]!r}"
            )
        return values.astype(float)

    @staticmethod
    def _as_binary(raw: pd.Series) -> pd.Series | None:
        if raw.dtype == bool:
            return raw.astype(int)
        text = raw.astype(str).str.strip().str.lower()
        if text.isin(_BINARY_TEXT).all():
            return text.map(_BINARY_TEXT)
        numeric = pd.to_numeric(raw, errors="coerce")
        if numeric.notna().all() and set(numeric.unique()) <= {0, 1}:
            return numeric.astype(int)
        return None

    def _call(self, values: pd.Series) -> tuple[pd.Series, LabelDefinition]:
        direction = self.resistant_when or infer_direction(self.column)
        if direction is None:
            raise LabelError(
                f"cannot tell whether high {self.column!r} means resistant; "
                "pass --resistant-when above|below"
            )
        quantile = self.quantile
        if self.threshold is None and quantile is None:
            quantile = 0.5
            logger.warning("no threshold given for %s: splitting at the median", self.column)
        threshold = (
            self.threshold if self.threshold is not None else float(values.quantile(quantile))
        )
        y = values > threshold if direction == "above" else values < threshold
        resolved = replace(self, threshold=threshold, quantile=quantile, resistant_when=direction)
        return y.astype(int), resolved
