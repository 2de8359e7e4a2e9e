"""Per-cell results: what a scored cell carries into ``obs`` (scanpy conventions).

A cell is scored like a bulk sample (the same features, margins and domain checks), but its
zeros mean little: at a few thousand UMIs most catalogue genes are not detected in a given
cell although the cell expresses them. The coverage of a sample (the fraction of the model's
catalogue genes *measured*) is 1 for every cell of an ``.h5ad`` file, since a sparse zero is
a measured zero. So a cell's coverage is the fraction of the model's catalogue genes
*detected* (a value above zero) in it, and a cell detecting fewer than
:data:`~nkpredict.settings.LOW_COVERAGE_WARNING` of them fails the ``low_coverage`` domain
check on top of the model's own checks: its call rests on dropout, not on biology.

:data:`CELL_COLUMNS` are the ``obs`` columns written (:func:`cell_columns`); ``nk_call`` is a
categorical with the categories of :data:`CALLS` (what scanpy colours by).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

from nkpredict.data.expression import PreparedExpression
from nkpredict.model.fitted import NKResistanceModel
from nkpredict.settings import LOW_COVERAGE_WARNING

__all__ = [
    "CALLS",
    "CELL_COLUMNS",
    "DETECTED_COVERAGE",
    "OBS_PARQUET",
    "OutputKind",
    "cell_columns",
    "detected_coverage",
    "output_kind",
]

OutputKind = Literal["table", "cells", "h5ad"]
"""What a predictions output holds: the predictions table, the per-cell ``obs`` columns as a
table (``.obs.parquet``), or a scored copy of an ``.h5ad`` input."""
OBS_PARQUET = ".obs.parquet"
"""Name ending of a per-cell ``obs`` table."""

CALLS = ("resistant", "sensitive", "uncertain", "n/a")
"""Categories of ``nk_call``, in this order."""
CELL_COLUMNS = (
    "nk_resistance_probability",
    "nk_call",
    "nk_coverage",
    "nk_out_of_domain",
    "nk_domain_reasons",
)
"""The ``obs`` columns a scored ``.h5ad`` gains (any of the same name are replaced)."""
DETECTED_COVERAGE = "detected_coverage"
"""Column of the per-cell table holding :func:`detected_coverage`."""


def output_kind(path: str | Path) -> OutputKind:
    """:data:`OutputKind` of an output path, from its name."""
    name = Path(path).name.lower()
    if name.endswith(".h5ad"):
        return "h5ad"
    if name.endswith(OBS_PARQUET):
        return "cells"
    return "table"


def detected_coverage(model: NKResistanceModel, prepared: PreparedExpression) -> np.ndarray:
    """Fraction of the model's catalogue genes detected (above zero) per row, shape (n,).

    On log2(TPM+1) values a gene is detected when its value is above zero, that is when
    it had at least one count; an unmeasured gene (NaN) is not detected.
    """
    model_genes = model.feature_builder.model_genes_
    positions = prepared.genes.get_indexer(model_genes)
    present = positions[positions >= 0]
    with np.errstate(invalid="ignore"):
        detected = np.count_nonzero(prepared.values[:, present] > 0, axis=1)
    return detected / len(model_genes)


def cell_columns(table: pd.DataFrame) -> pd.DataFrame:
    """The ``obs`` columns of scored cells from their per-cell table.

    Parameters
    ----------
    table : DataFrame, shape (n_cells, ...)
        :meth:`NKResistanceModel.predict_table` rows plus :data:`DETECTED_COVERAGE`.

    Returns
    -------
    DataFrame, shape (n_cells, len(CELL_COLUMNS))
        ``nk_resistance_probability`` (float32; the readout for regression models),
        ``nk_call`` (categorical, :data:`CALLS`), ``nk_coverage`` (detected fraction),
        ``nk_out_of_domain`` (the model's domain checks or ``low_coverage`` of detection) and
        ``nk_domain_reasons`` (``;``-joined), indexed like ``table``.
    """
    value = table["probability"] if "probability" in table else table["score"]
    coverage = table[DETECTED_COVERAGE].to_numpy(dtype=np.float64)
    low = coverage < LOW_COVERAGE_WARNING
    model_flag = (
        table["out_of_domain"].to_numpy(dtype=bool)
        if "out_of_domain" in table
        else np.zeros(len(table), dtype=bool)
    )
    reasons = (
        table["domain_reasons"].fillna("").astype(str).to_numpy(dtype=object)
        if "domain_reasons" in table
        else np.full(len(table), "", dtype=object)
    )
    joined = [
        ";".join(
            [r for r in given.split(";") if r and r != "low_coverage"] + ["low_coverage"] * is_low
        )
        for given, is_low in zip(reasons.tolist(), low.tolist(), strict=True)
    ]
    return pd.DataFrame(
        {
            "nk_resistance_probability": value.to_numpy(dtype=np.float32),
            "nk_call": pd.Categorical(table["call"].astype(str), categories=list(CALLS)),
            "nk_coverage": coverage,
            "nk_out_of_domain": model_flag | low,
            "nk_domain_reasons": pd.array(joined, dtype=object),
        },
        index=table.index,
    )
