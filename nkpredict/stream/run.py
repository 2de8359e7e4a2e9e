"""Streaming scoring: inputs too large for memory are read, scored and written in row chunks.

A single-cell atlas has millions of cells x tens of thousands of genes; densifying it, as
:func:`nkpredict.data.expression.read_expression` does, needs terabytes. The model reads only its
own genes (about a hundred), so a chunk of rows can be reduced to those columns before
anything dense is built. :func:`predict_file` and :func:`explain_file` do that:

1. :func:`~nkpredict.stream.sources.open_source` opens the input as a
   :class:`~nkpredict.stream.sources.ChunkSource` that yields row
   :class:`~nkpredict.stream.blocks.Span` s (units of work) and, from a span, row
   :class:`~nkpredict.stream.blocks.Block` s of at most ``chunk_size`` rows; Parquet and
   CSR/dense h5ad inputs are read by rows, anything else is read whole (as before).
2. :func:`~nkpredict.stream.plan.plan_scoring` maps the column labels to HGNC symbols and
   fixes the scale *once* for every chunk (detecting it per chunk would be wrong: a chunk of
   low-count cells looks like log values).
3. :func:`~nkpredict.stream.plan.prepare_block` turns one block into the model's input, with
   the library sizes of raw counts taken over every column, then
   ``model.prepare(frame, scale="log")``: validation, harmonization and features are the
   fitted model's, exactly as for in-memory scoring.
4. Results are written incrementally in input order (:class:`~nkpredict.stream.writer.TableWriter`):
   predictions as one Parquet row group per chunk (or appended CSV/TSV rows), explanations
   as one appended table per level, each into a temporary file renamed into place at the end
   (:func:`nkpredict.io.atomic_path`), so an interrupted run leaves no complete-looking output.

Peak memory is one block of the input (``chunk_size`` rows; for dense inputs also at most
:data:`~nkpredict.stream.blocks.MAX_CHUNK_VALUES` values) plus the model's small matrices,
whatever the number of samples. Which process scores a span is decided by a *mapper*:
:func:`map_in_process` (default) or a distributed one
(``training.engines.DaskEngine.map_ordered``); every span is scored by the same function of
:mod:`nkpredict.stream.jobs`, so engines give identical results.

What is checked differs from in-memory scoring in two ways, both to keep memory bounded:
for TPM and log inputs only the columns the model reads are validated (for raw counts every
column is), and duplicated sample IDs are detected within a chunk, not across chunks.
Samples covering less than :data:`~nkpredict.settings.DEFAULT_MIN_COVERAGE` of the model's
genes are refused by default, as on the command line and in the service.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import pandas as pd

from nkpredict.data.identifiers import HarmonizationReport
from nkpredict.explain.attributions import FILE_STEMS, GLOBAL_FILE, global_summary
from nkpredict.explain.words import SENTENCES_FILE
from nkpredict.io import atomic_path, write_json
from nkpredict.model.fitted import NKResistanceModel
from nkpredict.settings import DEFAULT_MIN_COVERAGE
from nkpredict.stream.annotate import ObsWriter
from nkpredict.stream.blocks import DEFAULT_CHUNK_SIZE
from nkpredict.stream.cells import (
    CELL_COLUMNS,
    DETECTED_COVERAGE,
    OutputKind,
    cell_columns,
    output_kind,
)
from nkpredict.stream.groups import (
    GROUPS_FILE,
    GroupSums,
    group_table,
    groups_path,
    read_grouping,
)
from nkpredict.stream.jobs import (
    CellJob,
    ExplainJob,
    PredictJob,
    concat_explanations,
    explain_span,
    predict_cells_span,
    predict_span,
)
from nkpredict.stream.plan import ScoringPlan, plan_scoring
from nkpredict.stream.sources import ChunkSource, open_source
from nkpredict.stream.writer import TableWriter
from nkpredict.vocabulary import ExplainMethod, Scale, ScaleChoice

__all__ = [
    "GLOBAL_SAMPLE",
    "Mapper",
    "Progress",
    "StreamResult",
    "explain_file",
    "map_in_process",
    "predict_file",
]

GLOBAL_SAMPLE = 20_000
"""Most samples kept for the cohort summary of explanations (``global.json``): every k-th
sample, with k the smallest stride that keeps at most this many. Below this size the summary
is exact; above it the ranking of units by mean |SHAP| and their direction of effect (a rank
correlation, which needs all values at once) come from a systematic sample."""

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
    groups: pd.DataFrame | None = None


def _plan(
    model: NKResistanceModel, path: str | Path, scale: ScaleChoice, chunk_size: int | None
) -> tuple[ChunkSource, ScoringPlan]:
    source = open_source(path)
    return source, plan_scoring(model, source, scale, chunk_size or DEFAULT_CHUNK_SIZE)


def predict_file(
    model: NKResistanceModel,
    path: str | Path,
    out: str | Path,
    *,
    scale: ScaleChoice = "auto",
    chunk_size: int | None = None,
    min_coverage: float = DEFAULT_MIN_COVERAGE,
    progress: Progress | None = None,
    mapper: Mapper[Any, Any, Any] = map_in_process,
    group_by: Sequence[str] = (),
    groups_out: str | Path | None = None,
    kind: OutputKind | None = None,
    provenance: dict[str, Any] | None = None,
) -> StreamResult:
    """Score an expression input chunk by chunk into a predictions table or scored cells.

    Parameters
    ----------
    model : NKResistanceModel
        Fitted.
    path : str or Path
        Input (see :func:`~nkpredict.stream.sources.open_source`).
    out : str or Path
        ``.parquet`` (one row group per chunk), ``.csv`` or ``.tsv``: rows as
        :meth:`NKResistanceModel.predict_table`, in input order. ``.h5ad`` (for an ``.h5ad``
        input): a copy of the input with the per-cell columns
        (:data:`~nkpredict.stream.cells.CELL_COLUMNS`) in ``obs`` and ``uns["nkpredict"]``
        (:class:`~nkpredict.stream.annotate.ObsWriter`). ``.obs.parquet``: those columns as a
        table, ``cell_id`` first.
    scale : {"auto", "counts", "tpm", "log"}
        See :func:`~nkpredict.stream.plan.plan_scoring`.
    chunk_size : int, optional
        Most rows scored at once (default
        :data:`~nkpredict.stream.blocks.DEFAULT_CHUNK_SIZE`).
    min_coverage : float
        Refuse samples covering less of the model's genes
        (:meth:`NKResistanceModel.check_coverage`); nothing is written then. Default
        :data:`~nkpredict.settings.DEFAULT_MIN_COVERAGE`, shared with the CLI and the service.
    progress : callable, optional
        ``progress(rows_done, rows_total)`` after each span.
    mapper : callable
        Runs :func:`~nkpredict.stream.jobs.predict_span` over the spans
        (:func:`map_in_process` or a cluster's).
    group_by : sequence of str
        ``obs`` columns of an ``.h5ad`` input: one row per group
        (:func:`~nkpredict.stream.groups.group_table`) written to ``groups_out``.
    groups_out : str or Path, optional
        Default :func:`~nkpredict.stream.groups.groups_path` of ``out``.
    kind : {"table", "cells", "h5ad"}, optional
        What ``out`` is (default :func:`~nkpredict.stream.cells.output_kind` of ``out``;
        give it when ``out`` is a staging path).
    provenance : dict, optional
        Stored in ``uns["nkpredict"]`` of an ``.h5ad`` output, with the scale decision.

    Returns
    -------
    StreamResult
    """
    kind = kind or output_kind(out)
    grouping = read_grouping(path, group_by) if group_by else None
    source, plan = _plan(model, path, scale, chunk_size)
    calls: Counter[str] = Counter()
    if kind == "table" and grouping is None:
        job = PredictJob(model, source, plan, min_coverage)
        with TableWriter(out) as writer:
            for table in mapper(predict_span, job, list(plan.spans)):
                writer.write(table)
                calls.update(table["call"].astype(str))
                if progress is not None:
                    progress(writer.n_rows, plan.n_rows)
        return StreamResult(
            writer.n_rows, plan.scale, plan.report, {"predictions": Path(out)}, dict(calls)
        )
    cells = CellJob(
        model,
        source,
        plan,
        min_coverage,
        None if grouping is None else grouping.codes,
        0 if grouping is None else grouping.n_groups,
    )
    sums = GroupSums.zeros(cells.n_groups, plan.positions.size)
    done = 0
    with ExitStack() as stack:
        sink: TableWriter | ObsWriter
        if kind == "h5ad":
            sink = stack.enter_context(ObsWriter(path, out, plan.n_rows))
        else:
            sink = stack.enter_context(TableWriter(out))
        for part in mapper(predict_cells_span, cells, list(plan.spans)):
            if kind == "table":
                sink.write(part.table.drop(columns=[DETECTED_COVERAGE]))
            else:
                columns = cell_columns(part.table)
                if kind == "h5ad":
                    sink.write(columns)
                else:
                    ids = pd.Series(part.table["sample_id"].to_numpy(), name="cell_id")
                    sink.write(pd.concat([ids, columns.reset_index(drop=True)], axis=1))
            if part.sums is not None:
                sums.add(part.sums)
            calls.update(part.table["call"].astype(str))
            done += len(part.table)
            if progress is not None:
                progress(done, plan.n_rows)
        if isinstance(sink, ObsWriter):
            sink.finish(_provenance(model, plan, provenance, group_by))
    paths = {"predictions": Path(out)}
    groups = None
    if grouping is not None:
        groups = group_table(model, plan, grouping, sums)
        paths["groups"] = Path(groups_out) if groups_out is not None else groups_path(out)
        with atomic_path(paths["groups"]) as staged:
            groups.to_csv(staged, index=False)
    return StreamResult(done, plan.scale, plan.report, paths, dict(calls), groups=groups)


def _provenance(
    model: NKResistanceModel,
    plan: ScoringPlan,
    given: dict[str, Any] | None,
    group_by: Sequence[str],
) -> dict[str, Any]:
    """``uns["nkpredict"]``: who scored the cells, with what, on which scale."""
    from importlib.metadata import version

    return {
        **(given or {}),
        "nkpredict_version": version("nkpredict"),
        "catalog_version": model.feature_builder.catalog_version_,
        "task": model.task,
        "decision_threshold": float(model.decision_threshold),
        "scale": plan.scale,
        "scale_decision": plan.scale_decision,
        "columns": list(CELL_COLUMNS),
        "coverage": "fraction of the model's catalogue genes detected (above zero) in the cell",
        "group_by": list(group_by),
    }


def explain_file(
    model: NKResistanceModel,
    path: str | Path,
    out_dir: str | Path,
    *,
    scale: ScaleChoice = "auto",
    chunk_size: int | None = None,
    method: ExplainMethod = "auto",
    progress: Progress | None = None,
    mapper: Mapper[Any, Any, Any] = map_in_process,
    group_by: Sequence[str] = (),
) -> StreamResult:
    """Explain an expression input chunk by chunk; the files of ``write_explanations``.

    ``features.csv``, ``genes.csv``, ``axes.csv`` and ``pathways.csv`` get one row per sample
    in input order, appended chunk by chunk (each file complete or absent); ``global.json``
    ranks the units over the cohort, exactly for up to :data:`GLOBAL_SAMPLE` samples and from
    every k-th sample above (``n_samples`` counts all samples, ``n_samples_summarised`` the
    ones summarised); ``sentences.csv`` holds each sample's drivers in words
    (:func:`nkpredict.explain.words.words_table`).

    Parameters
    ----------
    model, path, scale, chunk_size, progress, mapper
        As for :func:`predict_file`.
    out_dir : str or Path
        Directory to write into.
    method : {"auto", "native", "shap"}
        TreeSHAP implementation.
    group_by : sequence of str
        ``obs`` columns of an ``.h5ad`` input: ``groups.csv`` in ``out_dir`` as ``predict``
        writes it (:func:`~nkpredict.stream.groups.group_table`, with the pseudobulk's top
        axes).

    Returns
    -------
    StreamResult
    """
    grouping = read_grouping(path, group_by) if group_by else None
    source, plan = _plan(model, path, scale, chunk_size)
    job = ExplainJob(
        model,
        source,
        plan,
        method,
        max(1, math.ceil(plan.n_rows / GLOBAL_SAMPLE)),
        None if grouping is None else grouping.codes,
        0 if grouping is None else grouping.n_groups,
    )
    sums = GroupSums.zeros(job.n_groups, plan.positions.size)
    out = Path(out_dir)
    paths = {stem: out / f"{stem}.csv" for stem in FILE_STEMS.values()}
    paths["sentences"] = out / SENTENCES_FILE
    samples, done = [], 0
    with ExitStack() as stack:
        writers = {
            level: stack.enter_context(TableWriter(paths[stem]))
            for level, stem in FILE_STEMS.items()
        }
        sentences = stack.enter_context(TableWriter(paths["sentences"]))
        for part in mapper(explain_span, job, list(plan.spans)):
            for level, writer in writers.items():
                writer.write(part.tables[level])
            sentences.write(part.sentences)
            samples.append(part.sample)
            if part.sums is not None:
                sums.add(part.sums)
            done += len(part.tables["feature"])
            if progress is not None:
                progress(done, plan.n_rows)
    summary = global_summary(concat_explanations(samples))
    summary["n_samples_summarised"] = summary["n_samples"]
    summary["n_samples"] = done
    result: dict[str, Path] = dict(paths)
    result["global"] = write_json(out / GLOBAL_FILE, summary)
    groups = None
    if grouping is not None:
        groups = group_table(model, plan, grouping, sums, method)
        result["groups"] = out / GROUPS_FILE
        with atomic_path(result["groups"]) as staged:
            groups.to_csv(staged, index=False)
    return StreamResult(done, plan.scale, plan.report, result, summary=summary, groups=groups)
