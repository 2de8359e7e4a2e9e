"""From a request's samples to its answer: preparation, coverage, predictions, explanations.

Every function here is plain computation on the fitted model (no request, no event loop): it
calls only the library (the fitted model's :class:`~nkpredict.fast.scoring.ArrayScorer` and
:func:`nkpredict.explain.attributions.attributions`), where the speed of the hot path lives,
and returns JSON bytes with the number of samples answered. Requests of more than
``NKP_ANSWER_CHUNK_SAMPLES`` samples are checked whole (parse, preparation, coverage: every
refusal comes before the first byte), then scored a chunk of samples at a time and answered as
an iterator of JSON bytes (the same text as the whole answer), so their memory follows one
chunk, not the number of samples. Each answer uses the
:class:`~service.state.LoadedModel` it is given from start to end, even if an admin reload
swaps the served model meanwhile.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from itertools import islice, pairwise
from typing import Any

import numpy as np
import orjson
import pandas as pd
from fastapi import UploadFile

from nkpredict.data.expression import PreparedExpression, detect_scale
from nkpredict.data.identifiers import HarmonizationReport
from nkpredict.exceptions import CoverageError, NKPredictError
from nkpredict.explain.attributions import (
    attributions,
    drivers_of,
    level_allocations,
    output_units,
    resistant_sign,
)
from nkpredict.explain.words import sample_words
from nkpredict.fast.scoring import ArrayScorer
from nkpredict.model.fitted import NKResistanceModel
from nkpredict.vocabulary import AGGREGATE_LEVELS, Level, Orientation, Scale, ScaleChoice
from service.bodies import SampleMatrix, parse_samples_body
from service.config import ServiceSettings
from service.errors import ServiceError
from service.schemas import OTHER_UNIT, ExplainOptions, PredictOptions
from service.state import LoadedModel
from service.uploads import read_upload

__all__ = [
    "EXPLAIN_CHUNK",
    "SPARSE_INPUT_FACTOR",
    "Answer",
    "ModelInputs",
    "dumps",
    "explain_json",
    "predict_json",
    "predict_payload",
    "predict_upload",
]

EXPLAIN_CHUNK = 256
"""Samples explained per TreeSHAP call (keeps per-sample driver look-ups cheap)."""
SPARSE_INPUT_FACTOR = 4
"""When the samples x model-genes arrays would have more than this many times the cells of
the prepared input (samples that measure few of the model's genes), coverage is checked on
the prepared input first, so a refused request never allocates them."""


Answer = bytes | Iterator[bytes]
"""A serialised answer: whole, or (large requests) its JSON text in consecutive pieces."""


def dumps(payload: Any) -> bytes:
    """``payload`` as JSON bytes (numpy values included)."""
    return orjson.dumps(payload, option=orjson.OPT_SERIALIZE_NUMPY)


def _prepare(
    model: NKResistanceModel,
    samples: SampleMatrix | pd.DataFrame,
    scale: ScaleChoice | None,
    model_genes_only: bool = True,
) -> PreparedExpression:
    """The model's own preparation, with the request's scale when it names one.

    JSON bodies arrive as arrays (:class:`~service.bodies.SampleMatrix`) and go through the
    model's array path, by default keeping only the model's input genes (all its answers
    read; the checks, the scale and the identifier report still cover every gene sent);
    uploaded files arrive as DataFrames.
    """
    if isinstance(samples, SampleMatrix):
        return model.scorer.prepare(
            samples.values,
            samples.sample_ids,
            samples.genes,
            scale,
            str_labels=True,
            model_genes_only=model_genes_only,
        )
    return model.prepare(samples, scale=scale)


@dataclass(frozen=True, eq=False)
class ModelInputs:
    """What every answer of a request is computed from, each computed once.

    Attributes
    ----------
    prepared : PreparedExpression
    genes : ndarray, shape (n_samples, n_genes_in)
        ``scorer.gene_values(prepared)``.
    features : ndarray, shape (n_samples, n_features)
        ``scorer.features(genes)``; holds the coverage too.
    scorer : ArrayScorer
        The model's scorer that computed them (``model.scorer``).
    """

    prepared: PreparedExpression
    genes: np.ndarray
    features: np.ndarray
    scorer: ArrayScorer


def _check_coverage(
    scorer: ArrayScorer,
    prepared: PreparedExpression,
    minimum: float,
    limit: int,
    features: np.ndarray | None = None,
) -> None:
    """The model's coverage check; on failure a 422 naming (up to ``limit``) samples and the
    missing genes.

    With ``features`` (the usual case) their coverage column answers first, without building
    the check's details; without, the check reads the prepared array only.
    """
    if features is not None and (scorer.coverage(features) >= minimum).all():
        return
    try:
        scorer.check_coverage(prepared, minimum)
    except CoverageError as exc:
        below = list(exc.coverage.items())
        raise ServiceError(
            422,
            "coverage_too_low",
            str(exc),
            {
                "min_coverage": minimum,
                "n_samples": len(below),
                "samples": dict(below[:limit]),
                "missing_genes": exc.missing_genes,
                "truncated": len(below) > limit,
            },
        ) from None


def _cap_list(items: list[Any], limit: int) -> tuple[list[Any], bool]:
    return items[:limit], len(items) > limit


def _cap_dict(items: dict[str, Any], limit: int) -> tuple[dict[str, Any], bool]:
    if len(items) <= limit:
        return items, False
    return dict(islice(items.items(), limit)), True


def _harmonization(inputs: ModelInputs, limit: int) -> dict[str, Any]:
    """The identifier report of a request, with the model genes it lacks."""
    return _harmonization_of(inputs.prepared.report, inputs.scorer.missing(inputs.genes), limit)


@dataclass(frozen=True, eq=False)
class _ReportHead:
    """What the answer says of an identifier report, capped at a number of entries per part
    (everything of :func:`_harmonization_of` but the missing model genes)."""

    head: dict[str, Any]
    truncated: bool


def _report_head(report: HarmonizationReport, limit: int) -> _ReportHead:
    renamed, cut_renamed = _cap_dict(report.renamed, limit)
    unmapped, cut_unmapped = _cap_list(report.unmapped, limit)
    ambiguous, cut_ambiguous = _cap_dict(report.ambiguous, limit)
    collided, cut_collided = _cap_dict(report.collided, limit)
    head = {
        "n_input": report.n_input,
        "n_mapped": len(report.mapped),
        "n_renamed": len(report.renamed),
        "renamed": renamed,
        "n_unmapped": len(report.unmapped),
        "unmapped": unmapped,
        "n_ambiguous": len(report.ambiguous),
        "ambiguous": ambiguous,
        "n_collided": len(report.collided),
        "collided": collided,
    }
    truncated = cut_renamed or cut_unmapped or cut_ambiguous or cut_collided
    return _ReportHead(head, truncated)


_REPORT_HEADS: dict[tuple[int, int], tuple[weakref.ref[HarmonizationReport], _ReportHead]] = {}
"""The capped parts of recent identifier reports, by report (its id, checked by a weak
reference) and limit: the preparation shares one read-only report by identifier list, so
requests with the same genes cap it once."""
_REPORT_HEADS_SIZE = 64


def _capped_report(report: HarmonizationReport, limit: int) -> _ReportHead:
    """:func:`_report_head` of ``report``, remembered while it lives (at most
    :data:`_REPORT_HEADS_SIZE` reports at a time)."""
    key = (id(report), limit)
    found = _REPORT_HEADS.get(key)
    if found is not None and found[0]() is report:
        return found[1]
    head = _report_head(report, limit)
    if len(_REPORT_HEADS) >= _REPORT_HEADS_SIZE:
        _REPORT_HEADS.clear()
    _REPORT_HEADS[key] = (weakref.ref(report), head)
    return head


def _harmonization_of(
    report: HarmonizationReport, missing: list[str], limit: int
) -> dict[str, Any]:
    """The identifier report ``report`` with the model genes ``missing`` from every sample."""
    found = _capped_report(report, limit)
    return {
        **found.head,
        "n_missing_model_genes": len(missing),
        "missing_model_genes": missing,
        "truncated": found.truncated,
    }


def _model_inputs(
    loaded: LoadedModel,
    samples: SampleMatrix | pd.DataFrame,
    options: PredictOptions,
    settings: ServiceSettings,
    model_genes_only: bool = True,
) -> ModelInputs:
    """Prepare the samples and compute their features; 422 when coverage is too low.

    ``model_genes_only``: see :func:`_prepare` (what-if also scores member models, which
    may read other genes)."""
    model = loaded.model
    prepared = _prepared_input(model, samples, options, model_genes_only)
    minimum = _minimum_coverage(options, settings)
    limit = settings.report_max_items
    scorer = model.scorer
    n_genes_in = len(scorer.builder.genes_in_)
    if prepared.n_samples * n_genes_in > SPARSE_INPUT_FACTOR * prepared.values.size:
        # the model's arrays would dwarf the input: refuse low coverage before building them
        _check_coverage(scorer, prepared, minimum, limit)
    genes = scorer.gene_values(prepared)
    features = scorer.features(genes)
    _check_coverage(scorer, prepared, minimum, limit, features)
    return ModelInputs(prepared, genes, features, scorer)


def _prepared_input(
    model: NKResistanceModel,
    samples: SampleMatrix | pd.DataFrame,
    options: PredictOptions,
    model_genes_only: bool = True,
) -> PreparedExpression:
    """The request's prepared samples, with the identifier report of every gene it sent
    (``model_genes_only``: see :func:`_prepare`)."""
    prepared = _prepare(model, samples, options.scale, model_genes_only)
    if isinstance(samples, SampleMatrix) and samples.report is not None:
        prepared.report = samples.report  # a reduced sparse body: the report of all its genes
    return prepared


def _minimum_coverage(options: PredictOptions, settings: ServiceSettings) -> float:
    return settings.min_coverage if options.min_coverage is None else options.min_coverage


def _checked_input(
    loaded: LoadedModel, samples: SampleMatrix, options: PredictOptions, settings: ServiceSettings
) -> PreparedExpression:
    """The request prepared whole, refused (422) for low coverage from the prepared input
    alone (no samples x model-genes arrays)."""
    model = loaded.model
    prepared = _prepared_input(model, samples, options)
    limit = settings.report_max_items
    _check_coverage(model.scorer, prepared, _minimum_coverage(options, settings), limit)
    return prepared


def _chunk_bounds(n_samples: int, size: int) -> list[tuple[int, int]]:
    """``size`` samples at a time; a last chunk of fewer joins the one before (chunks of
    ``size`` to ``2 size - 1`` samples), so the features' matrix products run on as large
    blocks as the whole answer's (BLAS may round a block of a few rows differently in the
    last bit)."""
    bounds = [*range(0, n_samples, size), n_samples]
    if len(bounds) > 2 and n_samples - bounds[-2] < size:
        del bounds[-2]
    return list(pairwise(bounds))


def _prepared_chunks(
    model: NKResistanceModel,
    samples: SampleMatrix,
    scale: Scale,
    bounds: list[tuple[int, int]],
) -> Iterator[PreparedExpression]:
    """Each chunk of ``samples`` prepared on its own, on the request's ``scale`` (every step
    of the preparation but the scale's detection works sample by sample)."""
    for start, stop in bounds:
        prepared = model.scorer.prepare(
            samples.rows(start, stop),
            samples.sample_ids[start:stop],
            samples.genes,
            scale,
            str_labels=True,
            model_genes_only=True,
        )
        if samples.report is not None:
            prepared.report = samples.report
        yield prepared


def _sliced(
    prepared: PreparedExpression, bounds: list[tuple[int, int]]
) -> Iterator[PreparedExpression]:
    """Chunks of a request prepared whole."""
    for start, stop in bounds:
        yield replace(
            prepared,
            values=prepared.values[start:stop],
            sample_ids=prepared.sample_ids[start:stop],
        )


def _checked_chunks(
    loaded: LoadedModel,
    samples: SampleMatrix,
    options: PredictOptions,
    settings: ServiceSettings,
    size: int,
) -> tuple[Scale, HarmonizationReport, Callable[[], Iterator[PreparedExpression]]]:
    """The scale of a large request and its prepared chunks, every refusal raised first.

    The scale is detected once on all the values; every chunk is then prepared and its
    coverage checked (and dropped), so the request is never held prepared whole. On any
    refusal the request is prepared whole, as the whole answer does, to raise exactly its
    error (naming the same samples and genes).

    Returns
    -------
    scale : {"counts", "tpm", "log"}
    report : HarmonizationReport
        The identifier report of the request.
    chunks : callable
        A new iterator over the prepared chunks at each call.
    """
    model = loaded.model
    bounds = _chunk_bounds(len(samples.sample_ids), size)
    minimum = _minimum_coverage(options, settings)
    try:
        choice = options.scale or model.scale
        scale: Scale = (
            detect_scale(pd.DataFrame(samples.cells()[None, :])) if choice == "auto" else choice
        )
        refused, report = False, samples.report
        for prepared in _prepared_chunks(model, samples, scale, bounds):
            report = prepared.report  # the same for every chunk: it follows the genes
            refused = refused or bool((model.scorer.prepared_coverage(prepared) < minimum).any())
    except NKPredictError:
        refused = True
    if refused or report is None:
        whole = _checked_input(loaded, samples, options, settings)  # raises the refusal
        return whole.scale, whole.report, lambda: _sliced(whole, bounds)
    return scale, report, lambda: _prepared_chunks(model, samples, scale, bounds)


def _input_chunks(
    model: NKResistanceModel, chunks: Iterator[PreparedExpression], measured: np.ndarray
) -> Iterator[ModelInputs]:
    """:class:`ModelInputs` of each prepared chunk, in request order.

    ``measured`` (n_genes_in,) is updated in place: whether some sample so far measured each
    of the model's input genes (what the harmonization report's missing genes are read from).
    """
    scorer = model.scorer
    for part in chunks:
        genes = scorer.gene_values(part)
        measured |= ~np.isnan(genes).all(axis=0)
        yield ModelInputs(part, genes, scorer.features(genes), scorer)


def _streamed(
    head: dict[str, Any],
    key: str,
    parts: Iterator[list[dict[str, Any]]],
    tail: Callable[[], dict[str, Any]],
) -> Iterator[bytes]:
    """The JSON text of ``head | {key: [*records of parts]} | {"harmonization": tail()}``,
    piece by piece: the same bytes as :func:`dumps` of the whole answer.

    ``tail`` is called after the last part (it may read what computing the parts gathered).
    """
    yield dumps(head)[:-1] + b',"' + key.encode() + b'":['
    separator = b""
    for records in parts:
        yield separator + dumps(records)[1:-1]
        separator = b","
    yield b'],"harmonization":' + dumps(tail()) + b"}"


def _missing_genes(model: NKResistanceModel, measured: np.ndarray) -> list[str]:
    """The model's input genes that no sample measured, from :func:`_input_chunks`'
    ``measured``."""
    return model.scorer.missing(np.where(measured, 0.0, np.nan)[None, :])


def _prediction_records(inputs: ModelInputs) -> list[dict[str, Any]]:
    """One prediction dict per sample of ``inputs``."""
    scorer = inputs.scorer
    margin = scorer.margins(inputs.features)
    predictions = scorer.predictions(
        inputs.prepared.sample_ids, inputs.features, margin, inputs.genes
    )
    return predictions.to_records()


def _predict_stream(
    loaded: LoadedModel, samples: SampleMatrix, options: PredictOptions, settings: ServiceSettings
) -> Iterator[bytes]:
    """The /v1/predict answer of a large request, scored and serialised a chunk at a time
    (validated before this returns)."""
    scale, report, prepared_chunks = _checked_chunks(
        loaded, samples, options, settings, settings.answer_chunk_samples
    )
    model = loaded.model
    measured = np.zeros(len(model.scorer.builder.genes_in_), dtype=bool)
    chunks = _input_chunks(model, prepared_chunks(), measured)
    head = {
        "model": loaded.model_ref(),
        "task": loaded.task,
        "scale": scale,
        "n_samples": len(samples.sample_ids),
    }
    return _streamed(
        head,
        "predictions",
        (_prediction_records(inputs) for inputs in chunks),
        lambda: _harmonization_of(
            report, _missing_genes(model, measured), settings.report_max_items
        ),
    )


def predict_payload(
    loaded: LoadedModel,
    samples: SampleMatrix | pd.DataFrame,
    options: PredictOptions,
    settings: ServiceSettings,
) -> dict[str, Any]:
    """The /v1/predict answer (before serialisation) for ``samples``."""
    inputs = _model_inputs(loaded, samples, options, settings)
    prepared = inputs.prepared
    predictions = _prediction_records(inputs)
    return {
        "model": loaded.model_ref(),
        "task": loaded.task,
        "scale": prepared.scale,
        "n_samples": len(predictions),
        "predictions": predictions,
        "harmonization": _harmonization(inputs, settings.report_max_items),
    }


def predict_json(loaded: LoadedModel, raw: bytes, settings: ServiceSettings) -> tuple[Answer, int]:
    """Parse, prepare, predict and serialise one /v1/predict body; the answer and its number
    of samples.

    More than ``settings.answer_chunk_samples`` samples: the answer is an iterator of JSON
    bytes computed as it is consumed (every refusal raised before this returns).
    """
    samples, options = parse_samples_body(
        raw, settings.max_samples, PredictOptions, loaded.model_genes, loaded.model.scale
    )
    n_samples = len(samples.sample_ids)
    if n_samples > settings.answer_chunk_samples:
        return _predict_stream(loaded, samples, options, settings), n_samples
    payload = predict_payload(loaded, samples, options, settings)
    return dumps(payload), payload["n_samples"]


def _compact(values: np.ndarray, units: list[str], top_n: int) -> list[dict[str, float]]:
    """Per row of ``values`` (samples x units): the ``top_n`` largest |values| by unit, the
    rest summed under :data:`OTHER_UNIT`."""
    if len(units) <= top_n:
        return [dict(zip(units, row, strict=True)) for row in values.tolist()]
    if values.shape[0] == 1:
        return [_compact_row(values[0], units, top_n)]
    order = np.argsort(-np.abs(values), axis=1, kind="stable")
    rows = np.arange(values.shape[0])[:, None]
    top = order[:, :top_n]
    # each row's rest, summed along its contiguous row: the sum of that row's 1-D rest
    rest = values[rows, order[:, top_n:]].sum(axis=1).tolist()
    out = []
    for columns, kept_values, other in zip(
        top.tolist(), values[rows, top].tolist(), rest, strict=True
    ):
        kept = {units[k]: v for k, v in zip(columns, kept_values, strict=True)}
        kept[OTHER_UNIT] = other
        out.append(kept)
    return out


def _compact_row(values: np.ndarray, units: list[str], top_n: int) -> dict[str, float]:
    """:func:`_compact` of one row ``values`` (n_units,), more than ``top_n`` units: the same
    order (a stable sort of the same keys) and the same sum of the rest (the same reduction
    over the same contiguous values), in fewer array operations."""
    order = np.argsort(-np.abs(values), kind="stable")
    rest = float(values[order[top_n:]].sum())
    row = values.tolist()
    kept = {units[k]: row[k] for k in order[:top_n].tolist()}
    kept[OTHER_UNIT] = rest
    return kept


def _explain_chunk(
    loaded: LoadedModel,
    sample_ids: list[str],
    genes: np.ndarray,
    features: np.ndarray,
    levels: tuple[Level, ...],
    drivers_level: Level,
    options: ExplainOptions,
    top_n: int,
) -> list[dict[str, Any]]:
    """One entry per sample: its prediction, attributions per level and top drivers."""
    model = loaded.model
    result = attributions(model, features)
    margin = result.model_output
    # the float32 margin the model predicts with (exact), so probabilities equal /v1/predict's
    predictions = model.scorer.predictions(sample_ids, features, margin.astype(np.float32), genes)
    allocations = level_allocations(model.feature_builder)
    summed = {level: result.contributions @ allocations[level].matrix for level in levels}
    if drivers_level not in summed:
        summed[drivers_level] = result.contributions @ allocations[drivers_level].matrix
    sign, units = resistant_sign(model), output_units(model)
    compact = {level: _compact(summed[level], allocations[level].units, top_n) for level in levels}
    records = predictions.to_records()
    shown = [
        drivers_of(
            summed[drivers_level][i],
            allocations[drivers_level].units,
            drivers_level,
            options.n_drivers,
            sign,
            units,
            prediction["imputed_genes"],
        )
        for i, prediction in enumerate(records)
    ]
    said = sample_words(
        model,
        genes,
        result,
        options.n_drivers,
        shown,
        summed.get("gene"),
        predictions.imputed_genes,
    )
    base, prior = result.base_value, result.prior_part
    for i, (prediction, drivers, words, output, prior_part, trees_part) in enumerate(
        zip(
            records,
            shown,
            said,
            margin.tolist(),
            prior.tolist(),
            (margin - base - prior).tolist(),
            strict=True,
        )
    ):
        prediction.update(
            {
                "base_value": base,
                "model_output": output,
                "prior_part": prior_part,
                "trees_part": trees_part,
                "units": units,
                "attributions": {level: compact[level][i] for level in levels},
                "top_drivers": [
                    {
                        "unit": d.unit,
                        "label": d.label,
                        "contribution": d.contribution,
                        "direction": d.direction,
                        "sentence": d.sentence(),
                    }
                    for d in drivers
                ],
                "driver_sentences": words.sentences(),
            }
        )
    return records


def explain_json(loaded: LoadedModel, raw: bytes, settings: ServiceSettings) -> tuple[Answer, int]:
    """Parse, prepare, explain and serialise one /v1/explain body; the answer and its number
    of samples (an iterator of JSON bytes beyond ``settings.answer_chunk_samples`` samples,
    as :func:`predict_json`)."""
    samples, options = parse_samples_body(
        raw, settings.max_samples, ExplainOptions, loaded.model_genes, loaded.model.scale
    )
    levels: tuple[Level, ...] = AGGREGATE_LEVELS if options.level == "all" else (options.level,)
    drivers_level: Level = "axis" if options.level == "all" else options.level
    top_n = options.top_n or settings.explain_top_n

    def explained(
        sample_ids: list[str], genes: np.ndarray, features: np.ndarray
    ) -> list[dict[str, Any]]:
        return _explain_chunk(
            loaded,
            sample_ids,
            genes,
            features,
            levels,
            drivers_level,
            options,
            top_n,
        )

    def head(scale: Scale) -> dict[str, Any]:
        return {
            "model": loaded.model_ref(),
            "task": loaded.task,
            "scale": scale,
            "n_samples": len(samples.sample_ids),
            "levels": list(levels),
            "top_n": top_n,
            "drivers_level": drivers_level,
        }

    model, limit = loaded.model, settings.report_max_items
    n_samples = len(samples.sample_ids)
    if n_samples > settings.answer_chunk_samples:
        # a multiple of EXPLAIN_CHUNK: explained in the slices the whole answer has too
        size = -(-settings.answer_chunk_samples // EXPLAIN_CHUNK) * EXPLAIN_CHUNK
        scale, report, prepared_chunks = _checked_chunks(loaded, samples, options, settings, size)
        measured = np.zeros(len(model.scorer.builder.genes_in_), dtype=bool)
        chunks = _input_chunks(model, prepared_chunks(), measured)
        streamed = _streamed(
            head(scale),
            "explanations",
            (
                explained(
                    c.prepared.sample_ids[start : start + EXPLAIN_CHUNK],
                    c.genes[start : start + EXPLAIN_CHUNK],
                    c.features[start : start + EXPLAIN_CHUNK],
                )
                for c in chunks
                for start in range(0, c.prepared.n_samples, EXPLAIN_CHUNK)
            ),
            lambda: _harmonization_of(report, _missing_genes(model, measured), limit),
        )
        return streamed, n_samples
    inputs = _model_inputs(loaded, samples, options, settings)
    prepared = inputs.prepared
    explanations: list[dict[str, Any]] = []
    for start in range(0, n_samples, EXPLAIN_CHUNK):
        rows = slice(start, start + EXPLAIN_CHUNK)
        explanations += explained(
            prepared.sample_ids[rows], inputs.genes[rows], inputs.features[rows]
        )
    payload = {
        **head(prepared.scale),
        "explanations": explanations,
        "harmonization": _harmonization(inputs, limit),
    }
    return dumps(payload), n_samples


def predict_upload(
    loaded: LoadedModel,
    upload: UploadFile,
    options: PredictOptions,
    orientation: Orientation,
    settings: ServiceSettings,
) -> tuple[bytes, int]:
    """Read an uploaded matrix (:func:`service.uploads.read_upload`), predict and serialise;
    the answer and its number of samples (blocking: run it in a thread)."""
    payload = predict_payload(loaded, read_upload(upload, orientation, settings), options, settings)
    return dumps(payload), payload["n_samples"]
