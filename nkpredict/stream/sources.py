"""Inputs read span by span: Parquet datasets, h5ad files, and matrices already in memory.

:func:`open_source` decides how an input is read. Parquet datasets (a file or a directory of
files) are read batch by batch from their row groups, with only the needed columns when the
scale allows it; ``.h5ad`` files are read through AnnData's backed sparse dataset (CSR row
slices) or as h5py row slices (dense ``X``). Text files, genes-as-rows tables and CSC-stored
h5ad files cannot be sliced by rows: they are read whole by
:func:`~nkpredict.data.expression.read_expression` and then scored chunk by chunk. The file
kind comes from :func:`~nkpredict.data.expression.file_kind`, as for in-memory reading.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from anndata.io import read_elem, sparse_dataset
from scipy import sparse

from nkpredict.data.expression import GENE_LIKE_MIN, file_kind, read_expression
from nkpredict.data.identifiers import gene_like_fraction
from nkpredict.exceptions import ExpressionFormatError
from nkpredict.stream.blocks import (
    Block,
    DenseBlock,
    Span,
    SparseBlock,
    row_spans,
    rows_per_block,
)

__all__ = ["ChunkSource", "FrameSource", "H5adSource", "ParquetSource", "open_source"]

logger = logging.getLogger(__name__)


def _file_kind(path: Path) -> str | None:
    """:func:`~nkpredict.data.expression.file_kind` of a file; None for anything else.

    None stands for a directory, a missing file or an unknown file type: those go to
    :func:`~nkpredict.data.expression.read_expression`, which reports them.
    """
    if not path.is_file():
        return None
    try:
        return file_kind(path)
    except ExpressionFormatError:
        return None


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
        return row_spans(self.n_rows, rows_per_block(chunk_size, len(self.columns)))

    def read(
        self, span: Span, chunk_size: int, project: np.ndarray | None = None
    ) -> Iterator[Block]:
        columns = np.arange(len(self.columns)) if project is None else project
        step = rows_per_block(chunk_size, len(columns))
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
        step = chunk_size if self.is_sparse else rows_per_block(chunk_size, len(self.columns))
        return row_spans(self.n_rows, step)

    def read(
        self, span: Span, chunk_size: int, project: np.ndarray | None = None
    ) -> Iterator[Block]:
        step = chunk_size if self.is_sparse else rows_per_block(chunk_size, len(self.columns))
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
    batches of at most ``chunk_size`` rows (and
    :data:`~nkpredict.stream.blocks.MAX_CHUNK_VALUES` values) are read and copied into one
    float64 array (NULL becomes NaN). Write large datasets with row
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
                if not p.name.startswith((".", "_")) and _file_kind(p) == "parquet"
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
        step = rows_per_block(chunk_size, len(genes))
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
    kind = _file_kind(source)
    if source.is_dir() or kind == "parquet":
        parquet = ParquetSource(source)
        if source.is_dir() or gene_like_fraction(parquet.columns) >= GENE_LIKE_MIN:
            return parquet
        logger.warning(
            "%s: columns do not look like genes; reading the file whole to detect orientation",
            source,
        )
    elif kind == "h5ad":
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
