"""Expression matrices: reading, validation, scale detection and conversion to log2(TPM+1).

Every matrix in nkpredict is *samples x genes* (rows are samples, columns gene identifiers)
and, once prepared, on the **log2(TPM+1)** scale with HGNC symbols as columns:

1. :func:`read_expression` reads CSV/TSV/Parquet/h5ad files into a float64 frame;
2. :func:`validate_matrix` rejects what cannot be interpreted (empty, non-numeric, duplicated
   samples, all-NaN samples, infinite values);
3. :func:`to_log_tpm` detects (:func:`detect_scale`) or takes the scale and converts;
4. :func:`nkpredict.data.identifiers.harmonize_matrix` maps the columns to HGNC symbols.

:func:`prepare_expression` runs steps 2-4.

Scale rules (thresholds below)
------------------------------
``log``
    The maximum finite value is at most ``LOG_MAX`` (50): log2(x+1) of any realistic
    expression stays below about 30, while linear TPM/counts of a whole transcriptome exceed
    50. Negative values are allowed (background-corrected microarray log2 intensities).
``counts``
    Maximum above ``LOG_MAX`` and every finite value a non-negative integer.
``tpm``
    Maximum above ``LOG_MAX``, non-negative, some values not integers (TPM, CPM, FPKM).

A matrix whose maximum is above ``LOG_MAX`` but has negative values has no interpretable
scale (:class:`~nkpredict.exceptions.ScaleError`).
"""

from __future__ import annotations

import logging
import re
from collections import Counter
from collections.abc import Callable, Collection, Hashable, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import anndata
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from scipy import sparse

from nkpredict.catalog import Catalog
from nkpredict.data.identifiers import (
    HarmonizationReport,
    check_unique_genes,
    column_plan,
    gene_like_fraction,
    map_identifiers,
)
from nkpredict.exceptions import CoverageError, ExpressionFormatError, ScaleError
from nkpredict.vocabulary import ORIENTATIONS, Orientation, Scale, ScaleChoice, check_choice

__all__ = [
    "ANNOTATION_COLUMNS",
    "LOG_MAX",
    "STANDARDISED_MEAN",
    "STANDARDISED_NEGATIVE_FRACTION",
    "Orientation",
    "PreparedExpression",
    "Scale",
    "check_not_standardised",
    "detect_scale",
    "file_kind",
    "prepare_expression",
    "prepare_values",
    "read_expression",
    "to_log_tpm",
    "validate_matrix",
]

logger = logging.getLogger(__name__)

LOG_MAX = 50.0
"""Largest value a log2(x+1) matrix may hold; above it values are taken as linear."""
LOG_MIN_WARN = -1.0
"""Log-scale values below this are accepted with a warning (log2(x+1) is never below 0)."""
GENE_LIKE_MIN = 0.5
"""Fraction of labels that must look like gene identifiers for :func:`read_expression` to
treat them as genes when ``orientation="auto"``."""

ANNOTATION_COLUMNS = frozenset(
    {
        "chr",
        "start",
        "end",
        "strand",
        "length",
        "gene_name",
        "gene_type",
        "gene_biotype",
        "description",
        "name",
        "geneid",
        "gene_id",
        "symbol",
        "gene_symbol",
    }
)
"""Columns of count tables that describe the genes, not samples (featureCounts' ``Chr Start
End Strand Length``, ``gene_name``, ``gene_type``, GCT's ``Description``...), matched without
case. In a genes-as-rows file they are set aside with a note, never scored as samples."""
STANDARDISED_NEGATIVE_FRACTION = 0.25
"""A log-scale matrix with at least this fraction of negative values, ..."""
STANDARDISED_MEAN = 0.25
"""... and every sample's mean within this distance of 0, is taken as z-scored or centred."""
_STANDARDISED_MIN_VALUES = 20  # fewer finite values per sample: too few to tell
_DECIMAL_COMMA = re.compile(r"^\s*-?\d+,\d+\s*$")

_SEPARATORS = {".csv": ",", ".tsv": "\t", ".txt": "\t", ".tab": "\t"}
_PARQUET = {".parquet", ".pq"}
_H5AD = ".h5ad"
_CHUNK_CELLS = 20_000_000  # values read per chunk from an h5ad file
_PREVIEW = 5


# --- helpers ---------------------------------------------------------------------------------


def _preview(names: Sequence[object]) -> str:
    shown = ", ".join(repr(str(n)) for n in names[:_PREVIEW])
    return shown + (f" and {len(names) - _PREVIEW} more" if len(names) > _PREVIEW else "")


@dataclass(frozen=True)
class _Labels:
    """Row and column labels of a matrix held as a plain array (for error messages)."""

    index: pd.Index | list[str]
    columns: pd.Index | list[str] | tuple[str, ...]


def _first_cell(matrix: pd.DataFrame | _Labels, mask: np.ndarray) -> str:
    """Describe the first True cell of ``mask`` (shape (n_samples, n_genes)), row by row."""
    rows, cols = np.nonzero(mask)
    return f"sample {str(matrix.index[rows[0]])!r}, gene {str(matrix.columns[cols[0]])!r}"


# --- reading ---------------------------------------------------------------------------------


def file_kind(path: Path) -> str:
    """The reader for ``path``: a separator, ``"parquet"`` or ``"h5ad"``."""
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes[-1:] == [".gz"]:
        ext = suffixes[-2] if len(suffixes) > 1 else ""
        if ext in _SEPARATORS:
            return _SEPARATORS[ext]
    elif suffixes:
        ext = suffixes[-1]
        if ext in _SEPARATORS:
            return _SEPARATORS[ext]
        if ext in _PARQUET:
            return "parquet"
        if ext == _H5AD:
            return "h5ad"
    known = ", ".join([*_SEPARATORS, *sorted(_PARQUET), _H5AD])
    raise ExpressionFormatError(
        f"{path}: unknown expression file type (expected {known}; .gz for text files)"
    )


def _read_parquet(path: Path) -> pd.DataFrame:
    """Parquet: a stored pandas index is kept, else a non-numeric first column is the id."""
    frame = pd.read_parquet(path)
    if isinstance(frame.index, pd.RangeIndex) and frame.shape[1] > 0:
        first = frame.columns[0]
        if not pd.api.types.is_numeric_dtype(frame[first]):
            frame = frame.set_index(first)
    return frame


def _read_table(path: Path, kind: str) -> pd.DataFrame:
    try:
        if kind == "parquet":
            check_unique_genes(_parquet_names(path), f"{path}: ")
            frame = _read_parquet(path)
        else:
            frame = pd.read_csv(path, sep=kind, index_col=0, dtype={0: str})
            frame.columns = _header(path, kind, frame.shape[1])
    except (OSError, ValueError, KeyError) as exc:
        if isinstance(exc, ExpressionFormatError):
            raise
        raise ExpressionFormatError(f"{path}: cannot read expression table: {exc}") from exc
    frame.index = frame.index.map(str)
    frame.columns = frame.columns.map(str)
    if kind != "parquet":
        _check_separators(frame, path, kind)
    return frame


def _parquet_names(path: Path) -> list[str]:
    """Column names of a Parquet file as stored (pandas would refuse or rename duplicates)."""
    try:
        return list(pq.read_schema(path).names)
    except (OSError, pa.ArrowException) as exc:
        raise ExpressionFormatError(f"{path}: cannot read Parquet file: {exc}") from exc


def _header(path: Path, kind: str, n_columns: int) -> list[str]:
    """The header of a text table as written: pandas renames a repeated name (``HLA-E`` ->
    ``HLA-E.1``), which would hide a duplicated gene or sample behind a new name."""
    raw = pd.read_csv(path, sep=kind, header=None, nrows=1, dtype=str, keep_default_na=False)
    names = [str(v) for v in raw.iloc[0].tolist()][1:]
    return names if len(names) == n_columns else [f"{i}" for i in range(n_columns)]


def _check_separators(frame: pd.DataFrame, path: Path, kind: str) -> None:
    """A semicolon-separated file or decimal commas are named as such (not "non-numeric")."""
    header = [str(frame.index.name or ""), *map(str, frame.columns)]
    if kind != ";" and frame.shape[1] <= 1 and any(";" in h for h in header):
        raise ExpressionFormatError(
            f"{path}: the header looks semicolon-separated ({header[0][:60]!r}...); "
            "nkpredict reads comma-separated .csv and tab-separated .tsv/.txt: save the table "
            "with commas or tabs (and decimal points)"
        )
    for j in range(min(frame.shape[1], 200)):
        column = frame.iloc[:, j]
        if pd.api.types.is_numeric_dtype(column):
            continue
        text = column.dropna().astype(str)
        if len(text) and text.str.match(_DECIMAL_COMMA.pattern).mean() > 0.5:
            raise ExpressionFormatError(
                f"{path}: column {str(frame.columns[j])!r} holds numbers with decimal commas "
                f"(e.g. {text.iloc[0]!r}); write decimal points (1.5, not 1,5)"
            )


def _set_aside_annotation(frame: pd.DataFrame, path: Path) -> pd.DataFrame:
    """Drop the gene-annotation columns of a genes-as-rows count table (with a note)."""
    found = [c for c in frame.columns if str(c).strip().lower() in ANNOTATION_COLUMNS]
    if not found:
        return frame
    logger.warning(
        "%s: set aside annotation column(s) %s (they describe genes, not samples)",
        path,
        _preview(found),
    )
    return frame.drop(columns=found)


def _orient(frame: pd.DataFrame, orientation: Orientation, path: Path) -> pd.DataFrame:
    if orientation == "genes":
        return _set_aside_annotation(frame, path).T
    if orientation == "samples":
        return frame
    rows, cols = gene_like_fraction(frame.index), gene_like_fraction(frame.columns)
    transpose = rows >= GENE_LIKE_MIN > cols
    logger.info(
        "%s: %.0f%% of row and %.0f%% of column labels look like genes: %s",
        path,
        100 * rows,
        100 * cols,
        "genes are rows, transposing" if transpose else "samples are rows",
    )
    return _set_aside_annotation(frame, path).T if transpose else frame


def _gene_positions(labels: Sequence[str], genes: Collection[str], path: Path) -> np.ndarray:
    """Positions of ``labels`` that are in ``genes`` or harmonize to a symbol in ``genes``."""
    wanted = set(genes)
    mapping, _ = map_identifiers(labels)
    positions = [i for i, g in enumerate(labels) if g in wanted or mapping.get(g) in wanted]
    if not positions:
        raise CoverageError(f"{path}: none of the {len(wanted)} requested genes is in the file")
    return np.asarray(positions)


def _dense_rows(x: Any, positions: np.ndarray) -> np.ndarray:
    """Read the ``positions`` columns of a backed AnnData ``X`` row chunk by row chunk.

    ``x`` is an h5py dataset (dense) or an AnnData backed sparse dataset; slicing rows of
    either yields an ndarray or a scipy sparse matrix.

    Returns
    -------
    ndarray, shape (n_obs, len(positions))
    """
    n_obs, n_vars = x.shape
    out = np.empty((n_obs, positions.size), dtype=np.float64)
    step = max(1, _CHUNK_CELLS // max(n_vars, 1))
    for start in range(0, n_obs, step):
        block = x[start : start + step]
        if sparse.issparse(block):
            out[start : start + step] = block[:, positions].toarray()
        else:
            out[start : start + step] = np.asarray(block)[:, positions]
    return out


def _read_h5ad(path: Path, genes: Collection[str] | None) -> pd.DataFrame:
    """AnnData: obs are samples (or cells), var_names are genes; X read in row chunks."""
    try:
        adata = anndata.read_h5ad(path, backed="r")
    except (OSError, ValueError, KeyError) as exc:
        raise ExpressionFormatError(f"{path}: cannot read h5ad file: {exc}") from exc
    try:
        if adata.X is None:
            raise ExpressionFormatError(f"{path}: the h5ad file has no X matrix")
        var_names = [str(v) for v in adata.var_names]
        if genes is None:
            positions = np.arange(len(var_names))
        else:
            positions = _gene_positions(var_names, genes, path)
        values = _dense_rows(adata.X, positions)
        columns = [var_names[i] for i in positions]
        return pd.DataFrame(values, index=[str(o) for o in adata.obs_names], columns=columns)
    finally:
        adata.file.close()


def read_expression(
    path: str | Path,
    orientation: Orientation = "auto",
    genes: Collection[str] | None = None,
) -> pd.DataFrame:
    """Read an expression matrix from a file.

    Formats, by extension: ``.csv``; ``.tsv``, ``.txt``, ``.tab`` (tab-separated); each of
    those optionally gzipped (``.csv.gz``); ``.parquet``/``.pq``; ``.h5ad`` (AnnData).

    In text files the first column holds the row labels. In Parquet files a stored pandas
    index is used, else a non-numeric first column. In h5ad files obs are samples (bulk
    samples or single cells) and ``var_names`` are genes; ``X`` (dense or sparse) is read in
    row chunks so that only the selected gene columns are ever densified.

    Parameters
    ----------
    path : str or Path
        The file.
    orientation : {"auto", "samples", "genes"}
        What the rows of a text/Parquet file are. ``"auto"`` transposes when at least half of
        the row labels look like gene identifiers (current symbols, Ensembl IDs, known Entrez
        IDs, DepMap names) and fewer than half of the column labels do. h5ad files always
        follow the AnnData convention (``"genes"`` is refused).
    genes : collection of str, optional
        Keep only the gene columns whose label, or the HGNC symbol it harmonizes to, is in
        ``genes``. Absent genes are not an error here (see
        :meth:`nkpredict.data.identifiers.HarmonizationReport.missing`).

    Returns
    -------
    DataFrame, shape (n_samples, n_genes)
        float64, index named ``sample_id``, string labels, values as stored (any scale),
        validated by :func:`validate_matrix`.

    Raises
    ------
    ExpressionFormatError
        Missing file, unknown extension, unreadable file or invalid matrix.
    CoverageError
        ``genes`` given and none of them is in the file.
    """
    path = Path(path)
    check_choice(orientation, ORIENTATIONS, "orientation")
    if not path.is_file():
        raise ExpressionFormatError(f"{path}: no such expression file")
    kind = file_kind(path)
    if kind == "h5ad":
        if orientation == "genes":
            raise ExpressionFormatError(f"{path}: h5ad files are always obs=samples x var=genes")
        frame = _read_h5ad(path, genes)
    else:
        frame = _orient(_read_table(path, kind), orientation, path)
        check_unique_genes(list(frame.columns), f"{path}: ")
        if genes is not None:
            frame = frame.iloc[:, _gene_positions(list(frame.columns), genes, path)]
    frame = validate_matrix(frame)
    frame.index.name = "sample_id"
    frame.columns.name = None
    logger.info("%s: read %d samples x %d genes", path, *frame.shape)
    return frame


# --- validation ------------------------------------------------------------------------------


def _non_numeric_cell(matrix: pd.DataFrame) -> str:
    """Describe the first cell that is not a number (row by row)."""
    mask = np.zeros(matrix.shape, dtype=bool)
    for j in range(matrix.shape[1]):
        column = matrix.iloc[:, j]
        if not pd.api.types.is_numeric_dtype(column):
            mask[:, j] = (pd.to_numeric(column, errors="coerce").isna() & column.notna()).to_numpy()
    return _first_cell(matrix, mask) if mask.any() else "an unknown cell"


def _numeric_values(matrix: pd.DataFrame) -> np.ndarray:
    try:
        return matrix.to_numpy(dtype=np.float64, na_value=np.nan)
    except (TypeError, ValueError):
        where = _non_numeric_cell(matrix)
        raise ExpressionFormatError(f"non-numeric expression value at {where}") from None


def _as_str_index(index: pd.Index) -> pd.Index:
    """A new Index: ``index`` with every label converted to ``str``, name kept.

    Labels that already are strings are not converted one by one (the common case, and
    ``Index.map`` costs tens of microseconds even for one label).
    """
    if index.inferred_type == "string":  # every label a str (cached on the Index)
        return index.rename(index.name)
    return index.map(str)


def _validated(matrix: pd.DataFrame) -> tuple[np.ndarray, _Labels, bool]:
    """The checks of :func:`validate_matrix`; returns float64 values, string labels and
    whether every value is finite."""
    n_samples, n_genes = matrix.shape
    _check_not_empty(n_samples, n_genes)
    index = _as_str_index(matrix.index)
    _check_unique(index)
    labels = _Labels(index, _as_str_index(matrix.columns))
    values = _numeric_values(matrix)
    return values, labels, _check_values(values, labels)


def _check_not_empty(n_samples: int, n_genes: int) -> None:
    if n_samples == 0 or n_genes == 0:
        raise ExpressionFormatError(
            f"the expression matrix is empty ({n_samples} samples x {n_genes} genes)"
        )


def _check_unique(sample_ids: pd.Index | list[str]) -> None:
    unique = sample_ids.is_unique if isinstance(sample_ids, pd.Index) else None
    if unique or (unique is None and len(set(sample_ids)) == len(sample_ids)):
        return
    duplicated = [sample for sample, n in Counter(sample_ids).items() if n > 1]
    raise ExpressionFormatError(f"duplicated sample IDs: {_preview(duplicated)}")


def _check_values(values: np.ndarray, labels: _Labels) -> bool:
    """No infinite value and no sample without any value (NaN elsewhere is fine); returns
    whether every value is finite (no NaN either)."""
    if np.isfinite(values).all():
        return True
    infinite = np.isinf(values)
    if infinite.any():
        raise ExpressionFormatError(f"infinite expression value at {_first_cell(labels, infinite)}")
    empty = np.flatnonzero(np.isnan(values).all(axis=1))
    if empty.size:
        raise ExpressionFormatError(
            f"samples with only missing values: {_preview([labels.index[i] for i in empty])}"
        )
    return False


def validate_matrix(matrix: pd.DataFrame) -> pd.DataFrame:
    """Check a samples x genes matrix and return it as float64 with string labels.

    Duplicated gene columns are allowed (:func:`nkpredict.data.identifiers.harmonize_matrix` merges
    them); NaN cells are allowed as long as no sample is entirely NaN.

    Parameters
    ----------
    matrix : DataFrame, shape (n_samples, n_genes)

    Returns
    -------
    DataFrame, shape (n_samples, n_genes)
        A float64 copy; index and columns converted to ``str``, index name kept.

    Raises
    ------
    ExpressionFormatError
        Empty matrix, a non-numeric cell, duplicated sample IDs, an all-NaN sample or an
        infinite value; the message names the sample (and gene).
    """
    values, labels, _ = _validated(matrix)
    return pd.DataFrame(values, index=labels.index, columns=labels.columns)


# --- scale -----------------------------------------------------------------------------------


def _is_integer(values: np.ndarray) -> np.ndarray:
    """Element-wise: finite and integer-valued (NaN counts as integer, i.e. not offending)."""
    with np.errstate(invalid="ignore"):
        return np.isnan(values) | (values == np.round(values))


_INTEGER_PROBE = 16
"""Values of the first sample looked at before the whole matrix is checked for integers (a
log or TPM profile shows a fraction among them: the pass over every value is skipped)."""


class _Values:
    """An input's values with what the scale checks read from them, each read once.

    Parameters
    ----------
    values : ndarray of float64, shape (n_samples, n_genes)
        Finite or NaN (validated).
    labels : DataFrame or _Labels
        Row and column labels, for messages.
    all_finite : bool
        The caller found every value finite (no NaN): the checks skip their NaN handling.
    """

    def __init__(
        self, values: np.ndarray, labels: pd.DataFrame | _Labels, all_finite: bool = False
    ) -> None:
        self.values = values
        self.labels = labels
        self.all_finite = all_finite
        # read once each, on first use (plain attributes: a request reads them a few times)
        self._top: float | None = None
        self._bottom: float | None = None
        self._integer: bool | None = None

    @property
    def top(self) -> float:
        """The largest finite value (NaN when there is none); what ``np.nanmax`` gives."""
        if self._top is None:
            self._top = float(np.fmax.reduce(self.values, axis=None))
        return self._top

    @property
    def bottom(self) -> float:
        """The smallest finite value (NaN when there is none)."""
        if self._bottom is None:
            self._bottom = float(np.fmin.reduce(self.values, axis=None))
        return self._bottom

    @property
    def integer(self) -> bool:
        """Whether every finite value is an integer."""
        if self._integer is None:
            self._integer = self._all_integers()
        return self._integer

    def _all_integers(self) -> bool:
        values = self.values
        probe = values[0, :_INTEGER_PROBE].tolist() if values.ndim == 2 and len(values) else []
        # x % 1 of a float is exact: > 0 for a finite fraction (NaN compares False)
        if any(x % 1.0 > 0 for x in probe):
            return False
        return bool(_is_integer(values).all())

    def any_finite(self) -> bool:
        """Whether some value is finite."""
        return self.all_finite or bool(np.isfinite(self.values).any())

    def first(self, mask: np.ndarray) -> str:
        """The first True cell of ``mask`` (shape of the values), named."""
        return _first_cell(self.labels, mask)


def detect_scale(matrix: pd.DataFrame) -> Scale:
    """Guess the scale of a validated matrix (rules and thresholds in the module docstring).

    Parameters
    ----------
    matrix : DataFrame, shape (n_samples, n_genes)
        Numeric, finite or NaN.

    Returns
    -------
    {"counts", "tpm", "log"}

    Raises
    ------
    ScaleError
        No finite value, or values above ``LOG_MAX`` together with negative values.
    """
    return _detect_scale(_Values(matrix.to_numpy(dtype=np.float64), matrix))


def _detect_scale(values: _Values) -> Scale:
    """:func:`detect_scale` of ``values``."""
    if not values.any_finite():
        raise ScaleError("cannot detect the scale: the matrix has no finite value")
    top = values.top
    integer = values.integer
    if top <= LOG_MAX:
        if integer:
            logger.warning(
                "all values are integers with maximum %g <= %g: taken as log values; declare "
                "scale='counts' if they are (low-depth) read counts",
                top,
                LOG_MAX,
            )
        return "log"
    if values.bottom < 0:
        raise ScaleError(
            f"values up to {top:g} look linear, but the value at "
            f"{values.first(values.values < 0)} is negative: linear expression cannot be negative"
        )
    scale: Scale = "counts" if integer else "tpm"
    logger.info("detected %s scale (maximum %g)", scale, top)
    return scale


def _require_non_negative(values: _Values, scale: Scale) -> None:
    if values.bottom < 0:
        raise ScaleError(
            f"negative value on the {scale} scale at {values.first(values.values < 0)}"
        )


def _read(values: np.ndarray, columns: np.ndarray | None) -> np.ndarray:
    """The ``columns`` of ``values`` (n_samples, n_genes) as a new array; all for ``None``."""
    return values.copy() if columns is None else np.take(values, columns, axis=1)


def _counts_to_log(values: _Values, columns: np.ndarray | None) -> np.ndarray:
    """Counts -> log2(CPM+1); library size = sum of the sample's counts (NaN skipped)."""
    _require_non_negative(values, "counts")
    array = values.values
    if not values.integer:
        raise ScaleError(
            f"non-integer value on the counts scale at {values.first(~_is_integer(array))}; "
            "round expected counts or declare scale='tpm'"
        )
    library = np.nansum(array, axis=1)
    if (library == 0).any():
        raise ScaleError(
            "samples with zero library size: "
            f"{_preview([values.labels.index[i] for i in np.flatnonzero(library == 0)])}"
        )
    read = array if columns is None else np.take(array, columns, axis=1)
    return np.log2(read / library[:, None] * 1e6 + 1.0)


def _tpm_to_log(values: _Values, columns: np.ndarray | None) -> np.ndarray:
    """TPM/CPM/FPKM -> log2(x+1), without renormalising (see :func:`to_log_tpm`)."""
    _require_non_negative(values, "tpm")
    array = values.values
    read = array if columns is None else np.take(array, columns, axis=1)
    return np.log2(read + 1.0)


def _check_log(values: _Values, columns: np.ndarray | None) -> np.ndarray:
    """Log values are kept; values above ``LOG_MAX`` are refused, below -1 warned about."""
    array = values.values
    if values.top > LOG_MAX:  # fmax/fmin skip NaN; one pass each
        raise ScaleError(
            f"value above {LOG_MAX:g} on the log scale at "
            f"{values.first(array > LOG_MAX)}: these look like linear values "
            "(declare scale='counts' or 'tpm', or 'auto')"
        )
    _refuse_standardised(values)
    if values.bottom < LOG_MIN_WARN:
        too_low = array < LOG_MIN_WARN
        logger.warning(
            "%d log-scale values below %g (first at %s): kept as they are (microarray log2 "
            "intensities can be negative)",
            int(too_low.sum()),
            LOG_MIN_WARN,
            values.first(too_low),
        )
    return _read(array, columns)


def check_not_standardised(matrix: pd.DataFrame) -> None:
    """Refuse a matrix of per-sample z-scores or centred values (see :func:`to_log_tpm`).

    For callers that see the whole of a sample only once, e.g. the first block of a streamed
    file, whose model genes alone are later prepared.

    Raises
    ------
    ScaleError
        Many negative values around a mean of 0 in every sample.
    """
    _refuse_standardised(_Values(matrix.to_numpy(dtype=np.float64), matrix))


def _refuse_standardised(values: _Values) -> None:
    """Refuse per-sample standardised or centred values (z-scores): many negatives around a
    mean of 0 in every sample. They have lost each sample's level and spread, which the model
    reads on the log2(TPM+1) scale, and nothing in them can restore it."""
    array = values.values
    if not array.size or not values.bottom < 0:  # no negative value (or none finite)
        return
    if values.all_finite:
        if array.shape[1] < _STANDARDISED_MIN_VALUES:
            return
        negative = float(np.count_nonzero(array < 0) / array.size)
    else:
        finite = np.isfinite(array)
        if finite.sum(axis=1).min() < _STANDARDISED_MIN_VALUES:
            return
        negative = float((array[finite] < 0).mean())
    if negative < STANDARDISED_NEGATIVE_FRACTION:
        return
    means = np.nanmean(array, axis=1)
    if np.all(np.abs(means) <= STANDARDISED_MEAN):
        raise ScaleError(
            f"the values look standardised or centred per sample ({negative:.0%} negative, "
            f"sample means within {STANDARDISED_MEAN:g} of 0, e.g. sample "
            f"{str(values.labels.index[0])!r}): z-scores cannot be put on the model's "
            "log2(TPM+1) scale, because standardising removed each gene's level; send the "
            "values before standardisation (counts, TPM or log2(TPM+1))"
        )


_CONVERTERS: dict[str, Callable[[_Values, np.ndarray | None], np.ndarray]] = {
    "counts": _counts_to_log,
    "tpm": _tpm_to_log,
    "log": _check_log,
}


def to_log_tpm(matrix: pd.DataFrame, scale: ScaleChoice = "auto") -> tuple[pd.DataFrame, Scale]:
    """Bring a validated matrix to log2(TPM+1).

    - ``counts``: per-sample CPM (library size = the sample's total over all columns, NaN
      skipped), then log2(x+1). The project calls this "TPM-like": gene lengths are not used,
      which is exact for 3'-tag data and a monotone per-gene shift for full-length data.
    - ``tpm``: log2(x+1) of the values as given, *not* renormalised to sum to 1e6: the file
      may hold a subset of the genes the TPM were computed over (a DepMap extract, a panel),
      and renormalising would make every value depend on which genes happen to be present.
    - ``log``: unchanged (assumed log2(x+1); negative microarray values allowed, values below
      -1 logged as a warning).

    Parameters
    ----------
    matrix : DataFrame, shape (n_samples, n_genes)
        Validated (see :func:`validate_matrix`); NaN cells stay NaN.
    scale : {"auto", "counts", "tpm", "log"}
        The scale of ``matrix``; ``"auto"`` uses :func:`detect_scale`.

    Returns
    -------
    log_matrix : DataFrame, shape (n_samples, n_genes)
        float64, same labels.
    scale : {"counts", "tpm", "log"}
        The scale the input was taken to be.

    Raises
    ------
    ScaleError
        Unknown scale; negative values on the counts or TPM scale; non-integer counts; a
        zero library size; values above ``LOG_MAX`` on the log scale. Messages name the
        offending sample and gene.
    """
    values = _Values(matrix.to_numpy(dtype=np.float64), matrix)
    log_values, resolved = _to_log_values(values, scale)
    return pd.DataFrame(log_values, index=matrix.index, columns=matrix.columns), resolved


def _to_log_values(
    values: _Values, scale: ScaleChoice, columns: np.ndarray | None = None
) -> tuple[np.ndarray, Scale]:
    """:func:`to_log_tpm` of ``values``: the converted ``columns`` (positions, all for
    ``None``), shape (n_samples, n_columns); every check reads all the values."""
    if scale != "auto" and scale not in _CONVERTERS:
        raise ScaleError(f"unknown scale {scale!r}: expected auto, counts, tpm or log")
    resolved: Scale = _detect_scale(values) if scale == "auto" else scale
    return _CONVERTERS[resolved](values, columns), resolved


# --- the whole preparation -------------------------------------------------------------------


@dataclass(eq=False)  # holds arrays: compare their contents explicitly
class PreparedExpression:
    """A matrix ready for feature extraction: log2(TPM+1) values and their labels.

    The values are held as an array; the DataFrame :attr:`matrix` is built only when it is
    asked for (a request of one sample then never pays for pandas labels). Treat both as
    read-only: they share memory.

    Attributes
    ----------
    values : ndarray of float64, shape (n_samples, n_symbols)
        log2(TPM+1); NaN where a gene was not measured.
    sample_ids : list of str, length n_samples
    genes : Index of str, length n_symbols
        HGNC symbols, unique. Shared with other inputs that had the same identifiers (see
        :func:`nkpredict.data.identifiers.harmonize_values`): do not rename it.
    scale : {"counts", "tpm", "log"}
        The scale the input was taken to be.
    report : HarmonizationReport
        What happened to the gene identifiers.
    index_name : hashable, optional
        Name of :attr:`matrix`'s index (the input's, e.g. ``sample_id``).
    """

    values: np.ndarray
    sample_ids: list[str]
    genes: pd.Index
    scale: Scale
    report: HarmonizationReport
    index_name: Hashable = None

    @cached_property
    def matrix(self) -> pd.DataFrame:
        """The values as a DataFrame, shape (n_samples, n_symbols): samples x HGNC symbols."""
        index = pd.Index(self.sample_ids, dtype=object, name=self.index_name)
        columns = self.genes.rename(None)  # the frame's own Index (``genes`` may be shared)
        return pd.DataFrame(self.values, index=index, columns=columns, copy=False)

    @property
    def n_samples(self) -> int:
        """Number of samples (rows)."""
        return len(self.sample_ids)

    def rows(self, which: slice | Sequence[int] | np.ndarray) -> PreparedExpression:
        """The samples at positions ``which``, with the same scale, report and genes."""
        positions = np.arange(self.n_samples)[which]
        return PreparedExpression(
            values=self.values[positions],
            sample_ids=[self.sample_ids[i] for i in positions],
            genes=self.genes,
            scale=self.scale,
            report=self.report,
            index_name=self.index_name,
        )


def prepare_expression(
    matrix: pd.DataFrame,
    scale: ScaleChoice = "auto",
    catalog: Catalog | None = None,
) -> PreparedExpression:
    """Validate, convert to log2(TPM+1) and harmonize gene identifiers.

    Runs :func:`validate_matrix`, :func:`to_log_tpm` and
    :func:`nkpredict.data.identifiers.harmonize_matrix` on one float64 array and builds a single
    DataFrame at the end (a request of one sample pays for no intermediate frames).

    The scale conversion comes before harmonization so that library sizes use every column
    of the input, including those later dropped as unmapped.

    Parameters
    ----------
    matrix : DataFrame, shape (n_samples, n_genes)
        Any accepted scale and gene identifiers.
    scale : {"auto", "counts", "tpm", "log"}
        See :func:`to_log_tpm`.
    catalog : Catalog, optional
        For catalogue aliases; defaults to :func:`nkpredict.catalog.load_catalog`.

    Returns
    -------
    PreparedExpression
    """
    values, labels, all_finite = _validated(matrix)
    return _prepare(_Values(values, labels, all_finite), scale, catalog, matrix.index.name)


def prepare_values(
    values: np.ndarray,
    samples: Sequence[str] | pd.Index,
    genes: Sequence[str],
    scale: ScaleChoice = "auto",
    catalog: Catalog | None = None,
    str_labels: bool = False,
    keep: Collection[str] | None = None,
) -> PreparedExpression:
    """:func:`prepare_expression` of a plain array and its labels (no input DataFrame).

    The same checks, conversion and harmonization, for callers that hold the values as an
    array already (the HTTP service parses a request straight into one); the only frame
    built is the prepared matrix.

    Parameters
    ----------
    values : array-like, shape (n_samples, n_genes)
        Numbers; NaN = not measured.
    samples : sequence of str or Index, length n_samples
        Sample IDs (converted to ``str``; an Index keeps its name).
    genes : sequence of str, length n_genes
        Gene identifiers of the columns (converted to ``str``).
    scale, catalog
        See :func:`prepare_expression`.
    str_labels : bool, default False
        The caller guarantees that ``samples`` and ``genes`` are lists (``genes`` also a
        tuple) of ``str`` (JSON keys): they are used as they are (converting 19,000 gene names
        costs more than a millisecond).
    keep : collection of str, optional
        HGNC symbols wanted (e.g. the genes a model reads; pass the same tuple each time, it
        is remembered with the genes' mapping): only their columns are converted and
        harmonized, the others left out of the result (every mapped column when none of
        ``keep`` is). The checks and the scale still read every value, counts' library sizes
        still sum every column, and the report still describes every identifier, so the kept
        columns equal those of the whole preparation. The report is then shared by every
        input with the same identifiers: do not change it.

    Returns
    -------
    PreparedExpression
        Equal to ``prepare_expression(DataFrame(values, samples, genes), ...)`` (restricted
        to the columns of ``keep``).
    """
    try:
        array = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ExpressionFormatError(f"non-numeric expression value: {exc}") from None
    if array.ndim != 2 or array.shape != (len(samples), len(genes)):
        raise ExpressionFormatError(
            f"values of shape {array.shape} do not match {len(samples)} samples x "
            f"{len(genes)} genes"
        )
    _check_not_empty(*array.shape)
    str_lists = str_labels and type(samples) is list and type(genes) in (list, tuple)
    sample_ids = samples if str_lists else list(map(str, samples))
    _check_unique(sample_ids)
    columns = genes if str_lists else list(map(str, genes))
    labels = _Labels(sample_ids, columns)
    all_finite = _check_values(array, labels)
    index_name = samples.name if isinstance(samples, pd.Index) else None
    return _prepare(_Values(array, labels, all_finite), scale, catalog, index_name, keep)


def _prepare(
    values: _Values,
    scale: ScaleChoice,
    catalog: Catalog | None,
    index_name: Hashable,
    keep: Collection[str] | None = None,
) -> PreparedExpression:
    """Scale conversion and harmonization of validated values (no DataFrame built): only
    the columns the harmonization reads (of the symbols ``keep``, all for ``None``) are
    converted."""
    labels = values.labels
    columns = labels.columns
    genes = columns if isinstance(columns, list | tuple) else columns.tolist()
    plan = column_plan(genes, keep, catalog)
    log_values, resolved = _to_log_values(values, scale, plan.positions)
    harmonized = plan.harmonize(log_values)
    report = plan.report if keep is not None else plan.report.copy()
    index = labels.index
    sample_ids = index if isinstance(index, list) else index.tolist()
    return PreparedExpression(harmonized, sample_ids, plan.symbols, resolved, report, index_name)
