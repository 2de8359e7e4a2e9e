"""Row blocks of an input and the spans (units of work) that cover its rows.

A :class:`Block` is at most ``chunk_size`` rows of the input, sparse (CSR, only selected
columns are ever densified) or dense; it answers what scoring needs of all its columns (row
sums for library sizes, per-sample statistics for :func:`~nkpredict.data.expression.detect_scale`)
without densifying them. A :class:`Span` is one unit of work: a range of rows (or a Parquet row
group) read in blocks.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import sparse

__all__ = [
    "DEFAULT_CHUNK_SIZE",
    "MAX_CHUNK_VALUES",
    "Block",
    "DenseBlock",
    "Span",
    "SparseBlock",
    "row_spans",
    "rows_per_block",
]

DEFAULT_CHUNK_SIZE = 10_000
"""Rows per chunk. 10,000 cells with ~2,000 detected genes each are ~240 MB of CSR data."""
MAX_CHUNK_VALUES = 10_000_000
"""Most values (rows x columns read) in one dense block: 80 MB of float64. Dense inputs with
many columns get fewer rows per block than ``chunk_size``."""


def _summary(
    ids: Sequence[str], high: np.ndarray, low: np.ndarray, odd: np.ndarray
) -> pd.DataFrame:
    """Per-sample statistics that decide :func:`detect_scale` like the whole block would.

    Columns: the highest and lowest value of the sample and one of its non-integer values
    (0 when all are integers). Maximum, sign and integrality, the only properties the scale
    rules look at, are those of the full block, and errors still name the sample.
    """
    return pd.DataFrame(
        {"(its highest value)": high, "(its lowest value)": low, "(a non-integer value)": odd},
        index=pd.Index(list(ids), name="sample_id"),
    )


def _non_integer(values: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore"):
        return np.isfinite(values) & (values != np.round(values))


class Block(ABC):
    """Rows of the input: ``sample_ids`` (n_rows,) and gene values (n_rows, n_columns)."""

    sample_ids: list[str]

    def __len__(self) -> int:
        return len(self.sample_ids)

    @abstractmethod
    def columns(self, positions: np.ndarray) -> np.ndarray:
        """Dense float64 values of the columns at ``positions``, shape (n_rows, k)."""

    @abstractmethod
    def row_sums(self) -> np.ndarray:
        """Sum of every column of each row, NaN skipped, shape (n_rows,)."""

    @abstractmethod
    def scale_summary(self) -> pd.DataFrame:
        """Statistics for :func:`detect_scale`, shape (n_rows, 3) (see :func:`_summary`)."""


class SparseBlock(Block):
    """A CSR row block; only selected columns are ever densified."""

    def __init__(self, sample_ids: list[str], values: sparse.csr_matrix) -> None:
        self.sample_ids = sample_ids
        self.values = values

    def columns(self, positions: np.ndarray) -> np.ndarray:
        return np.asarray(self.values[:, positions].toarray(), dtype=np.float64)

    def row_sums(self) -> np.ndarray:
        data = np.asarray(self.values.data, dtype=np.float64)
        summed = sparse.csr_matrix(
            (np.where(np.isnan(data), 0.0, data), self.values.indices, self.values.indptr),
            shape=self.values.shape,
        )
        return np.asarray(summed.sum(axis=1), dtype=np.float64).ravel()

    def scale_summary(self) -> pd.DataFrame:
        matrix = self.values
        n_rows, n_columns = matrix.shape
        data = np.asarray(matrix.data, dtype=np.float64)
        stored = np.diff(matrix.indptr)
        high, low, odd = np.zeros(n_rows), np.zeros(n_rows), np.zeros(n_rows)
        rows = np.flatnonzero(stored)
        if rows.size:
            starts = matrix.indptr[rows]
            high[rows] = np.fmax.reduceat(data, starts)
            low[rows] = np.fmin.reduceat(data, starts)
        implicit_zero = stored < n_columns
        high[implicit_zero] = np.fmax(high[implicit_zero], 0.0)
        low[implicit_zero] = np.fmin(low[implicit_zero], 0.0)
        where = np.flatnonzero(_non_integer(data))
        owner = np.searchsorted(matrix.indptr, where, side="right") - 1
        odd[owner] = data[where]  # any one non-integer value of the row will do
        return _summary(self.sample_ids, high, low, odd)


class DenseBlock(Block):
    """A dense row block (dense h5ad ``X`` or rows of an in-memory frame)."""

    def __init__(self, sample_ids: list[str], values: np.ndarray) -> None:
        self.sample_ids = sample_ids
        self.values = values

    def columns(self, positions: np.ndarray) -> np.ndarray:
        return np.asarray(self.values[:, positions], dtype=np.float64)

    def row_sums(self) -> np.ndarray:
        return np.nansum(np.asarray(self.values, dtype=np.float64), axis=1)

    def scale_summary(self) -> pd.DataFrame:
        values = np.asarray(self.values, dtype=np.float64)
        odd = np.where(_non_integer(values), values, 0.0)
        first = np.argmax(odd != 0, axis=1)
        return _summary(
            self.sample_ids,
            np.fmax.reduce(values, axis=1),
            np.fmin.reduce(values, axis=1),
            odd[np.arange(len(values)), first],
        )


@dataclass(frozen=True)
class Span:
    """One unit of work: ``n_rows`` rows of the input starting at global row ``offset``.

    ``part`` and ``group`` locate it in a Parquet dataset (file and row group); for other
    sources the rows are ``[start, start + n_rows)`` of the input.
    """

    index: int
    offset: int
    n_rows: int
    start: int = 0
    part: int = 0
    group: int = -1


def rows_per_block(chunk_size: int, n_columns: int) -> int:
    """Rows per dense block: ``chunk_size`` capped by :data:`MAX_CHUNK_VALUES`."""
    return max(1, min(chunk_size, MAX_CHUNK_VALUES // max(n_columns, 1)))


def row_spans(n_rows: int, step: int) -> list[Span]:
    """Spans of ``step`` rows (the last one shorter) covering rows ``[0, n_rows)`` in order."""
    starts = range(0, n_rows, step)
    return [Span(i, s, min(step, n_rows - s), start=s) for i, s in enumerate(starts)]
