"""The scoring plan: what is fixed once for a whole input, and one block turned into model input.

:func:`plan_scoring` maps the column labels to HGNC symbols *once*
(:func:`nkpredict.data.identifiers.map_identifiers`), keeps the positions of the columns that
map to the model's genes and fixes the scale *once*: the user's ``scale``, or
:func:`~nkpredict.data.expression.detect_scale` on the first block. Detecting it per chunk
would be wrong: a chunk of low-count cells (every value <= 50) looks like log values.

:func:`prepare_block` turns one block into the model's input. For raw counts the library size
of a sample is its sum over *all* columns, computed on the (sparse) block before the columns
are selected; the selected columns plus one column holding the rest of the library go through
:func:`~nkpredict.data.expression.to_log_tpm`, so counts-per-million come from the library
code with the full library size. The counts checks (non-negative integers, non-zero library)
also cover every column: they run on per-sample statistics of the whole block (highest,
lowest and a non-integer value), which decide them exactly as the full block would. The
result (n_rows x ~100, dense) is then prepared by the model itself,
``model.prepare(frame, scale="log")``: validation, harmonization and features are the fitted
model's, exactly as for in-memory scoring.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

import numpy as np
import pandas as pd

from nkpredict.data.expression import (
    PreparedExpression,
    check_not_standardised,
    detect_scale,
    to_log_tpm,
)
from nkpredict.data.identifiers import HarmonizationReport, map_identifiers
from nkpredict.exceptions import (
    CoverageError,
    ExpressionFormatError,
    GeneMappingError,
    InputError,
    ScaleError,
)
from nkpredict.model.fitted import NKResistanceModel
from nkpredict.stream.blocks import DEFAULT_CHUNK_SIZE, Block, Span
from nkpredict.stream.sources import ChunkSource
from nkpredict.vocabulary import SCALE_CHOICES, Scale, ScaleChoice, check_choice

__all__ = ["OTHER_GENES", "ScoringPlan", "plan_scoring", "prepare_block"]

logger = logging.getLogger(__name__)

OTHER_GENES = "(genes not used by the model)"
"""Label of the column carrying the rest of a sample's library size (raw counts only)."""


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
    columns: tuple[str, ...] = ()
    scale_decision: str = ""
    """How ``scale`` was decided (given by the user, or detected on the first rows)."""

    @property
    def reads_all_columns(self) -> bool:
        """Raw counts need every column (library sizes); other scales only the model's."""
        return self.scale == "counts"


def plan_scoring(
    model: NKResistanceModel,
    source: ChunkSource,
    scale: ScaleChoice = "auto",
    chunk_size: int = DEFAULT_CHUNK_SIZE,
) -> ScoringPlan:
    """Map the input's columns to the model's genes and fix the scale for every chunk.

    Parameters
    ----------
    model : NKResistanceModel
        Fitted.
    source : ChunkSource
        The input (:func:`~nkpredict.stream.sources.open_source`).
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
    scale = check_choice(scale, SCALE_CHOICES, "scale")
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
        resolved = _gene_named(first, source.columns, detect_scale)
        logger.info(
            "%s: scale %s, detected on its first %d rows", source.name, resolved, len(first)
        )
    else:
        resolved = scale
    if resolved == "log":  # z-scores show over every gene, not over the model's alone
        block = first if scale == "auto" else next(source.read(spans[0], chunk_size))
        n = len(source.columns)
        check_not_standardised(
            pd.DataFrame(block.columns(np.arange(n)), index=block.sample_ids, columns=range(n))
        )
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
        columns=tuple(source.columns),
        scale_decision=(
            f"detected on the first {len(first)} rows"
            if scale == "auto"
            else "given by the user (--scale)"
        ),
    )


CheckT = TypeVar("CheckT")


def _gene_named(
    block: Block, columns: Sequence[str], check: Callable[[pd.DataFrame], CheckT]
) -> CheckT:
    """``check`` of the block's per-sample scale summary; when it fails, the same check on the
    block's own values, so that the message names the gene (not "its lowest value")."""
    try:
        return check(block.scale_summary())
    except ScaleError:
        if len(columns):
            values = block.columns(np.arange(len(columns)))
            check(pd.DataFrame(values, index=block.sample_ids, columns=list(columns)))
        raise


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
        columns = plan.labels if projected else plan.columns
        _gene_named(block, columns, lambda f: to_log_tpm(f, "counts"))  # counts' own checks
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
