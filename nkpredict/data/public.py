"""Readers for the public file formats of NK-killing data and cell-line expression.

Three formats are understood:

DepMap / CCLE expression
    ``OmicsExpressionProteinCodingGenesTPMLogp1.csv``-style matrices: one row per model, the
    first column (unnamed, ``ModelID`` or ``DepMap_ID``) holds ``ACH-`` identifiers and every
    other column is named ``SYMBOL (ENTREZ)``; values are ``log2(TPM + 1)``. Newer releases
    that carry ``SequencingID``/``IsDefaultEntryForModel`` columns are reduced to the default
    entry of each model.
NK PRISM tables (Dufva et al. 2023, Immunity)
    Long tables with ``cell_line``, ``DepMap_ID``, ``Condition`` (``CTRL`` or ``D1_NK_<E:T>``)
    and ``pctviability``, possibly several rows per condition (replicates). They are reduced
    to one row per cell line with the mean % viability at each E:T ratio and the killing AUC.
Generic label tables
    CSV or TSV files with one row per sample and an identifier column.

The killing AUC (:func:`killing_auc`) is defined here once and used everywhere.
"""

from __future__ import annotations

import csv
import logging
import math
import re
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from nkpredict.exceptions import ExpressionFormatError, InputError, LabelError, ScaleError

logger = logging.getLogger(__name__)

__all__ = [
    "CONTROL_CONDITION",
    "NK_PRISM_COLUMNS",
    "VIABILITY_PREFIX",
    "format_ratio",
    "is_nk_prism_table",
    "join_labels",
    "killing_auc",
    "nk_condition",
    "parse_condition",
    "read_depmap_expression",
    "read_labels",
    "read_nk_prism",
    "viability_column",
    "viability_columns",
]

VIABILITY_PREFIX = "viability_et_"
CONTROL_CONDITION = "CTRL"
NK_PRISM_COLUMNS: tuple[str, ...] = ("cell_line", "DepMap_ID", "Condition", "pctviability")
_NK_PRISM_REQUIRED = ("DepMap_ID", "Condition", "pctviability")

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
        return _frame_auc(viability_by_ratio)
    try:
        pairs = sorted((float(r), float(v)) for r, v in viability_by_ratio.items())
    except (TypeError, ValueError) as exc:
        raise LabelError(f"killing AUC needs numeric ratios and viabilities: {exc}") from None
    ratios = np.array([r for r, _ in pairs])
    _check_ratios(ratios)
    values = np.array([[v for _, v in pairs]])
    return float(_auc_from_matrix(ratios, values)[0])


def _check_ratios(ratios: np.ndarray) -> None:
    if len(np.unique(ratios)) != len(ratios) or len(ratios) < 2 or np.any(ratios <= 0):
        raise LabelError(
            "killing AUC needs at least two distinct positive E:T ratios, got "
            f"{[format_ratio(r) for r in ratios]}"
        )


def _frame_auc(frame: pd.DataFrame) -> pd.Series:
    columns = viability_columns(frame)
    ratios = np.array(list(columns), dtype=float)
    _check_ratios(ratios)
    try:
        values = frame[list(columns.values())].to_numpy(dtype=float)
    except (TypeError, ValueError) as exc:
        raise LabelError(f"viability columns must be numeric: {exc}") from None
    auc = pd.Series(_auc_from_matrix(ratios, values), index=frame.index, name="killing_auc")
    missing = int(auc.isna().sum())
    if missing:
        logger.warning("killing AUC is undefined for %d sample(s) with a missing ratio", missing)
    return auc


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
# NK PRISM
# ---------------------------------------------------------------------------------------------


def is_nk_prism_table(frame: pd.DataFrame) -> bool:
    """Whether ``frame`` is an NK PRISM long table (``DepMap_ID``, ``Condition``,
    ``pctviability`` columns)."""
    return all(column in frame.columns for column in _NK_PRISM_REQUIRED)


def is_nk_prism_file(path: str | Path) -> bool:
    """Whether the label file at ``path`` is an NK PRISM long table (reads its header only)."""
    path = Path(path)
    header = _read_table(path, _separator(path), LabelError, nrows=0)
    return is_nk_prism_table(header)


def _describe_row(frame: pd.DataFrame, position: int, source: str) -> str:
    row = frame.iloc[position]
    who = f"DepMap_ID={row['DepMap_ID']!r}"
    if "cell_line" in frame.columns:
        who = f"cell_line={row['cell_line']!r}, {who}"
    return f"{source} line {_line(position)} ({who})"


def _prism_ratios(frame: pd.DataFrame, source: str) -> pd.Series:
    """E:T ratio of each row (NaN for the control)."""
    ratios = np.empty(len(frame))
    for position, condition in enumerate(frame["Condition"].to_numpy()):
        try:
            ratio = parse_condition(condition)
        except ValueError as exc:
            raise LabelError(f"{_describe_row(frame, position, source)}: {exc}") from None
        ratios[position] = np.nan if ratio is None else ratio
    return pd.Series(ratios, index=frame.index)


def _prism_viability(frame: pd.DataFrame, source: str) -> pd.Series:
    raw = frame["pctviability"]
    values = pd.to_numeric(raw, errors="coerce")
    bad = values.isna() & raw.notna() & (raw.astype(str).str.strip() != "")
    if bad.any():
        position = int(np.flatnonzero(bad.to_numpy())[0])
        raise LabelError(
            f"{_describe_row(frame, position, source)}: pctviability "
            f"{raw.iloc[position]!r} is not a number"
        )
    return values.astype(float)


def _prism_rows(frame: pd.DataFrame, source: str) -> pd.DataFrame:
    """Validated long rows: DepMap_ID, cell_line, ratio (NaN = control), viability."""
    missing = [c for c in _NK_PRISM_REQUIRED if c not in frame.columns]
    if missing:
        raise LabelError(
            f"{source}: an NK PRISM table needs columns {list(_NK_PRISM_REQUIRED)}; missing "
            f"{missing}; available {list(map(str, frame.columns))}"
        )
    frame = frame.reset_index(drop=True)
    rows = pd.DataFrame(
        {
            "DepMap_ID": frame["DepMap_ID"].astype("string").str.strip(),
            "cell_line": frame.get("cell_line", frame["DepMap_ID"]).astype("string"),
            "ratio": _prism_ratios(frame, source),
            "viability": _prism_viability(frame, source),
        }
    )
    no_id = rows["DepMap_ID"].isna() | (rows["DepMap_ID"] == "")
    if no_id.any():
        logger.warning(
            "%s: dropped %d row(s) without a DepMap_ID (cell lines %s)",
            source,
            int(no_id.sum()),
            _listed(sorted(set(rows.loc[no_id, "cell_line"].dropna().astype(str)))),
        )
    no_value = rows["viability"].isna() & ~no_id
    if no_value.any():
        logger.info("%s: dropped %d row(s) with missing pctviability", source, no_value.sum())
    return rows.loc[~(no_id | no_value)]


def _relative_to_control(rows: pd.DataFrame, source: str) -> pd.DataFrame:
    """Rescale each cell line's viability so that its control mean is 100 %."""
    control = rows.loc[rows["ratio"].isna()].groupby("DepMap_ID")["viability"].mean()
    if (control <= 0).any():
        bad = control.index[control <= 0].tolist()
        raise LabelError(f"{source}: CTRL viability must be positive; not for {_listed(bad)}")
    scale = rows["DepMap_ID"].map(100.0 / control).fillna(1.0).to_numpy()
    if not np.allclose(scale, 1.0):
        logger.info("%s: viability rescaled so that CTRL = 100 %%", source)
    return rows.assign(viability=rows["viability"].to_numpy() * scale)


def _nk_prism_from_frame(frame: pd.DataFrame, source: str) -> pd.DataFrame:
    rows = _relative_to_control(_prism_rows(frame, source), source)
    if rows.empty:
        raise LabelError(f"{source}: no NK PRISM measurements")
    treated = rows.loc[rows["ratio"].notna()]
    if treated.empty:
        raise LabelError(f"{source}: no NK co-culture conditions (only controls)")
    wide = treated.pivot_table(
        index="DepMap_ID", columns="ratio", values="viability", aggfunc="mean", sort=True
    )
    wide.columns = [viability_column(r) for r in wide.columns]
    names = rows.groupby("DepMap_ID", sort=False)["cell_line"]
    if (names.nunique() > 1).any():
        logger.warning("%s: some DepMap_IDs have several cell_line names; kept the first", source)
    result = pd.concat([names.first().rename("cell_line"), wide], axis=1, join="inner")
    untreated = rows["DepMap_ID"].nunique() - len(result)
    if untreated:
        logger.warning("%s: dropped %d cell line(s) with only CTRL rows", source, untreated)
    result.index = pd.Index(result.index.astype(str), name="DepMap_ID")
    result["cell_line"] = result["cell_line"].astype(object)
    if wide.shape[1] >= 2:
        result["killing_auc"] = killing_auc(result)
    else:
        logger.warning("%s: one E:T ratio only; the killing AUC is undefined", source)
        result["killing_auc"] = np.nan
    logger.info(
        "%s: %d cell lines, E:T ratios %s",
        source,
        len(result),
        ", ".join(format_ratio(r) for r in viability_columns(result)),
    )
    return result


def read_nk_prism(path: str | Path) -> pd.DataFrame:
    """Read an NK PRISM long table (Dufva et al. 2023) into one row per cell line.

    Parameters
    ----------
    path : str or Path
        Tab- or comma-separated table with columns ``cell_line`` (optional), ``DepMap_ID``,
        ``Condition`` and ``pctviability``; other columns are ignored. ``Condition`` is
        ``CTRL`` (no NK cells) or ``D1_NK_<E:T>`` (``D1_NK_0.5``, ``D1_NK_1``, ``D1_NK_1:2``).
        Several rows per condition (replicates, donors) are averaged; rows with an empty
        ``pctviability`` are dropped.

    Returns
    -------
    DataFrame of shape (n_cell_lines, 2 + n_ratios)
        Index ``DepMap_ID``; columns ``cell_line``, ``viability_et_<r>`` for each E:T ratio in
        increasing order (mean % viability, rescaled so that the CTRL mean is 100 when CTRL
        rows exist) and ``killing_auc`` (see :func:`killing_auc`).

    Raises
    ------
    LabelError
        Missing columns, an unparseable ``Condition`` or a non-numeric ``pctviability``
        (the message names the file line).
    """
    path = Path(path)
    frame = _read_table(path, _separator(path), LabelError, dtype={"Condition": "string"})
    return _nk_prism_from_frame(frame, str(path))


# ---------------------------------------------------------------------------------------------
# Generic labels and joining
# ---------------------------------------------------------------------------------------------


def read_labels(path: str | Path, id_column: str = "sample_id") -> pd.DataFrame:
    """Read a label table.

    Parameters
    ----------
    path : str or Path
        ``.csv`` (comma), ``.tsv``/``.tab`` (tab) or ``.txt`` (delimiter sniffed), optionally
        compressed (``.csv.gz``). An NK PRISM long table is recognised by its columns and
        read with :func:`read_nk_prism`.
    id_column : str
        Column holding the sample ids (ignored for NK PRISM tables, keyed by ``DepMap_ID``).

    Returns
    -------
    DataFrame of shape (n_samples, n_columns)
        Indexed by the ids as strings (index name ``id_column``, or ``DepMap_ID``).

    Raises
    ------
    LabelError
        Unreadable file, missing id column (the available columns are listed), empty or
        duplicated ids.
    """
    path = Path(path)
    frame = _read_table(path, _separator(path), LabelError, dtype={id_column: "string"})
    if is_nk_prism_table(frame):
        logger.info("%s is an NK PRISM table; summarising it per cell line", path.name)
        return _nk_prism_from_frame(frame, str(path))
    if id_column not in frame.columns:
        raise LabelError(
            f"{path}: no id column {id_column!r}; available columns: "
            f"{', '.join(map(str, frame.columns))}"
        )
    ids = frame[id_column].str.strip()
    empty = ids.isna() | (ids == "")
    if empty.any():
        position = int(np.flatnonzero(empty.to_numpy())[0])
        raise LabelError(f"{path}: line {_line(position)} has an empty {id_column!r}")
    index = pd.Index(ids.astype(str).to_numpy(dtype=object), name=id_column)
    if index.has_duplicates:
        raise LabelError(f"{path}: duplicated ids in {id_column!r}: {_duplicates(index)}")
    labels = frame.drop(columns=id_column)
    labels.index = index
    logger.info("labels %s: %d samples, columns %s", path.name, len(labels), list(labels))
    return labels


def join_labels(
    expression: pd.DataFrame, labels: pd.DataFrame
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Keep the samples present in both tables, in expression order.

    Parameters
    ----------
    expression : DataFrame of shape (n_samples, n_genes)
        Indexed by sample id.
    labels : DataFrame of shape (n_labelled, n_columns)
        Indexed by sample id. Ids are compared as strings.

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
        Duplicated label ids, or no sample in common.
    """
    expression_ids = expression.index.astype(str)
    label_ids = labels.index.astype(str)
    if expression_ids.has_duplicates:
        raise ExpressionFormatError(
            f"duplicated expression sample ids: {_duplicates(expression_ids)}"
        )
    if label_ids.has_duplicates:
        raise LabelError(f"duplicated label ids: {_duplicates(label_ids)}")
    shared = expression_ids.isin(label_ids)
    if not shared.any():
        raise LabelError(
            "no sample id is shared by expression and labels (expression e.g. "
            f"{_listed(expression_ids.tolist())}; labels e.g. {_listed(label_ids.tolist())})"
        )
    kept = expression.loc[shared]
    joined = labels.set_axis(label_ids).loc[expression_ids[shared]]
    joined.index = kept.index
    n_expression, n_labels = len(expression) - len(kept), len(labels) - len(kept)
    log = logger.warning if n_expression or n_labels else logger.info
    log(
        "joined %d samples; dropped %d expression sample(s) without labels and %d label row(s) "
        "without expression",
        len(kept),
        n_expression,
        n_labels,
    )
    return kept, joined
