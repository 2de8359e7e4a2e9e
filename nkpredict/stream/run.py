"""Streaming scoring: inputs too large for memory are read, scored and written in row chunks.

A single-cell atlas has millions of cells x tens of thousands of genes; densifying it, as
:func:`nkpredict.data.expression.read_expression` does, needs terabytes. The model reads only its
own genes (about a hundred), so a chunk of rows can be reduced to those columns before
anything dense is built. :func:`predict_file` and :func:`explain_file` do that:

1. :func:`open_source` opens the input as a :class:`ChunkSource` that yields row
   :class:`Span` s (units of work) and, from a span, row blocks of at most ``chunk_size``
   rows. Parquet datasets (a file or a directory of files) are read batch by batch from
   their row groups, with only the needed columns when the scale allows it; ``.h5ad`` files
   are read through AnnData's backed sparse dataset (CSR row slices) or as h5py row slices
   (dense ``X``). Text files, genes-as-rows tables and CSC-stored h5ad files cannot be
   sliced by rows: they are read whole by :func:`~nkpredict.data.expression.read_expression`
   (as before) and then scored chunk by chunk.
2. :func:`plan_scoring` maps the column labels to HGNC symbols *once*
   (:func:`nkpredict.data.identifiers.map_identifiers`), keeps the positions of
   the columns that map to
   the model's genes and fixes the scale *once*: the user's ``scale``, or
   :func:`~nkpredict.data.expression.detect_scale` on the first block. Detecting it per chunk
   would be wrong: a chunk of low-count cells (every value <= 50) looks like log values.
3. :func:`prepare_block` turns one block into the model's input. For raw counts the library
   size of a sample is its sum over *all* columns, computed on the (sparse) block before the
   columns are selected; the selected columns plus one column holding the rest of the
   library go through :func:`~nkpredict.data.expression.to_log_tpm`, so counts-per-million come
   from the library code with the full library size. The counts checks (non-negative
   integers, non-zero library) also cover every column: they run on per-sample statistics
   of the whole block (highest, lowest and a non-integer value), which decide them exactly
   as the full block would. The result (n_rows x ~100, dense) is then prepared by the
   model itself, ``model.prepare(frame, scale="log")``: validation, harmonization and
   features are the fitted model's, exactly as for in-memory scoring.
4. Results are written incrementally in input order: predictions as one Parquet row group
   per chunk (or appended CSV/TSV rows), explanations as one appended table per level, each
   into a temporary file renamed into place at the end (:func:`nkpredict.io.atomic_path`),
   so an interrupted run leaves no complete-looking output.

Peak memory is one block of the input (``chunk_size`` rows; for dense inputs also at most
:data:`MAX_CHUNK_VALUES` values) plus the model's small matrices, whatever the number of
samples. Which process scores a span is decided by a *mapper*: :func:`map_in_process`
(default) or a distributed one (``training.engines.DaskEngine.map_ordered``); every span is
scored by the same function, so engines give identical results.

What is checked differs from in-memory scoring in two ways, both to keep memory bounded:
for TPM and log inputs only the columns the model reads are validated (for raw counts every
column is), and duplicated sample IDs are detected within a chunk, not across chunks.
"""

from __future__ import annotations

import logging
import math
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

import h5py
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from anndata.io import read_elem, sparse_dataset
from scipy import sparse

from nkpredict.data.expression import (
    GENE_LIKE_MIN,
    PreparedExpression,
    Scale,
    detect_scale,
    read_expression,
    to_log_tpm,
)
from nkpredict.data.identifiers import HarmonizationReport, gene_like_fraction, map_identifiers
from nkpredict.exceptions import CoverageError, ExpressionFormatError, GeneMappingError, InputError
from nkpredict.explain.attributions import (
    FILE_STEMS,
    GLOBAL_FILE,
    Explanation,
    explain,
    global_summary,
)
from nkpredict.io import TABLE_SUFFIXES, atomic_path, write_json
from nkpredict.model.fitted import NKResistanceModel
from nkpredict.vocabulary import LEVELS, ExplainMethod

__all__ = [
    "DEFAULT_CHUNK_SIZE",
    "GLOBAL_SAMPLE",
    "MAX_CHUNK_VALUES",
    "Block",
    "ChunkSource",
    "DenseBlock",
    "ExplainJob",
    "FrameSource",
    "H5adSource",
    "ParquetSource",
    "PredictJob",
    "ScoringPlan",
    "Span",
    "SparseBlock",
    "StreamResult",
    "TableWriter",
    "explain_file",
    "map_in_process",
    "open_source",
    "plan_scoring",
    "predict_file",
    "prepare_block",
]

logger = logging.getLogger(__name__)

DEFAULT_CHUNK_SIZE = 10_000
"""Rows per chunk. 10,000 cells with ~2,000 detected genes each are ~240 MB of CSR data."""
MAX_CHUNK_VALUES = 10_000_000
"""Most values (rows x columns read) in one dense block: 80 MB of float64. Dense inputs with
many columns get fewer rows per block than ``chunk_size``."""
GLOBAL_SAMPLE = 20_000
"""Most samples kept for the cohort summary of explanations (``global.json``): every k-th
sample, with k the smallest stride that keeps at most this many. Below this size the summary
is exact; above it the ranking of units by mean |SHAP| and their direction of effect (a rank
correlation, which needs all values at once) come from a systematic sample."""
OTHER_GENES = "(genes not used by the model)"
"""Label of the column carrying the rest of a sample's library size (raw counts only)."""
_PARQUET_SUFFIXES = (".parquet", ".pq")

J = TypeVar("J")
T = TypeVar("T")
R = TypeVar("R")
Mapper = Callable[[Callable[[J, T], R], J, Sequence[T]], Iterator[R]]
"""``mapper(fn, job, items)`` yields ``fn(job, item)`` for every item, in item order."""
Progress = Callable[[int, int], None]
"""``progress(rows_done, rows_total)``, called after each span is written."""


def map_in_process(fn: Callable[[J, T], R], job: J, items: Sequence[T]) -> Iterator[R]:
    """The default :data:`Mapper`: one item after the other, in this process."""
    for item in items:
        yield fn(job, item)


# --------------------------------------------------------------------------- row blocks


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


# --------------------------------------------------------------------------- sources


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


def _dense_rows(chunk_size: int, n_columns: int) -> int:
    """Rows per dense block: ``chunk_size`` capped by :data:`MAX_CHUNK_VALUES`."""
    return max(1, min(chunk_size, MAX_CHUNK_VALUES // max(n_columns, 1)))


def _row_spans(n_rows: int, step: int) -> list[Span]:
    starts = range(0, n_rows, step)
    return [Span(i, s, min(step, n_rows - s), start=s) for i, s in enumerate(starts)]


def _strings(values: Any) -> list[str]:
    return [v.decode() if isinstance(v, bytes) else str(v) for v in values]


class ChunkSource(ABC):
    """An input that can be read span by span, in any process that sees its path.

    Attributes
    ----------
    name : str
        What to call the input in messages.
    columns : list of str, length n_columns
        Gene column labels in input order.
    n_rows : int
        Number of samples.
    """

    name: str
    columns: list[str]
    n_rows: int

    @abstractmethod
    def spans(self, chunk_size: int) -> list[Span]:
        """The units of work, in input order; together they cover every row once."""

    @abstractmethod
    def read(
        self, span: Span, chunk_size: int, project: np.ndarray | None = None
    ) -> Iterator[Block]:
        """Blocks of at most ``chunk_size`` rows covering ``span``, in order.

        ``project`` (column positions) asks for those columns only, in that order; blocks
        then have ``len(project)`` columns. ``None`` reads every column.
        """


class FrameSource(ChunkSource):
    """A matrix already in memory (text files, genes-as-rows tables, CSC h5ad)."""

    def __init__(self, frame: pd.DataFrame, name: str) -> None:
        self.frame = frame
        self.name = name
        self.columns = [str(c) for c in frame.columns]
        self.n_rows = len(frame)

    def spans(self, chunk_size: int) -> list[Span]:
        return _row_spans(self.n_rows, _dense_rows(chunk_size, len(self.columns)))

    def read(
        self, span: Span, chunk_size: int, project: np.ndarray | None = None
    ) -> Iterator[Block]:
        columns = np.arange(len(self.columns)) if project is None else project
        step = _dense_rows(chunk_size, len(columns))
        for start in range(span.start, span.start + span.n_rows, step):
            rows = self.frame.iloc[start : min(start + step, span.start + span.n_rows), columns]
            yield DenseBlock(_strings(rows.index), rows.to_numpy(dtype=np.float64))


class H5adSource(ChunkSource):
    """An AnnData ``.h5ad`` file with CSR or dense ``X``, read by row slices.

    Each read opens the file with h5py and slices ``X`` through AnnData's backed sparse
    dataset (:func:`anndata.io.sparse_dataset`, what ``read_h5ad(backed="r")`` uses) or the
    dense h5py dataset, and the obs names of the same rows. Opening the file through
    ``read_h5ad`` instead would load the whole ``obs`` table on every read, which for a
    million cells costs more than scoring the chunk.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.name = str(path)
        with h5py.File(path, "r") as handle:
            x = handle.get("X")
            if x is None:
                raise ExpressionFormatError(f"{path}: the h5ad file has no X matrix")
            self.is_sparse = isinstance(x, h5py.Group)
            shape = tuple(int(s) for s in (x.attrs["shape"] if self.is_sparse else x.shape))
            if len(shape) != 2:
                raise ExpressionFormatError(f"{path}: X must be a matrix, not shape {shape}")
            obs = handle.get("obs")
            if not isinstance(obs, h5py.Group) or "_index" not in obs.attrs:
                raise ExpressionFormatError(
                    f"{path}: obs names not found (files older than AnnData 0.8 are not "
                    "supported; read and write them again with a current anndata)"
                )
            self.obs_key = str(obs.attrs["_index"])
            self.columns = _strings(read_elem(handle["var"]).index)
        self.n_rows = shape[0]
        if len(self.columns) != shape[1]:
            raise ExpressionFormatError(f"{path}: var names do not match the columns of X")

    @staticmethod
    def is_csc(path: Path) -> bool:
        """True when ``X`` is stored column-compressed (cannot be sliced by rows cheaply)."""
        with h5py.File(path, "r") as handle:
            x = handle.get("X")
            return isinstance(x, h5py.Group) and x.attrs.get("encoding-type") == "csc_matrix"

    def spans(self, chunk_size: int) -> list[Span]:
        step = chunk_size if self.is_sparse else _dense_rows(chunk_size, len(self.columns))
        return _row_spans(self.n_rows, step)

    def read(
        self, span: Span, chunk_size: int, project: np.ndarray | None = None
    ) -> Iterator[Block]:
        step = chunk_size if self.is_sparse else _dense_rows(chunk_size, len(self.columns))
        with h5py.File(self.path, "r") as handle:
            x = sparse_dataset(handle["X"]) if self.is_sparse else handle["X"]
            names = handle["obs"][self.obs_key]
            for start in range(span.start, span.start + span.n_rows, step):
                stop = min(start + step, span.start + span.n_rows)
                ids = _strings(names[start:stop])
                if self.is_sparse:
                    rows = sparse.csr_matrix(x[start:stop])
                    yield SparseBlock(ids, rows if project is None else rows[:, project])
                else:
                    rows = np.asarray(x[start:stop])
                    yield DenseBlock(ids, rows if project is None else rows[:, project])


def _is_numeric(kind: pa.DataType) -> bool:
    return bool(
        pa.types.is_integer(kind)
        or pa.types.is_floating(kind)
        or pa.types.is_boolean(kind)
        or pa.types.is_decimal(kind)
    )


class ParquetSource(ChunkSource):
    """A Parquet file or a directory of Parquet files (same columns, read in name order).

    Samples are rows. The sample ID is the stored pandas index, else a non-numeric first
    column (as :func:`~nkpredict.data.expression.read_expression` does), else the row number.
    A span is one row group, the smallest unit a Parquet reader can start at; within it,
    batches of at most ``chunk_size`` rows (and :data:`MAX_CHUNK_VALUES` values) are read
    and copied into one float64 array (NULL becomes NaN). Write large datasets with row
    groups of a reasonable size (for example ``row_group_size=100_000``) so that the Dask
    engine has several spans to distribute.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.name = str(path)
        if path.is_dir():
            self.files = sorted(
                p
                for p in path.rglob("*")
                if p.suffix.lower() in _PARQUET_SUFFIXES
                and p.is_file()
                and not p.name.startswith((".", "_"))
            )
            if not self.files:
                raise ExpressionFormatError(f"{path}: no Parquet files in this directory")
        else:
            self.files = [path]
        schema = self._schema(self.files[0])
        self.id_column, self.gene_fields = self._layout(schema)
        self.columns = list(self.gene_fields)
        self.groups: list[tuple[int, int, int]] = []
        for part, file in enumerate(self.files):
            if part and self._schema(file).names != schema.names:
                raise ExpressionFormatError(f"{file}: columns differ from those of {self.files[0]}")
            metadata = pq.ParquetFile(file).metadata
            for group in range(metadata.num_row_groups):
                rows = metadata.row_group(group).num_rows
                if rows:
                    self.groups.append((part, group, rows))
        self.n_rows = sum(rows for _, _, rows in self.groups)

    def _schema(self, file: Path) -> pa.Schema:
        try:
            return pq.read_schema(file)
        except (OSError, pa.ArrowInvalid) as exc:
            raise ExpressionFormatError(f"{file}: cannot read Parquet file: {exc}") from exc

    def _layout(self, schema: pa.Schema) -> tuple[str | None, list[str]]:
        """The sample-ID column (or None) and the gene columns, checked numeric."""
        metadata = schema.pandas_metadata or {}
        stored = [c for c in metadata.get("index_columns", []) if isinstance(c, str)]
        names = list(schema.names)
        id_column = None
        if stored:
            id_column = stored[0]
        elif names and not _is_numeric(schema.field(names[0]).type):
            id_column = names[0]
        genes = [n for n in names if n != id_column and n not in stored]
        for name in genes:
            kind = schema.field(name).type
            if not _is_numeric(kind):
                raise ExpressionFormatError(
                    f"{self.path}: column {name!r} is not numeric ({kind}); streamed Parquet "
                    "inputs hold one sample per row and one numeric column per gene"
                )
        if not genes:
            raise ExpressionFormatError(f"{self.path}: no gene columns")
        return id_column, genes

    def spans(self, chunk_size: int) -> list[Span]:
        spans, offset = [], 0
        for index, (part, group, rows) in enumerate(self.groups):
            spans.append(Span(index, offset, rows, part=part, group=group))
            offset += rows
        return spans

    def read(
        self, span: Span, chunk_size: int, project: np.ndarray | None = None
    ) -> Iterator[Block]:
        genes = self.gene_fields if project is None else [self.gene_fields[i] for i in project]
        wanted = genes if self.id_column is None else [self.id_column, *genes]
        step = _dense_rows(chunk_size, len(genes))
        reader = pq.ParquetFile(self.files[span.part])
        row = span.offset
        try:
            batches = reader.iter_batches(
                batch_size=step, row_groups=[span.group], columns=wanted, use_pandas_metadata=False
            )
            for batch in batches:
                n = batch.num_rows
                if self.id_column is None:
                    ids = [str(i) for i in range(row, row + n)]
                else:
                    ids = _strings(batch.column(self.id_column).to_pylist())
                values = np.empty((n, len(genes)))
                for j, name in enumerate(genes):
                    values[:, j] = batch.column(name).to_numpy(zero_copy_only=False)
                row += n
                yield DenseBlock(ids, values)
        finally:
            reader.close()


def open_source(path: str | Path) -> ChunkSource:
    """Open an expression input for chunked reading (see the module docstring).

    Parameters
    ----------
    path : str or Path
        A ``.parquet``/``.pq`` file, a directory of them, an ``.h5ad`` file or any file
        :func:`~nkpredict.data.expression.read_expression` reads (read whole).

    Raises
    ------
    ExpressionFormatError
        Missing or unreadable input.
    """
    source = Path(path).resolve()
    suffix = source.suffix.lower()
    if source.is_dir() or (source.is_file() and suffix in _PARQUET_SUFFIXES):
        parquet = ParquetSource(source)
        if source.is_dir() or gene_like_fraction(parquet.columns) >= GENE_LIKE_MIN:
            return parquet
        logger.warning(
            "%s: columns do not look like genes; reading the file whole to detect orientation",
            source,
        )
    elif source.is_file() and suffix == ".h5ad":
        try:
            if not H5adSource.is_csc(source):
                return H5adSource(source)
        except (OSError, KeyError) as exc:
            raise ExpressionFormatError(f"{source}: cannot read h5ad file: {exc}") from exc
        logger.warning(
            "%s: X is stored column-compressed (CSC), which cannot be read by rows; reading "
            "it whole (store X as CSR to stream it)",
            source,
        )
    return FrameSource(read_expression(source), str(source))


# --------------------------------------------------------------------------- plan and blocks


@dataclass(frozen=True, eq=False)
class ScoringPlan:
    """What is fixed once for a whole input.

    Attributes
    ----------
    scale : {"counts", "tpm", "log"}
        Scale of every chunk.
    positions : ndarray of int, shape (k,)
        Input columns that map to one of the model's genes.
    labels : tuple of str, length k
        Their labels as in the input.
    report : HarmonizationReport
        Mapping of every input column label (what in-memory harmonization reports).
    chunk_size : int
        Most rows per block.
    spans : tuple of Span
        The units of work, in input order.
    n_rows : int
        Number of samples.
    """

    scale: Scale
    positions: np.ndarray
    labels: tuple[str, ...]
    report: HarmonizationReport
    chunk_size: int
    spans: tuple[Span, ...]
    n_rows: int

    @property
    def reads_all_columns(self) -> bool:
        """Raw counts need every column (library sizes); other scales only the model's."""
        return self.scale == "counts"


def plan_scoring(
    model: NKResistanceModel,
    source: ChunkSource,
    scale: str = "auto",
    chunk_size: int = DEFAULT_CHUNK_SIZE,
) -> ScoringPlan:
    """Map the input's columns to the model's genes and fix the scale for every chunk.

    Parameters
    ----------
    model : NKResistanceModel
        Fitted.
    source : ChunkSource
    scale : {"auto", "counts", "tpm", "log"}
        ``auto`` runs :func:`~nkpredict.data.expression.detect_scale` on the first block (every
        column of it) and keeps the answer for all chunks.
    chunk_size : int
        Most rows per block, at least 1.

    Raises
    ------
    InputError
        ``chunk_size`` below 1 or an unknown scale.
    ExpressionFormatError
        An input without samples.
    GeneMappingError, CoverageError
        No column maps to a gene, or none to the model's genes.
    """
    if chunk_size < 1:
        raise InputError(f"chunk size must be at least 1 row, got {chunk_size}")
    if scale not in ("auto", "counts", "tpm", "log"):
        raise InputError(f"unknown scale {scale!r}: expected auto, counts, tpm or log")
    if source.n_rows == 0:
        raise ExpressionFormatError(f"{source.name}: the expression matrix has no samples")
    mapping, report = map_identifiers(source.columns)
    if not mapping:
        raise GeneMappingError(
            f"{source.name}: no gene identifier could be mapped to an HGNC symbol"
        )
    wanted = set(model.feature_builder.genes_in_)
    positions = np.array(
        [i for i, label in enumerate(source.columns) if mapping.get(label) in wanted],
        dtype=np.intp,
    )
    if not positions.size:
        raise CoverageError(f"{source.name}: none of the model's {len(wanted)} genes is present")
    spans = tuple(source.spans(chunk_size))
    resolved: Scale
    if scale == "auto":
        first = next(source.read(spans[0], chunk_size))
        resolved = detect_scale(first.scale_summary())
        logger.info(
            "%s: scale %s, detected on its first %d rows", source.name, resolved, len(first)
        )
    else:
        resolved = scale  # type: ignore[assignment]
    logger.info(
        "%s: %d samples in %d spans; %d of %d columns feed the model",
        source.name,
        source.n_rows,
        len(spans),
        positions.size,
        len(source.columns),
    )
    return ScoringPlan(
        scale=resolved,
        positions=positions,
        labels=tuple(source.columns[i] for i in positions),
        report=report,
        chunk_size=chunk_size,
        spans=spans,
        n_rows=source.n_rows,
    )


def _library_sizes(block: Block) -> np.ndarray:
    library = block.row_sums()
    bad = ~np.isfinite(library)
    if bad.any():
        sample = block.sample_ids[int(np.flatnonzero(bad)[0])]
        raise ExpressionFormatError(f"infinite expression value in sample {sample!r}")
    return library


def prepare_block(
    model: NKResistanceModel, plan: ScoringPlan, block: Block, projected: bool
) -> PreparedExpression:
    """The model's input for one block, shape (n_rows, n_model_symbols), log2(TPM+1).

    Parameters
    ----------
    model : NKResistanceModel
    plan : ScoringPlan
    block : Block
        Every input column (``projected=False``) or only ``plan.positions``, in that order.
    projected : bool
        Whether ``block`` was read with ``project=plan.positions``.
    """
    selected = np.arange(plan.positions.size) if projected else plan.positions
    values = block.columns(selected)
    labels = list(plan.labels)
    if plan.scale == "counts":
        to_log_tpm(block.scale_summary(), "counts")  # every column: counts' own checks
        rest = _library_sizes(block) - np.nansum(values, axis=1)
        with_rest = pd.DataFrame(
            np.column_stack([values, rest]), index=block.sample_ids, columns=[*labels, OTHER_GENES]
        )
        values = to_log_tpm(with_rest, "counts")[0].to_numpy()[:, :-1]
    elif plan.scale == "tpm":
        linear = pd.DataFrame(values, index=block.sample_ids, columns=labels)
        values = to_log_tpm(linear, "tpm")[0].to_numpy()
    frame = pd.DataFrame(values, index=pd.Index(block.sample_ids, name="sample_id"), columns=labels)
    return model.prepare(frame, scale="log")


# --------------------------------------------------------------------------- jobs


@dataclass
class _Job:
    """Everything a worker needs to score a span (shipped once per worker)."""

    model: NKResistanceModel
    source: ChunkSource
    plan: ScoringPlan

    def prepared(self, span: Span) -> Iterator[PreparedExpression]:
        """The model input of each block of ``span``."""
        project = None if self.plan.reads_all_columns else self.plan.positions
        for block in self.source.read(span, self.plan.chunk_size, project):
            yield prepare_block(self.model, self.plan, block, project is not None)


@dataclass
class PredictJob(_Job):
    """Predictions of a span: ``predict_span``; rejects samples below ``min_coverage``."""

    min_coverage: float = 0.0


def predict_span(job: PredictJob, span: Span) -> pd.DataFrame:
    """:meth:`NKResistanceModel.predict_table` rows of one span, shape (span.n_rows, 4)."""
    tables = []
    for prepared in job.prepared(span):
        job.model.check_coverage(prepared, job.min_coverage)
        tables.append(job.model.predict_table(prepared))
    return pd.concat(tables, ignore_index=True)


@dataclass
class ExplainJob(_Job):
    """Explanations of a span; every ``stride``-th sample also feeds the cohort summary."""

    method: ExplainMethod = "auto"
    stride: int = 1


@dataclass
class ExplainedSpan:
    """Per-level tables of one span and its share of the cohort-summary sample."""

    tables: dict[str, pd.DataFrame]
    sample: Explanation


def _rows_of(explanation: Explanation, rows: np.ndarray) -> Explanation:
    expression = explanation.expression
    return Explanation(
        shap=explanation.shap.iloc[rows],
        values=explanation.values.iloc[rows],
        base_value=explanation.base_value,
        model_output=explanation.model_output.iloc[rows],
        allocations=explanation.allocations,
        units=explanation.units,
        expression=None if expression is None else expression.iloc[rows],
        resistant_sign=explanation.resistant_sign,
    )


def _concat(parts: list[Explanation]) -> Explanation:
    first = parts[0]
    expressions = [p.expression for p in parts if p.expression is not None]
    return Explanation(
        shap=pd.concat([p.shap for p in parts]),
        values=pd.concat([p.values for p in parts]),
        base_value=first.base_value,
        model_output=pd.concat([p.model_output for p in parts]),
        allocations=first.allocations,
        units=first.units,
        expression=pd.concat(expressions) if len(expressions) == len(parts) else None,
        resistant_sign=first.resistant_sign,
    )


def explain_span(job: ExplainJob, span: Span) -> ExplainedSpan:
    """Explanation tables (:meth:`Explanation.table` of every level) of one span."""
    tables: dict[str, list[pd.DataFrame]] = {level: [] for level in LEVELS}
    samples, row = [], span.offset
    for prepared in job.prepared(span):
        explanation = explain(job.model, prepared, job.method)
        for level in LEVELS:
            tables[level].append(explanation.table(level).reset_index())
        n = prepared.n_samples
        keep = np.flatnonzero((np.arange(row, row + n) % job.stride) == 0)
        samples.append(_rows_of(explanation, keep))
        row += n
    return ExplainedSpan(
        tables={level: pd.concat(parts, ignore_index=True) for level, parts in tables.items()},
        sample=_concat(samples),
    )


# --------------------------------------------------------------------------- writing


class TableWriter:
    """Append DataFrames to one ``.parquet``, ``.csv`` or ``.tsv`` file, atomically.

    Parquet: a :class:`pyarrow.parquet.ParquetWriter` writing one row group per appended
    frame, with the schema of the first. Text: the header once, then rows. Everything goes
    to a temporary sibling renamed onto ``path`` when the ``with`` block succeeds; on error
    the temporary file is removed and ``path`` is left as it was.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.suffix = self.path.suffix.lower()
        if self.suffix not in TABLE_SUFFIXES:
            raise InputError(f"{self.path}: output must end in {', '.join(TABLE_SUFFIXES)}")
        self.n_rows = 0
        self._stack = ExitStack()
        self._parquet: pq.ParquetWriter | None = None
        self._text: Any = None

    def __enter__(self) -> TableWriter:
        self._staging = self._stack.enter_context(atomic_path(self.path))
        if self.suffix != ".parquet":
            self._text = self._stack.enter_context(self._staging.open("w", encoding="utf-8"))
        return self

    def write(self, frame: pd.DataFrame) -> None:
        """Append the rows of ``frame`` (same columns every time; index not written)."""
        if self._text is not None:
            sep = "\t" if self.suffix == ".tsv" else ","
            frame.to_csv(self._text, index=False, sep=sep, header=self.n_rows == 0)
        else:
            if self._parquet is None:
                table = pa.Table.from_pandas(frame, preserve_index=False)
                self._parquet = pq.ParquetWriter(self._staging, table.schema)
                self._stack.callback(self._parquet.close)
            else:
                table = pa.Table.from_pandas(
                    frame, schema=self._parquet.schema, preserve_index=False
                )
            self._parquet.write_table(table)
        self.n_rows += len(frame)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._stack.__exit__(exc_type, exc, traceback)


@dataclass
class StreamResult:
    """What a streamed scoring run did.

    Attributes
    ----------
    n_rows : int
        Samples scored.
    scale : {"counts", "tpm", "log"}
        Scale the input was taken to be.
    report : HarmonizationReport
        Mapping of the input's column labels.
    paths : dict of str to Path
        Files written.
    calls : dict of str to int
        Predictions: number of samples per call.
    summary : dict
        Explanations: the content of ``global.json``.
    """

    n_rows: int
    scale: Scale
    report: HarmonizationReport
    paths: dict[str, Path]
    calls: dict[str, int] = field(default_factory=dict)
    summary: dict[str, Any] = field(default_factory=dict)


def _plan(
    model: NKResistanceModel, path: str | Path, scale: str, chunk_size: int | None
) -> tuple[ChunkSource, ScoringPlan]:
    source = open_source(path)
    return source, plan_scoring(model, source, scale, chunk_size or DEFAULT_CHUNK_SIZE)


def predict_file(
    model: NKResistanceModel,
    path: str | Path,
    out: str | Path,
    *,
    scale: str = "auto",
    chunk_size: int | None = None,
    min_coverage: float = 0.0,
    progress: Progress | None = None,
    mapper: Mapper[Any, Any, Any] = map_in_process,
) -> StreamResult:
    """Score an expression input chunk by chunk into a predictions table.

    Parameters
    ----------
    model : NKResistanceModel
        Fitted.
    path : str or Path
        Input (see :func:`open_source`).
    out : str or Path
        ``.parquet`` (one row group per chunk), ``.csv`` or ``.tsv``; rows as
        :meth:`NKResistanceModel.predict_table`, in input order.
    scale : {"auto", "counts", "tpm", "log"}
        See :func:`plan_scoring`.
    chunk_size : int, optional
        Most rows scored at once (default :data:`DEFAULT_CHUNK_SIZE`).
    min_coverage : float
        Refuse samples covering less of the model's genes
        (:meth:`NKResistanceModel.check_coverage`); nothing is written then.
    progress : callable, optional
        ``progress(rows_done, rows_total)`` after each span.
    mapper : callable
        Runs ``predict_span`` over the spans (:func:`map_in_process` or a cluster's).

    Returns
    -------
    StreamResult
    """
    source, plan = _plan(model, path, scale, chunk_size)
    job = PredictJob(model, source, plan, min_coverage)
    calls: Counter[str] = Counter()
    with TableWriter(out) as writer:
        for table in mapper(predict_span, job, list(plan.spans)):
            writer.write(table)
            calls.update(table["call"].astype(str))
            if progress is not None:
                progress(writer.n_rows, plan.n_rows)
    return StreamResult(
        writer.n_rows, plan.scale, plan.report, {"predictions": Path(out)}, dict(calls)
    )


def explain_file(
    model: NKResistanceModel,
    path: str | Path,
    out_dir: str | Path,
    *,
    scale: str = "auto",
    chunk_size: int | None = None,
    method: ExplainMethod = "auto",
    progress: Progress | None = None,
    mapper: Mapper[Any, Any, Any] = map_in_process,
) -> StreamResult:
    """Explain an expression input chunk by chunk; the files of ``write_explanations``.

    ``features.csv``, ``genes.csv``, ``axes.csv`` and ``pathways.csv`` get one row per sample
    in input order, appended chunk by chunk (each file complete or absent); ``global.json``
    ranks the units over the cohort, exactly for up to :data:`GLOBAL_SAMPLE` samples and from
    every k-th sample above (``n_samples`` counts all samples, ``n_samples_summarised`` the
    ones summarised).

    Parameters
    ----------
    model, path, scale, chunk_size, progress, mapper
        As for :func:`predict_file`.
    out_dir : str or Path
        Directory to write into.
    method : {"auto", "native", "shap"}
        TreeSHAP implementation.

    Returns
    -------
    StreamResult
    """
    source, plan = _plan(model, path, scale, chunk_size)
    job = ExplainJob(model, source, plan, method, max(1, math.ceil(plan.n_rows / GLOBAL_SAMPLE)))
    out = Path(out_dir)
    paths = {stem: out / f"{stem}.csv" for stem in FILE_STEMS.values()}
    samples, done = [], 0
    with ExitStack() as stack:
        writers = {
            level: stack.enter_context(TableWriter(paths[stem]))
            for level, stem in FILE_STEMS.items()
        }
        for part in mapper(explain_span, job, list(plan.spans)):
            for level, writer in writers.items():
                writer.write(part.tables[level])
            samples.append(part.sample)
            done += len(part.tables["feature"])
            if progress is not None:
                progress(done, plan.n_rows)
    summary = global_summary(_concat(samples))
    summary["n_samples_summarised"] = summary["n_samples"]
    summary["n_samples"] = done
    result: dict[str, Path] = dict(paths)
    result["global"] = write_json(out / GLOBAL_FILE, summary)
    return StreamResult(done, plan.scale, plan.report, result, summary=summary)
