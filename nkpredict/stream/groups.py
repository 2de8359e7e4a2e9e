"""Groups of cells (sample, patient, cluster): resistant fraction and pseudobulk prediction.

A bulk-trained model is right about bulk profiles. For a group of cells (the cells of one
sample, or of one cluster within a sample) :func:`group_table` gives both views:

- the **resistant fraction**: the share of the group's cells called ``resistant``, with a
  Wilson score interval (:meth:`scipy.stats.binomtest` ``proportion_ci``), and the mean
  per-cell probability; trustworthy only as far as the per-cell calls are (see the README,
  "Single-cell atlases");
- the **pseudobulk** prediction: the group's values summed over its cells (raw counts: the
  model's genes and the rest of every cell's library, so counts per million use the whole
  pseudobulk library; TPM: the mean TPM; log values: the log of the mean linear value), then
  scored exactly like a bulk profile (:func:`~nkpredict.stream.plan.prepare_block`) and
  explained at axis level (its top drivers).

Sums are accumulated span by span (:class:`GroupSums`, one small ``n_groups x k`` array per
span, added in any order), so grouping costs no more memory than scoring: the per-cell
group codes (one integer per cell) and ``n_groups`` rows of sums.

Groups are the distinct combinations of the values of one or more ``obs`` columns of an
``.h5ad`` input (:func:`read_grouping`); several ``--group-by`` columns give one row per
combination that has cells (``--group-by sample --group-by cluster``: one row per cluster of
each sample).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
from anndata.io import read_elem
from scipy import sparse
from scipy.stats import binomtest

from nkpredict.exceptions import ExpressionFormatError, InputError
from nkpredict.explain.attributions import explain
from nkpredict.model.fitted import NKResistanceModel
from nkpredict.stream.blocks import Block, DenseBlock
from nkpredict.stream.cells import OBS_PARQUET
from nkpredict.stream.plan import ScoringPlan, prepare_block
from nkpredict.vocabulary import ExplainMethod

__all__ = [
    "CONFIDENCE",
    "GROUPS_FILE",
    "GROUP_STATS",
    "TOP_AXES",
    "GroupSums",
    "Grouping",
    "group_table",
    "groups_path",
    "read_grouping",
]

CONFIDENCE = 0.95
"""Level of the Wilson interval of the resistant fraction."""
TOP_AXES = 3
"""Axis-level drivers listed per group (``top_axes``)."""
GROUPS_FILE = "groups.csv"
"""File name of the group table in ``explain``'s output directory."""
GROUP_STATS = (
    "n_cells",
    "n_resistant",
    "fraction_resistant",
    "fraction_resistant_low",
    "fraction_resistant_high",
    "mean_probability",
    "fraction_out_of_domain",
    "pseudobulk_probability",
    "pseudobulk_call",
    "pseudobulk_coverage",
    "pseudobulk_out_of_domain",
    "pseudobulk_domain_reasons",
    "top_axes",
)
"""Columns of :func:`group_table` after the group-by columns."""
_SEPARATOR = "|"


def groups_path(out: str | Path) -> Path:
    """Where ``predict`` writes the group table: ``<out stem>.groups.csv`` beside ``out``
    (``scored.h5ad`` → ``scored.groups.csv``; ``cells.obs.parquet`` → ``cells.groups.csv``)."""
    path = Path(out)
    stem = path.name[: -len(OBS_PARQUET)] if path.name.endswith(OBS_PARQUET) else path.stem
    return path.with_name(f"{stem}.groups.csv")


@dataclass(frozen=True)
class Grouping:
    """The group of every cell.

    Attributes
    ----------
    columns : tuple of str
        The ``obs`` columns grouped by.
    codes : ndarray of int64, shape (n_cells,)
        Group number of each cell, in ``[0, n_groups)``.
    keys : DataFrame, shape (n_groups, len(columns))
        The values of ``columns`` of each group (sorted).
    """

    columns: tuple[str, ...]
    codes: np.ndarray
    keys: pd.DataFrame

    @property
    def n_groups(self) -> int:
        """Number of groups."""
        return len(self.keys)

    def labels(self) -> list[str]:
        """One label per group: its values joined by ``|``."""
        values = self.keys.astype(str).to_numpy()
        return [_SEPARATOR.join(row) for row in values.tolist()]


def read_grouping(path: str | Path, columns: Sequence[str]) -> Grouping:
    """Group the cells of an ``.h5ad`` file by ``obs`` columns, reading only those columns.

    Raises
    ------
    InputError
        No column given, a column that ``obs`` lacks, or an input that is not ``.h5ad``.
    ExpressionFormatError
        An unreadable file.
    """
    if not columns:
        raise InputError("give at least one obs column to group by")
    source = Path(path)
    if source.suffix.lower() != ".h5ad":
        raise InputError(f"{source}: --group-by reads obs columns, which only .h5ad inputs have")
    try:
        with h5py.File(source, "r") as handle:
            obs = handle["obs"]
            available = [str(c) for c in np.atleast_1d(obs.attrs.get("column-order", []))]
            missing = [c for c in columns if c not in available]
            if missing:
                shown = ", ".join(available[:20]) or "none"
                raise InputError(
                    f"{source}: obs has no column {', '.join(map(repr, missing))} "
                    f"(its columns: {shown})"
                )
            values = {c: read_elem(obs[c]) for c in columns}
    except (OSError, KeyError) as exc:
        raise ExpressionFormatError(f"{source}: cannot read obs: {exc}") from exc
    frame = pd.DataFrame({c: np.asarray(v).astype(object) for c, v in values.items()})
    grouped = frame.groupby(list(columns), sort=True, dropna=False)
    codes = grouped.ngroup().to_numpy(dtype=np.int64)
    keys = grouped.size().index.to_frame(index=False)
    return Grouping(tuple(columns), codes, keys)


@dataclass
class GroupSums:
    """Per-group sums over the cells seen so far (added span by span).

    Attributes
    ----------
    n_cells, n_resistant, n_out_of_domain : ndarray of int64, shape (n_groups,)
    probability : ndarray of float64, shape (n_groups,)
        Sum of the cells' probabilities (readouts for regression).
    values : ndarray of float64, shape (n_groups, k + 1)
        Sums of the model's input columns on the input's linear scale (raw counts, TPM, or
        ``2 ** x - 1`` of log values), NaN counted as 0; the last column is the rest of the
        library (raw counts only, else 0).
    measured : ndarray of int64, shape (n_groups, k)
        Cells in which each column was measured (not NaN).
    """

    n_cells: np.ndarray
    n_resistant: np.ndarray
    n_out_of_domain: np.ndarray
    probability: np.ndarray
    values: np.ndarray
    measured: np.ndarray

    @classmethod
    def zeros(cls, n_groups: int, k: int) -> GroupSums:
        """Empty sums for ``n_groups`` groups and ``k`` model columns."""
        return cls(
            np.zeros(n_groups, dtype=np.int64),
            np.zeros(n_groups, dtype=np.int64),
            np.zeros(n_groups, dtype=np.int64),
            np.zeros(n_groups),
            np.zeros((n_groups, k + 1)),
            np.zeros((n_groups, k), dtype=np.int64),
        )

    def add(self, other: GroupSums) -> None:
        """Add ``other`` (same groups and columns) in place."""
        for name in ("n_cells", "n_resistant", "n_out_of_domain", "probability"):
            getattr(self, name).__iadd__(getattr(other, name))
        self.values += other.values
        self.measured += other.measured

    @classmethod
    def of_block(
        cls,
        plan: ScoringPlan,
        block: Block,
        projected: bool,
        codes: np.ndarray,
        n_groups: int,
        cells: pd.DataFrame,
    ) -> GroupSums:
        """The sums of one block: its rows' group ``codes`` (n_rows,) and scored ``cells``
        (the per-cell table, with ``call``, ``out_of_domain`` and the value column)."""
        n = len(block)
        selected = np.arange(plan.positions.size) if projected else plan.positions
        linear = block.columns(selected)
        if plan.scale == "log":
            linear = np.exp2(linear) - 1.0
        measured = ~np.isnan(linear)
        filled = np.where(measured, linear, 0.0)
        rest = np.zeros(n)
        if plan.scale == "counts":
            rest = block.row_sums() - filled.sum(axis=1)
        indicator = sparse.csr_matrix(
            (np.ones(n), (codes, np.arange(n))), shape=(n_groups, n), dtype=np.float64
        )
        value = cells["probability"] if "probability" in cells else cells["score"]
        flags = (
            cells["out_of_domain"].to_numpy(dtype=np.float64)
            if "out_of_domain" in cells
            else np.zeros(n)
        )
        per_cell = np.column_stack(
            [
                np.ones(n),
                (cells["call"].to_numpy() == "resistant").astype(np.float64),
                flags,
                value.to_numpy(dtype=np.float64),
            ]
        )
        counted = indicator @ per_cell
        return cls(
            np.rint(counted[:, 0]).astype(np.int64),
            np.rint(counted[:, 1]).astype(np.int64),
            np.rint(counted[:, 2]).astype(np.int64),
            counted[:, 3],
            indicator @ np.column_stack([filled, rest]),
            np.rint(indicator @ measured.astype(np.float64)).astype(np.int64),
        )


def _pseudobulk(plan: ScoringPlan, sums: GroupSums, rows: np.ndarray, ids: list[str]) -> Block:
    """The pseudobulk profiles of groups ``rows`` as a block of the input's scale."""
    values = sums.values[rows]
    measured = sums.measured[rows]
    genes = values[:, :-1]
    with np.errstate(invalid="ignore", divide="ignore"):
        if plan.scale == "counts":
            profile = np.where(measured > 0, genes, np.nan)
            return DenseBlock(ids, np.column_stack([profile, values[:, -1]]))
        mean = np.where(measured > 0, genes / measured, np.nan)
    if plan.scale == "log":
        mean = np.log2(mean + 1.0)
    return DenseBlock(ids, mean)


def _wilson(k: np.ndarray, n: np.ndarray, confidence: float) -> tuple[np.ndarray, np.ndarray]:
    low, high = np.empty(len(n)), np.empty(len(n))
    for i, (hits, total) in enumerate(zip(k.tolist(), n.tolist(), strict=True)):
        interval = binomtest(hits, total).proportion_ci(confidence, method="wilson")
        low[i], high[i] = interval.low, interval.high
    return low, high


def group_table(
    model: NKResistanceModel,
    plan: ScoringPlan,
    grouping: Grouping,
    sums: GroupSums,
    method: ExplainMethod = "auto",
    confidence: float = CONFIDENCE,
    top: int = TOP_AXES,
) -> pd.DataFrame:
    """One row per group that has cells: the group-by columns, then :data:`GROUP_STATS`.

    ``fraction_resistant`` is ``n_resistant / n_cells`` with its Wilson interval at
    ``confidence`` (``fraction_resistant_low``/``_high``); ``mean_probability`` the mean
    per-cell probability (readout for regression); ``fraction_out_of_domain`` the share of
    cells failing the model's domain checks. ``pseudobulk_*`` are the prediction of the
    group's pseudobulk profile (see the module docstring) and ``top_axes`` its ``top``
    axis-level drivers in words (``;``-separated, largest |contribution| first).
    """
    rows = np.flatnonzero(sums.n_cells > 0)
    labels = grouping.labels()
    ids = [labels[i] for i in rows.tolist()]
    n = sums.n_cells[rows]
    resistant = sums.n_resistant[rows]
    low, high = _wilson(resistant, n, confidence)
    table = grouping.keys.iloc[rows].reset_index(drop=True)
    table["n_cells"] = n
    table["n_resistant"] = resistant
    table["fraction_resistant"] = resistant / n
    table["fraction_resistant_low"] = low
    table["fraction_resistant_high"] = high
    table["mean_probability"] = sums.probability[rows] / n
    table["fraction_out_of_domain"] = sums.n_out_of_domain[rows] / n
    prepared = prepare_block(model, plan, _pseudobulk(plan, sums, rows, ids), projected=True)
    bulk = model.predict_table(prepared)
    name = "probability" if "probability" in bulk else "score"
    table["pseudobulk_probability"] = bulk[name].to_numpy()
    table["pseudobulk_call"] = bulk["call"].to_numpy()
    table["pseudobulk_coverage"] = bulk["coverage"].to_numpy()
    table["pseudobulk_out_of_domain"] = (
        bulk["out_of_domain"].to_numpy() if "out_of_domain" in bulk else False
    )
    table["pseudobulk_domain_reasons"] = (
        bulk["domain_reasons"].to_numpy() if "domain_reasons" in bulk else ""
    )
    explanation = explain(model, prepared, method)
    table["top_axes"] = [
        "; ".join(d.sentence() for d in explanation.top_drivers(sid, "axis", top)) for sid in ids
    ]
    return table
