"""Label definitions: how a measured NK-killing readout becomes the model's target.

A :class:`LabelDefinition` is recorded with every model so that anyone can tell what
"resistant" meant for it. Continuous readouts become a resistant/sensitive call by a fixed
``threshold`` or a ``quantile`` of the training labels (resolved once to a threshold), in the
direction given by ``resistant_when``: ``"above"`` for readouts where high means resistant
(% viability after co-culture, the paper's ``auc_norm``), ``"below"`` where high means killed
(the project's ``killing_auc``).

The direction is never guessed from a column name: the readouts of :data:`KNOWN_READOUTS`
(and the prefixes of :data:`KNOWN_READOUT_PREFIXES`) have a documented direction; any other
column needs ``resistant_when`` (``--resistant-when``). :func:`label_table` is the per-line
table with its ``call`` column that ``nkpredict labels`` writes and ``train`` uses.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np
import pandas as pd

from nkpredict.exceptions import LabelError
from nkpredict.vocabulary import TASKS, Direction, Task

__all__ = [
    "CALL_COLUMN",
    "KNOWN_READOUTS",
    "KNOWN_READOUT_PREFIXES",
    "LabelDefinition",
    "direction_source",
    "known_direction",
    "label_table",
    "written_table",
]

logger = logging.getLogger(__name__)

_BINARY_TEXT = {"resistant": 1, "sensitive": 0, "true": 1, "false": 0, "yes": 1, "no": 0}


KNOWN_READOUTS: dict[str, Direction] = {
    "auc_norm": "above",  # Dufva et al. 2023: area under % viability; high = cells survive
    "AUC_normalized": "above",  # the same, as named in their table S5A
    "pctviability": "above",  # % viability after co-culture
    "killing_auc": "below",  # nkpredict's area under the killed fraction; high = killed
}
"""Readouts whose direction is documented: ``above`` = high values mean resistant."""
KNOWN_READOUT_PREFIXES: dict[str, Direction] = {
    "viability_et_": "above",  # % viability at one E:T ratio
    "Percent_viability_": "above",  # table S5B's replicate and mean % viability
}
"""Column-name prefixes whose direction is documented (exact prefixes, case-sensitive)."""
CALL_COLUMN = "call"
"""The resistant/sensitive column of :func:`label_table`."""
_CALLS = {1: "resistant", 0: "sensitive"}


def known_direction(column: str) -> Direction | None:
    """The documented direction of readout ``column`` (:data:`KNOWN_READOUTS`), else None."""
    if column in KNOWN_READOUTS:
        return KNOWN_READOUTS[column]
    for prefix, direction in KNOWN_READOUT_PREFIXES.items():
        if column.startswith(prefix):
            return direction
    return None


def direction_source(definition: LabelDefinition) -> str:
    """Where the direction of a resolved continuous ``definition`` came from, in words."""
    if definition.resistant_when is None:
        return "none (binary label)"
    if known_direction(definition.column) == definition.resistant_when and not (
        definition.direction_given
    ):
        return f"documented for {definition.column}"
    return "--resistant-when"


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
        Which side of the cut-off is resistant; when omitted, the documented direction of a
        known readout (:func:`known_direction`), else an error.
    direction_given : bool
        Whether ``resistant_when`` was given by the user (filled in by :meth:`resolve`).
    """

    column: str
    task: Task = "classification"
    threshold: float | None = None
    quantile: float | None = None
    resistant_when: Direction | None = None
    direction_given: bool = False

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
        given = self.resistant_when is not None
        direction = self.resistant_when or known_direction(self.column)
        if direction is None:
            known = ", ".join([*KNOWN_READOUTS, *(f"{p}*" for p in KNOWN_READOUT_PREFIXES)])
            raise LabelError(
                f"cannot tell whether high {self.column!r} means resistant (directions are "
                f"documented only for {known}); pass --resistant-when above|below"
            )
        quantile = self.quantile
        if self.threshold is None and quantile is None:
            quantile = 0.5
            logger.warning("no threshold given for %s: splitting at the median", self.column)
        threshold = (
            self.threshold if self.threshold is not None else float(values.quantile(quantile))
        )
        y = values > threshold if direction == "above" else values < threshold
        resolved = replace(
            self,
            threshold=threshold,
            quantile=quantile,
            resistant_when=direction,
            direction_given=given or self.direction_given,
        )
        return y.astype(int), resolved


def label_table(
    labels: pd.DataFrame, definition: LabelDefinition | None
) -> tuple[pd.DataFrame, LabelDefinition | None]:
    """The per-line labels with the ``call`` that ``definition`` makes of them.

    Parameters
    ----------
    labels : DataFrame of shape (n_lines, n_columns)
        As :func:`nkpredict.data.public.read_labels` returns it.
    definition : LabelDefinition or None
        The cut (a classification with a threshold or quantile); ``None`` adds no call.

    Returns
    -------
    table : DataFrame of shape (n_lines, n_columns [+ 1])
        ``labels`` with a ``call`` column (``resistant``/``sensitive``; empty where the
        readout is missing), placed after the readout columns.
    definition : LabelDefinition or None
        The resolved definition (threshold and direction filled in).
    """
    if definition is None:
        return labels, None
    y, resolved = definition.resolve(labels)
    call = y.map(_CALLS).reindex(labels.index).astype(object)
    table = labels.drop(columns=[CALL_COLUMN], errors="ignore")
    position = list(table.columns).index(definition.column) + 1
    table.insert(position, CALL_COLUMN, call.where(call.notna(), None))
    return table, resolved


def written_table(table: pd.DataFrame) -> pd.DataFrame:
    """``table`` as it is written to a file: the ids as the first column.

    A per-line table of a published layout (index ``line``) already carries its ids in
    ``DepMap_ID`` and ``cell_line`` and loses the index; a generic table keeps its id column.
    """
    if table.index.name == "line" and "DepMap_ID" in table.columns:
        return table.reset_index(drop=True)
    return table.reset_index()
