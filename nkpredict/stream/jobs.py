"""Jobs: everything a worker needs to score one span, and the functions that score it.

A job is shipped once per worker; :func:`predict_span` and :func:`explain_span` score one
:class:`~nkpredict.stream.blocks.Span` of the input with it, block by block, so every engine
(this process or a cluster) runs the same code and gives identical results.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pandas as pd

from nkpredict.data.expression import PreparedExpression
from nkpredict.explain.attributions import Explanation, explain
from nkpredict.explain.words import explanation_words, words_table
from nkpredict.model.fitted import NKResistanceModel
from nkpredict.settings import DEFAULT_MIN_COVERAGE
from nkpredict.stream.blocks import Block, Span
from nkpredict.stream.cells import DETECTED_COVERAGE, detected_coverage
from nkpredict.stream.groups import GroupSums
from nkpredict.stream.plan import ScoringPlan, prepare_block
from nkpredict.stream.sources import ChunkSource
from nkpredict.vocabulary import LEVELS, ExplainMethod

__all__ = [
    "CellJob",
    "CellSpan",
    "ExplainJob",
    "ExplainedSpan",
    "PredictJob",
    "concat_explanations",
    "explain_span",
    "predict_cells_span",
    "predict_span",
]


@dataclass
class _Job:
    """Everything a worker needs to score a span (shipped once per worker)."""

    model: NKResistanceModel
    source: ChunkSource
    plan: ScoringPlan

    def prepared(self, span: Span) -> Iterator[PreparedExpression]:
        """The model input of each block of ``span``."""
        for _, prepared, _ in self.blocks(span):
            yield prepared

    def blocks(self, span: Span) -> Iterator[tuple[Block, PreparedExpression, bool]]:
        """Each block of ``span``, its model input and whether it was read projected."""
        project = None if self.plan.reads_all_columns else self.plan.positions
        for block in self.source.read(span, self.plan.chunk_size, project):
            yield (
                block,
                prepare_block(self.model, self.plan, block, project is not None),
                (project is not None),
            )


def _sums(
    job: _Job,
    codes: np.ndarray | None,
    n_groups: int,
    block: Block,
    projected: bool,
    row: int,
    cells: pd.DataFrame,
) -> GroupSums | None:
    """The group sums of one block whose first row is global row ``row`` (None: no groups)."""
    if codes is None:
        return None
    own = codes[row : row + len(block)]
    return GroupSums.of_block(job.plan, block, projected, own, n_groups, cells)


def _total(parts: list[GroupSums | None]) -> GroupSums | None:
    present = [p for p in parts if p is not None]
    if not present:
        return None
    total = present[0]
    for part in present[1:]:
        total.add(part)
    return total


@dataclass
class PredictJob(_Job):
    """Predictions of a span (:func:`predict_span`); rejects samples below ``min_coverage``.

    ``min_coverage`` defaults to :data:`~nkpredict.settings.DEFAULT_MIN_COVERAGE`.
    """

    min_coverage: float = DEFAULT_MIN_COVERAGE


def predict_span(job: PredictJob, span: Span) -> pd.DataFrame:
    """:meth:`NKResistanceModel.predict_table` rows of one span, shape (span.n_rows, 4)."""
    tables = []
    for prepared in job.prepared(span):
        job.model.check_coverage(prepared, job.min_coverage)
        tables.append(job.model.predict_table(prepared))
    return pd.concat(tables, ignore_index=True)


@dataclass
class CellJob(PredictJob):
    """Per-cell predictions of a span (:func:`predict_cells_span`) and, when ``codes`` (the
    group of every row of the input, shape (n_rows,)) is given, the sums of its
    ``n_groups`` groups."""

    codes: np.ndarray | None = None
    n_groups: int = 0


@dataclass
class CellSpan:
    """Per-cell rows of one span (:meth:`NKResistanceModel.predict_table` plus
    :data:`~nkpredict.stream.cells.DETECTED_COVERAGE`) and its group sums (or None)."""

    table: pd.DataFrame
    sums: GroupSums | None


def predict_cells_span(job: CellJob, span: Span) -> CellSpan:
    """:class:`CellSpan` of one span: predictions, detected coverage and group sums."""
    tables, sums, row = [], [], span.offset
    for block, prepared, projected in job.blocks(span):
        job.model.check_coverage(prepared, job.min_coverage)
        table = job.model.predict_table(prepared)
        table[DETECTED_COVERAGE] = detected_coverage(job.model, prepared)
        tables.append(table)
        sums.append(_sums(job, job.codes, job.n_groups, block, projected, row, table))
        row += len(block)
    return CellSpan(pd.concat(tables, ignore_index=True), _total(sums))


@dataclass
class ExplainJob(_Job):
    """Explanations of a span; every ``stride``-th sample also feeds the cohort summary.

    With ``codes`` (as for :class:`CellJob`) each span also returns its group sums."""

    method: ExplainMethod = "auto"
    stride: int = 1
    codes: np.ndarray | None = None
    n_groups: int = 0


@dataclass
class ExplainedSpan:
    """Per-level tables of one span, its drivers in words (:func:`words_table`) and its
    share of the cohort-summary sample."""

    tables: dict[str, pd.DataFrame]
    sample: Explanation
    sentences: pd.DataFrame
    sums: GroupSums | None = None


def concat_explanations(parts: list[Explanation]) -> Explanation:
    """The samples of ``parts`` (explanations of one model, in order) as one explanation."""
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
        prior_part=(
            pd.concat([p.prior_part for p in parts if p.prior_part is not None])
            if all(p.prior_part is not None for p in parts)
            else None
        ),
    )


def explain_span(job: ExplainJob, span: Span) -> ExplainedSpan:
    """Explanation tables (:meth:`Explanation.table` of every level) of one span."""
    tables: dict[str, list[pd.DataFrame]] = {level: [] for level in LEVELS}
    samples, row, sentences, sums = [], span.offset, [], []
    for block, prepared, projected in job.blocks(span):
        if job.codes is not None:
            cells = job.model.predict_table(prepared)
            sums.append(_sums(job, job.codes, job.n_groups, block, projected, row, cells))
        explanation = explain(job.model, prepared, job.method)
        for level in LEVELS:
            tables[level].append(explanation.table(level).reset_index())
        words = explanation_words(job.model, explanation)
        sentences.append(words_table(prepared.sample_ids, words))
        n = prepared.n_samples
        keep = np.flatnonzero((np.arange(row, row + n) % job.stride) == 0)
        samples.append(explanation.rows(keep))
        row += n
    return ExplainedSpan(
        tables={level: pd.concat(parts, ignore_index=True) for level, parts in tables.items()},
        sample=concat_explanations(samples),
        sentences=pd.concat(sentences, ignore_index=True),
        sums=_total(sums),
    )
