"""Where a gene's value sits in the training cohort: per-gene training percentiles.

A fitted :class:`~nkpredict.model.fitted.NKResistanceModel` keeps, for every gene it reads
(the feature builder's ``genes_in_``), the training cohort's percentiles 0, 1, ..., 100 of
its harmonized expression (log2(TPM+1)) and its median among the training samples on the
sensitive side of the label (the *sensitive reference*). Explanations use them to say where a
sample's value sits ("5th percentile of the training cohort"), and what-if interventions to
set a gene to "the training upper quartile" or "the sensitive reference".

Values are rounded to :data:`DECIMALS` decimals when fitted (far below any expression
difference that matters) so that a saved model's ``model.json`` stays small and a loaded
model gives exactly the fitted model's answers.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from nkpredict.data.labels import LabelDefinition
from nkpredict.exceptions import InputError

__all__ = [
    "DECIMALS",
    "PERCENTILES",
    "GeneReference",
    "sensitive_mask",
]

PERCENTILES = np.arange(101, dtype=np.float64)
"""The stored percentiles of each gene: 0, 1, ..., 100."""
DECIMALS = 4
"""Decimals kept of each stored value (log2(TPM+1) units)."""


def sensitive_mask(y: Any, definition: LabelDefinition) -> np.ndarray | None:
    """Which training samples are on the sensitive side of the label, shape (n_samples,).

    Classification: label 0. Regression: the side of the label definition's threshold that is
    not resistant. ``None`` when the label has no sensitive side (regression without a
    threshold or a direction).
    """
    target = np.asarray(y, dtype=np.float64)
    if definition.task == "classification":
        return target == 0
    if definition.threshold is None or definition.resistant_when is None:
        return None
    if definition.resistant_when == "above":
        return target <= definition.threshold
    return target >= definition.threshold


@dataclass(frozen=True, eq=False)
class GeneReference:
    """Training percentiles and sensitive reference of the genes a model reads.

    Attributes
    ----------
    genes : tuple of str, length n_genes
        HGNC symbols, in the feature builder's ``genes_in_`` order.
    quantiles : ndarray of float64, shape (n_genes, 101)
        Percentiles 0..100 of each gene over the training samples that measured it.
    sensitive_median : ndarray of float64, shape (n_genes,)
        Median of each gene over the training samples on the sensitive side of the label
        (see :func:`sensitive_mask`); the training median where there is no such side.
    n_samples : int
        Training samples.
    n_sensitive : int
        Training samples the sensitive reference is the median of.
    sensitive_definition : str
        Which samples those are, in words.
    """

    genes: tuple[str, ...]
    quantiles: np.ndarray
    sensitive_median: np.ndarray
    n_samples: int
    n_sensitive: int
    sensitive_definition: str

    def __post_init__(self) -> None:
        object.__setattr__(self, "_position", {g: j for j, g in enumerate(self.genes)})
        object.__setattr__(self, "_grids", {})

    @classmethod
    def fit(
        cls, genes: Sequence[str], values: np.ndarray, sensitive: np.ndarray | None
    ) -> GeneReference:
        """Learn the reference from training gene values.

        Parameters
        ----------
        genes : sequence of str, length n_genes
        values : ndarray, shape (n_samples, n_genes)
            Harmonized expression of the training samples; NaN where unmeasured.
        sensitive : ndarray of bool, shape (n_samples,), optional
            The samples on the sensitive side of the label (:func:`sensitive_mask`).
        """
        values = np.asarray(values, dtype=np.float64)
        measured = ~np.isnan(values).all(axis=0)
        quantiles = np.full((values.shape[1], PERCENTILES.size), np.nan)
        if measured.any():
            quantiles[measured] = np.nanpercentile(values[:, measured], PERCENTILES, axis=0).T
        if sensitive is not None and np.asarray(sensitive).any():
            chosen = np.asarray(sensitive, dtype=bool)
            definition = "training samples on the sensitive side of the label"
        else:
            chosen = np.ones(values.shape[0], dtype=bool)
            definition = "all training samples (the label has no sensitive side)"
        subset = values[chosen][:, measured]
        median = np.full(values.shape[1], np.nan)
        if subset.size:
            with np.errstate(all="ignore"):
                median[measured] = np.nanmedian(subset, axis=0)
        median = np.where(np.isnan(median), quantiles[:, 50], median)
        return cls(
            genes=tuple(str(g) for g in genes),
            quantiles=np.round(quantiles, DECIMALS),
            sensitive_median=np.round(median, DECIMALS),
            n_samples=int(values.shape[0]),
            n_sensitive=int(chosen.sum()),
            sensitive_definition=definition,
        )

    # ------------------------------------------------------------------ look-ups
    def position(self, gene: str) -> int:
        """Index of ``gene`` in :attr:`genes`.

        Raises
        ------
        InputError
            ``gene`` is not a gene of the model.
        """
        position: dict[str, int] = self._position  # type: ignore[attr-defined]
        try:
            return position[gene]
        except KeyError:
            raise InputError(f"{gene!r} is not one of the model's genes") from None

    def value_at(self, gene: str, percentile: float) -> float:
        """The training cohort's ``percentile`` (0-100) of ``gene``, linearly interpolated."""
        if not 0.0 <= percentile <= 100.0:
            raise InputError(f"a percentile must be between 0 and 100; got {percentile}")
        return float(np.interp(percentile, PERCENTILES, self.quantiles[self.position(gene)]))

    def median(self, gene: str) -> float:
        """The training median of ``gene``."""
        return float(self.quantiles[self.position(gene), 50])

    def sensitive_value(self, gene: str) -> float:
        """The sensitive reference of ``gene`` (see :attr:`sensitive_median`)."""
        return float(self.sensitive_median[self.position(gene)])

    def percentile_of(self, gene: str, value: float) -> float:
        """Where ``value`` of ``gene`` sits among the training samples, 0-100.

        The inverse of :meth:`value_at`: linear between stored percentiles, the middle of a
        run of equal stored values (a gene at zero in a fifth of the cohort is at the 10th
        percentile when zero), 0 below the training minimum and 100 above its maximum. NaN
        for a NaN value.
        """
        return self.percentile_at(self.position(gene), value)

    def percentile_at(self, row: int, value: float) -> float:
        """:meth:`percentile_of` of the gene at ``row`` of :attr:`genes` (:meth:`position`)."""
        if value != value:  # NaN
            return float("nan")
        grid = self._grid(row)
        if grid is None:  # a gene no training sample measured
            return 0.0
        low, high = bisect_left(grid, value), bisect_right(grid, value)
        if low < high:  # percentile k is the float k
            return (low + high - 1) / 2.0
        if low == 0:
            return 0.0
        if low == len(grid):
            return 100.0
        left, right = grid[low - 1], grid[low]
        return float((low - 1) + (value - left) / (right - left))

    def _grid(self, row: int) -> list[float] | None:
        """The stored percentiles of the gene at ``row`` as a list (kept once built); None
        where they are NaN (a gene's percentiles are all NaN or none)."""
        grids: dict[int, list[float] | None] = self._grids  # type: ignore[attr-defined]
        if row not in grids:
            stored = self.quantiles[row]
            grids[row] = None if np.isnan(stored[0]) else stored.tolist()
        return grids[row]

    # ------------------------------------------------------------------ persistence
    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-serialisable form (``None`` for NaN)."""

        def plain(values: np.ndarray) -> list[Any]:
            return [None if np.isnan(v) else float(v) for v in values.tolist()]

        return {
            "genes": list(self.genes),
            "percentiles": PERCENTILES.tolist(),
            "quantiles": [plain(row) for row in self.quantiles],
            "sensitive_median": plain(self.sensitive_median),
            "n_samples": self.n_samples,
            "n_sensitive": self.n_sensitive,
            "sensitive_definition": self.sensitive_definition,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> GeneReference:
        """Inverse of :meth:`to_dict`.

        Raises
        ------
        InputError
            The percentiles are not 0..100 or the arrays do not match the genes.
        """
        if list(data["percentiles"]) != PERCENTILES.tolist():
            raise InputError("the gene reference must store the percentiles 0, 1, ..., 100")
        genes = tuple(data["genes"])
        quantiles = np.array(
            [[np.nan if v is None else v for v in row] for row in data["quantiles"]],
            dtype=np.float64,
        ).reshape(-1, PERCENTILES.size)
        median = np.array(
            [np.nan if v is None else v for v in data["sensitive_median"]], dtype=np.float64
        )
        if quantiles.shape[0] != len(genes) or median.shape != (len(genes),):
            raise InputError(
                f"the gene reference has {len(genes)} genes but {quantiles.shape[0]} rows of "
                f"percentiles and {median.size} sensitive values"
            )
        return cls(
            genes=genes,
            quantiles=quantiles,
            sensitive_median=median,
            n_samples=int(data["n_samples"]),
            n_sensitive=int(data["n_sensitive"]),
            sensitive_definition=str(data["sensitive_definition"]),
        )
