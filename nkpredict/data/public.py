"""Readers for the public file formats of NK-killing data and cell-line expression.

DepMap / CCLE expression
    ``OmicsExpressionProteinCodingGenesTPMLogp1.csv``-style matrices: one row per model, the
    first column (unnamed, ``ModelID`` or ``DepMap_ID``) holds ``ACH-`` identifiers and every
    other column is named ``SYMBOL (ENTREZ)``; values are ``log2(TPM + 1)``. Newer releases
    that carry ``SequencingID``/``IsDefaultEntryForModel`` columns are reduced to the default
    entry of each model.
The published NK PRISM screen (Dufva et al. 2023, Immunity), five layouts
    1. ``nk-prism``: the long table ``NK_PRISM_heme_pctviability.txt`` (``cell_line``,
       ``DepMap_ID``, ``Subtype``, ``Condition`` = ``CTRL`` / ``D1_NK_<E:T>`` / ``D1_<E:T>``,
       ``pctviability`` normalised to the control, not clipped);
    2. ``nk-prism-auc``: ``NK_PRISM_heme_pctviability_auc_norm.txt``, the same rows plus
       ``auc`` and ``auc_norm`` (kept as they are, and checked against a recomputation);
    3. ``nk-prism-replicates``: ``NK_PRISM_heme_pctviability_biologicalreplicates.txt``,
       wide: ``Condition``, ``Biological_replicate``, then one column per line named
       CCLE-style (``<NAME>_HAEMATOPOIETIC_AND_LYMPHOID_TISSUE``);
    4. ``dufva-s5a``: supplementary table S5A, one row per line (``Cell_line``,
       ``AUC_normalized`` -> ``auc_norm``, ``DepMap_ID``, ``CCLE_Name``, ``Cancer_type_main``...);
    5. ``dufva-s5b``: table S5B, long replicates (``Cell_line``, ``Effector_target_ratio``,
       ``Replicate``, ``Percent_viability_replicate``, ``Percent_viability_mean``).

    Each becomes one row per line (:func:`screen_table`): ``DepMap_ID``, ``cell_line``,
    ``lineage`` (from ``Cancer_type_main``, else ``Subtype``), the mean % viability per E:T
    ratio (``viability_et_<r>``), the AUC, and every other column with one value per line.
Generic label tables
    CSV or TSV files with one row per sample and an identifier column.

The two AUCs are defined here once: the paper's :func:`dufva_auc` (``auc_norm``, high =
resistant) and the project's :func:`killing_auc` (high = killed).
"""

from __future__ import annotations

import csv
import logging
import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from nkpredict.exceptions import ExpressionFormatError, InputError, LabelError, ScaleError
from nkpredict.vocabulary import AUC_METHODS, LABEL_FORMATS, AucMethod, LabelFormat, check_choice

logger = logging.getLogger(__name__)

__all__ = [
    "AUC_COLUMNS",
    "AUC_TOLERANCE",
    "CCLE_TISSUE_SUFFIX",
    "CONTROL_CONDITION",
    "DUFVA_AUC_COLUMN",
    "KILLING_AUC_COLUMN",
    "LINEAGE_COLUMN",
    "LINEAGE_SOURCES",
    "LINE_COLUMNS",
    "LINE_INDEX",
    "NK_PRISM_COLUMNS",
    "SCREEN_FORMATS",
    "VIABILITY_PREFIX",
    "auc_column",
    "ccle_cell_line",
    "detect_label_format",
    "dufva_auc",
    "format_ratio",
    "is_nk_prism_file",
    "is_nk_prism_table",
    "join_labels",
    "killing_auc",
    "label_format",
    "nk_condition",
    "parse_condition",
    "read_depmap_expression",
    "read_labels",
    "read_nk_prism",
    "screen_table",
    "stripped_name",
    "viability_column",
    "viability_columns",
]

VIABILITY_PREFIX = "viability_et_"
CONTROL_CONDITION = "CTRL"
NK_PRISM_COLUMNS: tuple[str, ...] = ("cell_line", "DepMap_ID", "Condition", "pctviability")
_NK_PRISM_REQUIRED = ("DepMap_ID", "Condition", "pctviability")
DUFVA_AUC_COLUMN = "auc_norm"
"""The paper's normalised AUC (:func:`dufva_auc`; high = resistant)."""
KILLING_AUC_COLUMN = "killing_auc"
"""The project's killing AUC (:func:`killing_auc`; high = killed)."""
AUC_COLUMNS: dict[AucMethod, str] = {
    "dufva2023": DUFVA_AUC_COLUMN,
    "log2-killing": KILLING_AUC_COLUMN,
}
"""Output column of each ``--auc`` method."""
AUC_TOLERANCE = 1e-3
"""Largest difference between a file's ``auc_norm`` and its recomputation taken as equal."""
LINEAGE_COLUMN = "lineage"
LINEAGE_SOURCES = ("Cancer_type_main", "Subtype")
"""Columns of the published tables that become ``lineage`` (the first present wins)."""
LINE_COLUMNS = ("DepMap_ID", "cell_line", LINEAGE_COLUMN)
"""The identity columns that open every per-line table."""
CCLE_TISSUE_SUFFIX = "_HAEMATOPOIETIC_AND_LYMPHOID_TISSUE"
SCREEN_FORMATS: frozenset[LabelFormat] = frozenset(
    {"nk-prism", "nk-prism-auc", "nk-prism-replicates", "dufva-s5a", "dufva-s5b"}
)
"""The published layouts (everything :data:`~nkpredict.vocabulary.LABEL_FORMATS` names but
``auto`` and ``table``)."""
LINE_INDEX = "line"
"""Index name of a per-line table: the ``DepMap_ID``, else the CCLE or cell-line name."""
_LINE, _RATIO, _VIABILITY = "__line", "__ratio", "__viability"
_LONG = (_LINE, _RATIO, _VIABILITY)

_DEPMAP_ID = re.compile(r"^ACH-\d+$")
_DEPMAP_GENE = re.compile(r"^\S+ \(\d+\)$")
_DEPMAP_ID_COLUMNS = ("ModelID", "DepMap_ID")
_DEPMAP_METADATA = frozenset(
    {
        "SequencingID",
        "ModelID",
        "DepMap_ID",
        "ModelConditionID",
        "IsDefaultEntryForModel",
        "IsDefaultEntryForMC",
        "ProfileID",
    }
)
_NUMBER = r"\d+(?:\.\d+)?|\.\d+"
_CONDITION = re.compile(
    rf"^(?:D\d+_)?(?:(?P<control>CTRL|CONTROL|NO_?NK)|(?:NK_?)?(?P<effector>{_NUMBER})"
    rf"(?::(?P<target>{_NUMBER}))?)$",
    re.IGNORECASE,
)
_LABEL_SEPARATORS = {".csv": ",", ".tsv": "\t", ".tab": "\t"}
_SNIFFED_SUFFIXES = frozenset({".txt", ".dat"})
_COMPRESSION_SUFFIXES = frozenset({".gz", ".bz2", ".xz", ".zip", ".zst"})
_MAX_LISTED = 5


# ---------------------------------------------------------------------------------------------
# E:T ratios, conditions and the killing AUC
# ---------------------------------------------------------------------------------------------


def format_ratio(ratio: float) -> str:
    """Shortest text of an E:T ratio: ``0.5 -> "0.5"``, ``1.0 -> "1"``, ``2.5 -> "2.5"``."""
    return f"{float(ratio):g}"


def viability_column(ratio: float) -> str:
    """Label column holding the % viability at E:T ``ratio`` (``viability_et_0.5``)."""
    return f"{VIABILITY_PREFIX}{format_ratio(ratio)}"


def nk_condition(ratio: float) -> str:
    """NK PRISM condition name of E:T ``ratio`` (``D1_NK_0.5``)."""
    return f"D1_NK_{format_ratio(ratio)}"


def parse_condition(condition: object) -> float | None:
    """E:T ratio of an NK PRISM condition; ``None`` for the no-NK control.

    Accepts ``CTRL``, ``D1_NK_<E:T>`` (``D1_NK_0.5``), ratio strings (``D1_NK_1:2`` = 0.5) and
    plain numbers; a ratio of 0 is the control.

    Raises
    ------
    ValueError
        If the condition cannot be parsed.
    """
    match = _CONDITION.match(str(condition).strip())
    if match is None:
        raise ValueError(f"unrecognised NK PRISM condition {condition!r}")
    if match["control"]:
        return None
    ratio = float(match["effector"])
    if match["target"] is not None:
        target = float(match["target"])
        if target == 0:
            raise ValueError(f"NK PRISM condition {condition!r} has a zero target count")
        ratio /= target
    return None if ratio == 0 else ratio


def _column_ratio(column: object) -> float | None:
    """E:T ratio named by a viability column (``viability_et_2`` or a number), else None."""
    text = str(column)
    if text.startswith(VIABILITY_PREFIX):
        text = text[len(VIABILITY_PREFIX) :]
    try:
        ratio = float(text)
    except ValueError:
        return None
    return ratio if math.isfinite(ratio) and ratio > 0 else None


def viability_columns(frame: pd.DataFrame) -> dict[float, str]:
    """Viability columns of ``frame`` keyed by E:T ratio, in increasing ratio order.

    Columns named ``viability_et_<ratio>`` and columns whose name is a positive number count.
    """
    found: dict[float, str] = {}
    for column in frame.columns:
        ratio = _column_ratio(column)
        if ratio is None:
            continue
        if ratio in found:
            raise LabelError(f"two viability columns for E:T {format_ratio(ratio)}")
        found[ratio] = column
    return dict(sorted(found.items()))


def _auc_from_matrix(ratios: np.ndarray, viability: np.ndarray) -> np.ndarray:
    """Normalised trapezoid area under the killed fraction over log2(E:T).

    Parameters
    ----------
    ratios : ndarray of shape (n_ratios,)
        Increasing, positive E:T ratios.
    viability : ndarray of shape (n_samples, n_ratios)
        % viability at each ratio.

    Returns
    -------
    ndarray of shape (n_samples,)
        AUC in [0, 1]; NaN where any viability is missing.
    """
    x = np.log2(ratios)
    killed = np.clip(1.0 - viability / 100.0, 0.0, 1.0)
    areas = np.diff(x) * (killed[:, :-1] + killed[:, 1:]) / 2.0
    return areas.sum(axis=1) / (x[-1] - x[0])


def killing_auc(
    viability_by_ratio: Mapping[float, float] | pd.DataFrame,
) -> float | pd.Series:
    """Killing AUC: the normalised area under the killed fraction over log2(E:T).

    With E:T ratios :math:`r_1 < \\dots < r_m`, :math:`x_j = \\log_2 r_j` and killed fraction
    :math:`y_j = \\mathrm{clip}(1 - v_j / 100, 0, 1)` for % viability :math:`v_j`,

    .. math::

        \\mathrm{AUC} = \\frac{1}{x_m - x_1} \\sum_{j=1}^{m-1} (x_{j+1} - x_j)
        \\frac{y_j + y_{j+1}}{2}

    It lies in [0, 1]: 0 when no cell is killed at any ratio (resistant), 1 when every cell
    is killed at every ratio (sensitive). Viability above 100 % counts as no killing.
    Unlike the ``auc_norm`` of Dufva et al. (area under % viability over linear E:T, high =
    resistant), high values here mean *sensitive*, and the log2 axis weighs every doubling of
    the E:T ratio equally.

    Parameters
    ----------
    viability_by_ratio : Mapping[float, float] or DataFrame
        Either ``{ratio: % viability}`` for one sample, or a frame of shape
        (n_samples, n_columns) whose viability columns are named ``viability_et_<ratio>`` or
        by the ratio itself; other columns are ignored.

    Returns
    -------
    float or Series of shape (n_samples,)
        The AUC (a Series named ``killing_auc`` for a frame; NaN for rows with a missing
        viability).

    Raises
    ------
    LabelError
        Fewer than two distinct positive ratios, or non-numeric viability.
    """
    if isinstance(viability_by_ratio, pd.DataFrame):
        ratios, values = _viability_matrix(viability_by_ratio, minimum=2)
        auc = pd.Series(
            _auc_from_matrix(ratios, values), index=viability_by_ratio.index, name="killing_auc"
        )
        missing = int(auc.isna().sum())
        if missing:
            logger.warning(
                "killing AUC is undefined for %d sample(s) with a missing ratio", missing
            )
        return auc
    ratios, values = _pairs(viability_by_ratio, minimum=2)
    return float(_auc_from_matrix(ratios, values)[0])


def _pairs(
    viability_by_ratio: Mapping[float, float], minimum: int
) -> tuple[np.ndarray, np.ndarray]:
    """Sorted ratios (n,) and viabilities (1, n) of one sample."""
    try:
        pairs = sorted((float(r), float(v)) for r, v in viability_by_ratio.items())
    except (TypeError, ValueError) as exc:
        raise LabelError(f"an AUC needs numeric ratios and viabilities: {exc}") from None
    ratios = np.array([r for r, _ in pairs])
    _check_ratios(ratios, minimum)
    return ratios, np.array([[v for _, v in pairs]])


def _viability_matrix(frame: pd.DataFrame, minimum: int) -> tuple[np.ndarray, np.ndarray]:
    """Ratios (n_ratios,) and viabilities (n_samples, n_ratios) of a frame's viability columns."""
    columns = viability_columns(frame)
    ratios = np.array(list(columns), dtype=float)
    _check_ratios(ratios, minimum)
    try:
        values = frame[list(columns.values())].to_numpy(dtype=float)
    except (TypeError, ValueError) as exc:
        raise LabelError(f"viability columns must be numeric: {exc}") from None
    return ratios, values


def _check_ratios(ratios: np.ndarray, minimum: int) -> None:
    if len(np.unique(ratios)) != len(ratios) or len(ratios) < minimum or np.any(ratios <= 0):
        need = "two distinct positive" if minimum > 1 else "distinct positive"
        raise LabelError(
            f"an AUC needs at least {need} E:T ratios, got {[format_ratio(r) for r in ratios]}"
        )


# ---------------------------------------------------------------------------------------------
# File reading
# ---------------------------------------------------------------------------------------------


def _format_suffix(path: Path) -> str:
    """Lower-case suffix that names the table format, looking past a compression suffix."""
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes and suffixes[-1] in _COMPRESSION_SUFFIXES:
        suffixes = suffixes[:-1]
    return suffixes[-1] if suffixes else ""


def _sniff_separator(path: Path) -> str:
    """Delimiter of a text table (tab, comma or semicolon), from its first lines."""
    try:
        with path.open(encoding="utf-8", errors="replace", newline="") as handle:
            sample = handle.read(65536)
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror}") from exc
    try:
        return csv.Sniffer().sniff(sample, delimiters="\t,;").delimiter
    except csv.Error:
        return "\t" if "\t" in sample.partition("\n")[0] else ","


def _separator(path: Path) -> str:
    """Delimiter chosen by extension; sniffed for uncompressed ``.txt``, tab if compressed."""
    suffix = _format_suffix(path)
    if suffix in _LABEL_SEPARATORS:
        return _LABEL_SEPARATORS[suffix]
    if suffix in _SNIFFED_SUFFIXES:
        compressed = suffix != path.suffix.lower()
        return "\t" if compressed else _sniff_separator(path)
    raise LabelError(
        f"{path}: cannot tell the table format from the extension {suffix or '(none)'}; "
        "use .csv, .tsv or .txt"
    )


def _read_table(
    path: Path,
    sep: str,
    error: type[InputError],
    dtype: Mapping[str, str] | None = None,
    nrows: int | None = None,
) -> pd.DataFrame:
    """Read a delimited file, turning I/O and parser failures into ``error``."""
    try:
        return pd.read_csv(path, sep=sep, dtype=dtype, low_memory=False, nrows=nrows)
    except FileNotFoundError:
        raise error(f"{path}: no such file") from None
    except OSError as exc:
        raise error(f"cannot read {path}: {exc.strerror or exc}") from exc
    except pd.errors.EmptyDataError:
        raise error(f"{path}: the file is empty") from None
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise error(f"{path}: not a valid delimited table: {exc}") from None


def _listed(items: list[str]) -> str:
    shown = ", ".join(repr(i) for i in items[:_MAX_LISTED])
    more = len(items) - _MAX_LISTED
    return f"{shown} and {more} more" if more > 0 else shown


def _duplicates(ids: pd.Index) -> str:
    return _listed(ids[ids.duplicated()].unique().tolist())


def _line(position: int) -> int:
    """File line number of data row ``position`` (0-based) under a one-line header."""
    return position + 2


# ---------------------------------------------------------------------------------------------
# DepMap expression
# ---------------------------------------------------------------------------------------------


def _depmap_id_column(frame: pd.DataFrame, path: Path) -> str:
    for name in _DEPMAP_ID_COLUMNS:
        if name in frame.columns:
            return name
    if frame.shape[1] == 0:
        raise ExpressionFormatError(f"{path}: no columns")
    return str(frame.columns[0])


def _default_entries(frame: pd.DataFrame) -> pd.DataFrame:
    """Keep only the default sequencing entry of each model, when the file says which."""
    if "IsDefaultEntryForModel" not in frame.columns:
        return frame
    flag = frame["IsDefaultEntryForModel"].astype(str).str.strip().str.lower()
    keep = flag.isin({"yes", "true", "1"})
    logger.info("DepMap: kept %d default entries of %d rows", int(keep.sum()), len(frame))
    return frame.loc[keep]


def _depmap_ids(values: pd.Series, column: str, path: Path) -> pd.Index:
    ids = values.astype("string").str.strip()
    bad = ~ids.fillna("").str.match(_DEPMAP_ID.pattern)
    if bad.any():
        position = int(np.flatnonzero(bad.to_numpy())[0])
        raise LabelError(
            f"{path}: column {column!r} must hold DepMap model ids (ACH-000001); line "
            f"{_line(position)} has {values.iloc[position]!r}"
        )
    index = pd.Index(ids.astype(str).to_numpy(dtype=object), name="sample_id")
    if index.has_duplicates:
        raise ExpressionFormatError(f"{path}: duplicated model ids {_duplicates(index)}")
    return index


def _check_depmap_genes(frame: pd.DataFrame, path: Path) -> None:
    if frame.shape[1] == 0:
        raise ExpressionFormatError(f"{path}: no gene columns")
    bad = [str(c) for c in frame.columns if not _DEPMAP_GENE.match(str(c))]
    if bad:
        raise ExpressionFormatError(
            f"{path}: DepMap gene columns must be named 'SYMBOL (ENTREZ)', e.g. 'TSPAN6 (7105)';"
            f" found {_listed(bad)}"
        )
    for column, dtype in frame.dtypes.items():
        if not pd.api.types.is_numeric_dtype(dtype):
            series = frame[column]
            numbers = pd.to_numeric(series, errors="coerce")
            position = int(np.flatnonzero((numbers.isna() & series.notna()).to_numpy())[0])
            raise ExpressionFormatError(
                f"{path}: column {column!r} line {_line(position)} is not a number: "
                f"{series.iloc[position]!r}"
            )
    minimum = frame.min(axis=0)
    if (minimum < 0).any():
        column = str(minimum.idxmin())
        raise ScaleError(
            f"{path}: column {column!r} has negative values ({minimum[column]:g}); DepMap "
            "expression is log2(TPM + 1) and cannot be negative"
        )


def read_depmap_expression(path: str | Path) -> pd.DataFrame:
    """Read a DepMap/CCLE log2(TPM + 1) expression matrix.

    Parameters
    ----------
    path : str or Path
        ``OmicsExpressionProteinCodingGenesTPMLogp1.csv``-style CSV: the first column
        (unnamed, ``ModelID`` or ``DepMap_ID``) holds ``ACH-`` ids, the other columns are named
        ``SYMBOL (ENTREZ)``. Known metadata columns (``SequencingID``,
        ``IsDefaultEntryForModel``...) are dropped after keeping each model's default entry.

    Returns
    -------
    DataFrame of shape (n_models, n_genes)
        log2(TPM + 1) values; index ``sample_id`` (ACH ids), columns as written in the file
        (harmonize them with :mod:`nkpredict.data.identifiers`).

    Raises
    ------
    LabelError
        The id column does not hold ``ACH-`` ids.
    ExpressionFormatError
        Gene columns not in ``SYMBOL (ENTREZ)`` form, non-numeric values, duplicated ids.
    ScaleError
        Negative values.
    """
    path = Path(path)
    frame = _read_table(path, ",", ExpressionFormatError)
    id_column = _depmap_id_column(frame, path)
    frame = _default_entries(frame)
    if frame.empty:
        raise ExpressionFormatError(f"{path}: no expression rows")
    index = _depmap_ids(frame[id_column], id_column, path)
    dropped = {id_column} | (_DEPMAP_METADATA & set(frame.columns))
    matrix = frame.drop(columns=sorted(dropped))
    matrix.index = index
    matrix.columns.name = None
    _check_depmap_genes(matrix, path)
    logger.info("DepMap expression %s: %d models x %d genes", path.name, *matrix.shape)
    return matrix


# ---------------------------------------------------------------------------------------------
# ---------------------------------------------------------------------------------------------
# Published NK screens (Dufva et al. 2023): layouts
# ---------------------------------------------------------------------------------------------

_LAYOUT_COLUMNS: dict[LabelFormat, tuple[str, ...]] = {
    "nk-prism-auc": ("DepMap_ID", "Condition", "pctviability", DUFVA_AUC_COLUMN),
    "nk-prism": _NK_PRISM_REQUIRED,
    "nk-prism-replicates": ("Condition", "Biological_replicate"),
    "dufva-s5a": ("Cell_line", "AUC_normalized"),
    "dufva-s5b": ("Cell_line", "Effector_target_ratio"),
}
"""Columns that identify each published layout (checked in this order)."""


def is_nk_prism_table(frame: pd.DataFrame) -> bool:
    """Whether ``frame`` is an NK PRISM long table (``DepMap_ID``, ``Condition``,
    ``pctviability`` columns)."""
    return all(column in frame.columns for column in _NK_PRISM_REQUIRED)


def detect_label_format(columns: Iterable[object]) -> LabelFormat:
    """The layout of a labels file from its header (``table`` when no published one fits).

    Parameters
    ----------
    columns : iterable
        The column names of the file.

    Returns
    -------
    {"table", "nk-prism", "nk-prism-auc", "nk-prism-replicates", "dufva-s5a", "dufva-s5b"}
    """
    present = {str(c) for c in columns}
    for layout, required in _LAYOUT_COLUMNS.items():
        if present.issuperset(required):
            return layout
    return "table"


def label_format(path: str | Path, fmt: LabelFormat = "auto") -> LabelFormat:
    """The layout of the labels file at ``path``: ``fmt`` itself, or detected from its header.

    Raises
    ------
    LabelError
        Unreadable file, or an unknown ``fmt``.
    """
    fmt = check_choice(fmt, LABEL_FORMATS, "--labels-format")
    if fmt != "auto":
        return fmt
    path = Path(path)
    return detect_label_format(_read_table(path, _separator(path), LabelError, nrows=0).columns)


def is_nk_prism_file(path: str | Path) -> bool:
    """Whether the label file at ``path`` is a published NK screen layout (header only)."""
    return label_format(path) in SCREEN_FORMATS


def auc_column(fmt: LabelFormat, auc: AucMethod | None = None) -> str | None:
    """The readout column a labels table of layout ``fmt`` gets with ``--auc auc``.

    Tables from the paper default to ``dufva2023`` (``auc_norm``); a generic table has an AUC
    column only when ``auc`` is given (it needs ``viability_et_<r>`` columns).
    """
    if auc is None:
        return AUC_COLUMNS["dufva2023"] if fmt in SCREEN_FORMATS else None
    return AUC_COLUMNS[check_choice(auc, AUC_METHODS, "--auc")]


def _describe_row(frame: pd.DataFrame, position: int, source: str) -> str:
    row = frame.iloc[position]
    who = [f"{c}={row[c]!r}" for c in ("cell_line", "Cell_line", "DepMap_ID") if c in frame]
    return f"{source} line {_line(position)}" + (f" ({', '.join(who)})" if who else "")


def _ratios_of(frame: pd.DataFrame, column: str, source: str) -> np.ndarray:
    """E:T ratio of each row's ``column`` (NaN for the control)."""
    ratios = np.empty(len(frame))
    for position, condition in enumerate(frame[column].to_numpy()):
        try:
            ratio = parse_condition(condition)
        except ValueError as exc:
            raise LabelError(f"{_describe_row(frame, position, source)}: {exc}") from None
        ratios[position] = np.nan if ratio is None else ratio
    return ratios


def _numbers(frame: pd.DataFrame, column: str, source: str) -> np.ndarray:
    """``column`` as floats; empty cells are NaN, anything else that is not a number fails."""
    raw = frame[column]
    values = pd.to_numeric(raw, errors="coerce")
    bad = values.isna() & raw.notna() & (raw.astype(str).str.strip() != "")
    if bad.any():
        position = int(np.flatnonzero(bad.to_numpy())[0])
        raise LabelError(
            f"{_describe_row(frame, position, source)}: {column} "
            f"{raw.iloc[position]!r} is not a number"
        )
    return values.to_numpy(dtype=float)


def _text(values: pd.Series) -> pd.Series:
    """Stripped strings, ``<NA>`` for empty cells."""
    text = values.astype("string").str.strip()
    return text.mask(text == "")


def _require(frame: pd.DataFrame, columns: Sequence[str], layout: str, source: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise LabelError(
            f"{source}: a {layout} table needs columns {list(columns)}; missing {missing}; "
            f"available {list(map(str, frame.columns))}"
        )


def _long_rows(
    frame: pd.DataFrame,
    line: pd.Series,
    ratio: np.ndarray,
    viability: np.ndarray,
    source: str,
) -> pd.DataFrame:
    """Long rows ``line, ratio, viability`` plus the frame's own columns; rows without a line
    or a value dropped (with a note)."""
    rows = frame.assign(
        **{_LINE: line.to_numpy(), _RATIO: ratio, _VIABILITY: viability}
    ).reset_index(drop=True)
    no_line = rows[_LINE].isna()
    if no_line.any():
        names = (
            sorted(set(rows.loc[no_line, "cell_line"].dropna().astype(str)))
            if ("cell_line" in rows)
            else []
        )
        logger.warning(
            "%s: dropped %d row(s) without a line id%s",
            source,
            int(no_line.sum()),
            f" (cell lines {_listed(names)})" if names else "",
        )
    no_value = rows[_VIABILITY].isna() & ~no_line
    if no_value.any():
        logger.info("%s: dropped %d row(s) with a missing viability", source, no_value.sum())
    return rows.loc[~(no_line | no_value)]


def _relative_to_control(rows: pd.DataFrame, source: str) -> pd.DataFrame:
    """Rescale each line's viability so that its control mean is 100 % (lines without control
    rows are taken as normalised already); values above 100 % are kept."""
    control = rows.loc[rows[_RATIO].isna()].groupby(_LINE)[_VIABILITY].mean()
    if (control <= 0).any():
        bad = control.index[control <= 0].tolist()
        raise LabelError(f"{source}: control viability must be positive; not for {_listed(bad)}")
    scale = rows[_LINE].map(100.0 / control).fillna(1.0).to_numpy()
    if not np.allclose(scale, 1.0):
        logger.info("%s: viability rescaled so that the control = 100 %%", source)
    return rows.assign(**{_VIABILITY: rows[_VIABILITY].to_numpy() * scale})


def _per_line(rows: pd.DataFrame, columns: Sequence[str], source: str) -> pd.DataFrame:
    """The ``columns`` of the long ``rows`` that hold one value per line (first value kept);
    columns that vary within a line are set aside with a note."""
    kept: dict[str, pd.Series] = {}
    varying = []
    grouped = rows.groupby(_LINE, sort=False)
    for column in columns:
        if (grouped[column].nunique(dropna=False) > 1).any():
            varying.append(str(column))
        else:
            kept[str(column)] = grouped[column].first()
    if varying:
        logger.info("%s: columns %s vary within a line; not carried", source, _listed(varying))
    return pd.DataFrame(kept, index=pd.Index(rows[_LINE].unique(), name=_LINE))


def _summarise(rows: pd.DataFrame, extras: Sequence[str], source: str) -> pd.DataFrame:
    """One row per line: the per-line columns and the mean % viability at each E:T ratio."""
    rows = _relative_to_control(rows, source)
    if rows.empty:
        raise LabelError(f"{source}: no viability measurements")
    treated = rows.loc[rows[_RATIO].notna()]
    if treated.empty:
        raise LabelError(f"{source}: no NK co-culture conditions (only controls)")
    wide = treated.pivot_table(
        index=_LINE, columns=_RATIO, values=_VIABILITY, aggfunc="mean", sort=True
    )
    wide.columns = [viability_column(r) for r in wide.columns]
    lines = _per_line(rows, extras, source)
    untreated = len(lines) - len(wide)
    if untreated:
        logger.warning("%s: dropped %d line(s) with only control rows", source, untreated)
    table = lines.join(wide, how="inner")
    logger.info(
        "%s: %d lines, E:T ratios %s",
        source,
        len(table),
        ", ".join(format_ratio(r) for r in viability_columns(wide)),
    )
    return table


def _prism_long(frame: pd.DataFrame, source: str) -> pd.DataFrame:
    """Layouts 1 and 2: ``cell_line, DepMap_ID, Subtype, Condition, pctviability[, auc,
    auc_norm]``, one row per well or replicate."""
    _require(frame, _NK_PRISM_REQUIRED, "NK PRISM", source)
    frame = frame.reset_index(drop=True)
    ids = _text(frame["DepMap_ID"])
    frame = frame.assign(DepMap_ID=ids)
    if "cell_line" not in frame:
        frame = frame.assign(cell_line=ids)
    rows = _long_rows(
        frame,
        ids,
        _ratios_of(frame, "Condition", source),
        _numbers(frame, "pctviability", source),
        source,
    )
    for column in (DUFVA_AUC_COLUMN, "auc"):
        if column in rows:
            rows[column] = _numbers(rows, column, source)
    extras = [c for c in rows.columns if c not in {*_LONG, "Condition", "pctviability"}]
    return _summarise(rows, extras, source)


def _replicates_wide(frame: pd.DataFrame, source: str) -> pd.DataFrame:
    """Layout 3: ``Condition, Biological_replicate``, then one column per line named CCLE-style
    (``<NAME>_HAEMATOPOIETIC_AND_LYMPHOID_TISSUE``) holding its % viability."""
    _require(frame, ("Condition", "Biological_replicate"), "biological-replicates", source)
    frame = frame.reset_index(drop=True)
    lines = [c for c in frame.columns if c not in ("Condition", "Biological_replicate")]
    if not lines:
        raise LabelError(f"{source}: no cell-line columns after Condition, Biological_replicate")
    ratios = _ratios_of(frame, "Condition", source)
    parts = []
    for column in lines:
        values = _numbers(frame, column, source)
        name = str(column)
        part = pd.DataFrame(
            {
                "CCLE_Name": name,
                "cell_line": ccle_cell_line(name),
                "Biological_replicate": frame["Biological_replicate"].to_numpy(),
            }
        )
        parts.append(_long_rows(part, pd.Series([name] * len(frame)), ratios, values, source))
    rows = pd.concat(parts, ignore_index=True)
    return _summarise(rows, ["CCLE_Name", "cell_line"], source)


def _s5b_long(frame: pd.DataFrame, source: str) -> pd.DataFrame:
    """Layout 5 (table S5B): ``Cell_line, Effector_target_ratio, Replicate,
    Percent_viability_replicate, Percent_viability_mean``."""
    _require(frame, ("Cell_line", "Effector_target_ratio"), "S5B", source)
    value = next(
        (c for c in ("Percent_viability_replicate", "Percent_viability_mean") if c in frame), None
    )
    if value is None:
        raise LabelError(
            f"{source}: an S5B table needs Percent_viability_replicate or "
            f"Percent_viability_mean; available {list(map(str, frame.columns))}"
        )
    frame = frame.reset_index(drop=True)
    names = _text(frame["Cell_line"])
    frame = frame.assign(cell_line=names)
    rows = _long_rows(
        frame,
        names,
        _ratios_of(frame, "Effector_target_ratio", source),
        _numbers(frame, value, source),
        source,
    )
    skip = {*_LONG, "Cell_line", "Effector_target_ratio", "Replicate"}
    skip |= {"Percent_viability_replicate", "Percent_viability_mean"}
    return _summarise(rows, [c for c in rows.columns if c not in skip], source)


def _s5a_lines(frame: pd.DataFrame, source: str) -> pd.DataFrame:
    """Layout 4 (table S5A): one row per line with ``Cell_line``, ``AUC_normalized``,
    ``DepMap_ID``, ``CCLE_Name``... The paper's AUC is kept as it is, as ``auc_norm``."""
    _require(frame, ("Cell_line", "AUC_normalized"), "S5A", source)
    frame = frame.reset_index(drop=True)
    names = _text(frame["Cell_line"])
    ids = _text(frame["DepMap_ID"]) if "DepMap_ID" in frame else pd.Series(pd.NA, index=frame.index)
    table = frame.drop(columns=["Cell_line", "AUC_normalized"]).assign(
        DepMap_ID=ids,
        cell_line=names,
        **{DUFVA_AUC_COLUMN: _numbers(frame, "AUC_normalized", source)},
    )
    table.index = pd.Index(ids.fillna(names).to_numpy(dtype=object), name=_LINE)
    if table.index.hasnans:
        position = int(np.flatnonzero(table.index.isna())[0])
        raise LabelError(f"{source} line {_line(position)}: no Cell_line or DepMap_ID")
    return table


# ---------------------------------------------------------------------------------------------
# Published NK screens: the per-line table
# ---------------------------------------------------------------------------------------------


def ccle_cell_line(name: str) -> str:
    """Cell-line name of a CCLE-style name: ``K562_HAEMATOPOIETIC_AND_LYMPHOID_TISSUE`` ->
    ``K562`` (other names are returned as they are)."""
    text = str(name).strip()
    if text.upper().endswith(CCLE_TISSUE_SUFFIX):
        return text[: -len(CCLE_TISSUE_SUFFIX)]
    return text


def stripped_name(name: object) -> str:
    """A cell-line name as Dufva et al. match them: the CCLE tissue suffix removed, upper case,
    punctuation and spaces removed (``"MM.1S"`` and ``"MM1S"`` -> ``"MM1S"``)."""
    return re.sub(r"[^0-9A-Z]", "", ccle_cell_line(str(name)).upper())


def _with_lineage(table: pd.DataFrame, source: str) -> pd.DataFrame:
    """Add ``lineage`` from ``Cancer_type_main`` or ``Subtype`` when the table has no lineage."""
    if LINEAGE_COLUMN in table:
        return table
    origin = next((c for c in LINEAGE_SOURCES if c in table), None)
    if origin is None:
        return table.assign(**{LINEAGE_COLUMN: pd.Series(pd.NA, index=table.index, dtype=object)})
    logger.info("%s: lineage taken from %s", source, origin)
    return table.assign(**{LINEAGE_COLUMN: table[origin]})


def dufva_auc(
    viability_by_ratio: Mapping[float, float] | pd.DataFrame,
) -> float | pd.Series:
    """The normalised AUC of Dufva et al. 2023 (``auc_norm``; high = resistant).

    The trapezoid area under % viability over the *linear* E:T axis, the no-NK control taken as
    the point (0, 100 %), divided by the largest E:T times 100. With ratios
    :math:`0 = r_0 < r_1 < \\dots < r_m`, :math:`v_0 = 100` and % viability :math:`v_j`,

    .. math::

        \\mathrm{auc\\_norm} = \\frac{1}{100\\, r_m} \\sum_{j=0}^{m-1} (r_{j+1} - r_j)
        \\frac{v_j + v_{j+1}}{2}

    (``auc / 500`` for the paper's E:T 0.625, 1.25, 2.5 and 5). Viability is not clipped:
    above 100 % (more growth than the control) gives values above 1.

    Parameters
    ----------
    viability_by_ratio : Mapping[float, float] or DataFrame
        ``{ratio: % viability}`` for one line, or a frame (n_lines, n_columns) whose viability
        columns are named ``viability_et_<ratio>`` (other columns are ignored).

    Returns
    -------
    float or Series of shape (n_lines,)
        A Series named ``auc_norm`` for a frame; NaN where a viability is missing.

    Raises
    ------
    LabelError
        No positive ratio, a repeated ratio, or non-numeric viability.
    """
    if isinstance(viability_by_ratio, pd.DataFrame):
        ratios, values = _viability_matrix(viability_by_ratio, minimum=1)
        auc = _dufva_from_matrix(ratios, values)
        return pd.Series(auc, index=viability_by_ratio.index, name=DUFVA_AUC_COLUMN)
    ratios, values = _pairs(viability_by_ratio, minimum=1)
    return float(_dufva_from_matrix(ratios, values)[0])


def _dufva_from_matrix(ratios: np.ndarray, viability: np.ndarray) -> np.ndarray:
    """:func:`dufva_auc` of ``viability`` (n_lines, n_ratios) at increasing ``ratios``."""
    x = np.concatenate([[0.0], ratios])
    y = np.hstack([np.full((viability.shape[0], 1), 100.0), viability])
    area = (np.diff(x) * (y[:, :-1] + y[:, 1:]) / 2.0).sum(axis=1)
    return area / (ratios[-1] * 100.0)


def _add_auc(table: pd.DataFrame, method: AucMethod | None, source: str) -> pd.DataFrame:
    """Add the AUC column of ``method`` (``None``: none) computed from the viabilities.

    A table that carries the paper's ``auc_norm`` keeps it; when its viabilities are there too
    it is checked against a recomputation (lines that differ are named in a warning).
    """
    has_viability = bool(viability_columns(table))
    if DUFVA_AUC_COLUMN in table and has_viability:
        recomputed = dufva_auc(table)
        differ = (recomputed - table[DUFVA_AUC_COLUMN]).abs() > AUC_TOLERANCE
        if differ.any():
            logger.warning(
                "%s: the file's auc_norm differs from a recomputation (viabilities, linear "
                "E:T, control at E:T 0) for %d line(s): %s; kept the file's values",
                source,
                int(differ.sum()),
                _listed([str(i) for i in table.index[differ]]),
            )
        else:
            logger.info("%s: the file's auc_norm matches its viabilities", source)
    if method is None:
        return table
    column = AUC_COLUMNS[method]
    if column in table:
        return table
    if not has_viability:
        raise LabelError(
            f"{source}: --auc {method} needs % viability per E:T ratio; the file has none "
            f"(columns: {_listed(list(map(str, table.columns)))})"
        )
    if method == "dufva2023":
        return table.assign(**{column: dufva_auc(table)})
    if len(viability_columns(table)) < 2:
        logger.warning("%s: one E:T ratio only; the killing AUC is undefined", source)
        return table.assign(**{column: np.nan})
    return table.assign(**{column: killing_auc(table)})


def _ordered(table: pd.DataFrame) -> pd.DataFrame:
    """Columns in the documented order: line identity, viabilities, AUCs, everything else."""
    first = [c for c in (*LINE_COLUMNS, "CCLE_Name") if c in table]
    viability = list(viability_columns(table).values())
    aucs = [c for c in AUC_COLUMNS.values() if c in table]
    rest = [c for c in table.columns if c not in {*first, *viability, *aucs}]
    return table[[*first, *viability, *aucs, *rest]]


_SCREEN_READERS: dict[str, Callable[[pd.DataFrame, str], pd.DataFrame]] = {
    "nk-prism": _prism_long,
    "nk-prism-auc": _prism_long,
    "nk-prism-replicates": _replicates_wide,
    "dufva-s5a": _s5a_lines,
    "dufva-s5b": _s5b_long,
}


def screen_table(
    frame: pd.DataFrame, fmt: LabelFormat, auc: AucMethod | None, source: str
) -> pd.DataFrame:
    """One row per line from a published NK-screen table already read into ``frame``.

    Parameters
    ----------
    frame : DataFrame
        The file as read (every column as stored).
    fmt : LabelFormat
        One of the published layouts (not ``auto`` or ``table``).
    auc : {"dufva2023", "log2-killing"} or None
        The AUC to compute from the viabilities; ``None`` means ``dufva2023``.
    source : str
        The file, for messages.

    Returns
    -------
    DataFrame of shape (n_lines, n_columns)
        Index ``line`` (the ``DepMap_ID``, else the CCLE or cell-line name); columns
        ``DepMap_ID``, ``cell_line``, ``lineage`` (from ``Cancer_type_main`` or ``Subtype``;
        empty when the file has neither), ``CCLE_Name`` when known, ``viability_et_<r>`` per
        E:T ratio, the AUC column(s), then every other column that holds one value per line.
    """
    reader = _SCREEN_READERS.get(fmt)
    if reader is None:
        raise LabelError(f"{source}: {fmt!r} is not a published NK-screen layout")
    table = reader(frame, source)
    for column in ("DepMap_ID", "cell_line"):
        if column not in table:
            table[column] = pd.Series(pd.NA, index=table.index, dtype=object)
    table = _with_lineage(table, source)
    table = _add_auc(table, auc or "dufva2023", source)
    table.index = pd.Index(table.index.astype(str), name=LINE_INDEX)
    if table.index.has_duplicates:
        raise LabelError(f"{source}: lines listed twice: {_duplicates(table.index)}")
    return _ordered(table)


def read_nk_prism(path: str | Path, auc: AucMethod = "dufva2023") -> pd.DataFrame:
    """Read an NK PRISM long table (Dufva et al. 2023, layouts 1 and 2) into one row per line.

    Parameters
    ----------
    path : str or Path
        Tab- or comma-separated table with ``cell_line``, ``DepMap_ID``, ``Subtype``,
        ``Condition`` (``CTRL``, ``D1_NK_<E:T>`` or ``D1_<E:T>``) and ``pctviability``
        (normalised to the control, not clipped), optionally ``auc`` and ``auc_norm``.
        Replicate rows are averaged; rows with an empty ``pctviability`` are dropped.
    auc : {"dufva2023", "log2-killing"}
        The AUC computed from the viabilities (``auc_norm`` or ``killing_auc``); a file's own
        ``auc_norm`` is kept as it is (and checked against a recomputation).

    Returns
    -------
    DataFrame of shape (n_lines, n_columns)
        As :func:`screen_table`; viabilities rescaled so that the CTRL mean is 100.

    Raises
    ------
    LabelError
        Missing columns, an unparseable ``Condition`` or a non-numeric ``pctviability``
        (the message names the file line).
    """
    path = Path(path)
    frame = _read_table(path, _separator(path), LabelError, dtype={"Condition": "string"})
    return screen_table(frame, detect_label_format(frame.columns), auc, str(path))


# ---------------------------------------------------------------------------------------------
# Any labels file, and joining to expression
# ---------------------------------------------------------------------------------------------


def _generic_labels(
    frame: pd.DataFrame, id_column: str, auc: AucMethod | None, path: Path
) -> pd.DataFrame:
    if id_column not in frame.columns:
        raise LabelError(
            f"{path}: no id column {id_column!r}; available columns: "
            f"{', '.join(map(str, frame.columns))}"
        )
    ids = frame[id_column].astype("string").str.strip()
    empty = ids.isna() | (ids == "")
    if empty.any():
        position = int(np.flatnonzero(empty.to_numpy())[0])
        raise LabelError(f"{path}: line {_line(position)} has an empty {id_column!r}")
    index = pd.Index(ids.astype(str).to_numpy(dtype=object), name=id_column)
    if index.has_duplicates:
        raise LabelError(f"{path}: duplicated ids in {id_column!r}: {_duplicates(index)}")
    labels = frame.drop(columns=id_column)
    labels.index = index
    if any(c in labels for c in LINEAGE_SOURCES):
        labels = _with_lineage(labels, str(path))
    return _add_auc(labels, auc, str(path))


def read_labels(
    path: str | Path,
    id_column: str = "sample_id",
    fmt: LabelFormat = "auto",
    auc: AucMethod | None = None,
) -> pd.DataFrame:
    """Read a labels file: a generic table or any published NK-screen layout.

    This is the one reader of labels: ``nkpredict labels`` writes what it returns and
    ``nkpredict train --labels`` trains on it.

    Parameters
    ----------
    path : str or Path
        ``.csv`` (comma), ``.tsv``/``.tab`` (tab) or ``.txt`` (delimiter sniffed), optionally
        compressed (``.csv.gz``).
    id_column : str
        Id column of a generic table (published layouts carry their own ids).
    fmt : LabelFormat
        The layout; ``auto`` detects it from the header (:func:`detect_label_format`).
    auc : {"dufva2023", "log2-killing"}, optional
        The AUC to compute from % viabilities. Published layouts default to ``dufva2023``
        (``auc_norm``); a generic table gets one only when asked (from its
        ``viability_et_<r>`` columns).

    Returns
    -------
    DataFrame of shape (n_lines, n_columns)
        Generic tables: indexed by ``id_column`` (ids as strings), columns as in the file
        (plus ``lineage`` from ``Subtype``/``Cancer_type_main`` and the AUC when asked).
        Published layouts: see :func:`screen_table`.

    Raises
    ------
    LabelError
        Unreadable file, missing id column (the available columns are listed), empty or
        duplicated ids, unreadable measurements (the file line is named).
    """
    path = Path(path)
    fmt = check_choice(fmt, LABEL_FORMATS, "--labels-format")
    if auc is not None:
        check_choice(auc, AUC_METHODS, "--auc")
    dtype = {id_column: "string", "Condition": "string", "Effector_target_ratio": "string"}
    frame = _read_table(path, _separator(path), LabelError, dtype=dtype)
    layout = detect_label_format(frame.columns) if fmt == "auto" else fmt
    if layout == "table":
        labels = _generic_labels(frame, id_column, auc, path)
    else:
        logger.info("%s: published layout %s; one row per line", path.name, layout)
        labels = screen_table(frame, layout, auc, str(path))
    logger.info("labels %s: %d rows, columns %s", path.name, len(labels), list(labels))
    return labels


def _line_keys(labels: pd.DataFrame) -> dict[str, pd.Series]:
    """Ways to name each label row, by how expression files are indexed."""
    keys = {"id": pd.Series(labels.index.astype(str), index=labels.index)}
    for column in ("DepMap_ID", "CCLE_Name"):
        if column in labels:
            keys[column] = _text(labels[column]).set_axis(labels.index)
    if "cell_line" in labels:
        names = _text(labels["cell_line"]).set_axis(labels.index)
        keys["stripped cell-line name"] = names.map(stripped_name, na_action="ignore")
    return keys


def _best_key(expression_ids: pd.Index, labels: pd.DataFrame) -> tuple[str, pd.Series]:
    """The key of :func:`_line_keys` that matches most expression ids (ties: first)."""
    stripped = pd.Index([stripped_name(i) for i in expression_ids])
    best: tuple[str, pd.Series] | None = None
    best_count = 0
    for name, key in _line_keys(labels).items():
        wanted = stripped if name == "stripped cell-line name" else expression_ids
        count = int(wanted.isin(key.dropna()).sum())
        if count > best_count:
            best, best_count = (name, key), count
    if best is None:
        raise LabelError(
            "no sample id is shared by expression and labels (expression e.g. "
            f"{_listed(expression_ids.tolist())}; labels e.g. "
            f"{_listed(labels.index.astype(str).tolist())})"
        )
    return best


def join_labels(
    expression: pd.DataFrame, labels: pd.DataFrame
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Keep the samples present in both tables, in expression order.

    Label rows are matched by their index, their ``DepMap_ID``, their ``CCLE_Name`` or their
    stripped cell-line name (:func:`stripped_name` of both sides), whichever matches most
    expression samples. Label rows left without expression are listed by name.

    Parameters
    ----------
    expression : DataFrame of shape (n_samples, n_genes)
        Indexed by sample id.
    labels : DataFrame of shape (n_labelled, n_columns)
        As :func:`read_labels` returns it. Ids are compared as strings.

    Returns
    -------
    tuple of DataFrames
        ``(expression, labels)`` restricted to the shared samples, both in the expression's
        order and with the expression's index.

    Raises
    ------
    ExpressionFormatError
        Duplicated expression sample ids.
    LabelError
        Duplicated label ids (among those that match), or no sample in common.
    """
    expression_ids = expression.index.astype(str)
    if expression_ids.has_duplicates:
        raise ExpressionFormatError(
            f"duplicated expression sample ids: {_duplicates(expression_ids)}"
        )
    name, key = _best_key(expression_ids, labels)
    key = key.dropna()
    wanted = (
        pd.Index([stripped_name(i) for i in expression_ids])
        if name == "stripped cell-line name"
        else expression_ids
    )
    repeated = key[key.duplicated(keep=False) & key.isin(wanted)]
    if len(repeated):
        raise LabelError(f"duplicated label ids ({name}): {_listed(sorted(set(repeated)))}")
    position = pd.Series(np.arange(len(key)), index=pd.Index(key.to_numpy(dtype=object)))
    shared = wanted.isin(key)
    kept = expression.loc[shared]
    rows = position.loc[wanted[shared]].to_numpy()
    joined = labels.loc[key.index[rows]].copy()
    joined.index = kept.index
    unmatched = labels.index.difference(key.index[rows], sort=False)
    n_expression = len(expression) - len(kept)
    log = logger.warning if n_expression or len(unmatched) else logger.info
    log(
        "joined %d samples by %s; dropped %d expression sample(s) without labels and %d label "
        "row(s) without expression%s",
        len(kept),
        name,
        n_expression,
        len(unmatched),
        f" ({_listed(_names(labels.loc[unmatched]))})" if len(unmatched) else "",
    )
    return kept, joined


def _names(labels: pd.DataFrame) -> list[str]:
    """The label rows by name: their ``cell_line`` where known, else their id."""
    if "cell_line" in labels:
        return (
            _text(labels["cell_line"])
            .fillna(pd.Series(labels.index, index=labels.index).astype(str))
            .astype(str)
            .tolist()
        )
    return labels.index.astype(str).tolist()
