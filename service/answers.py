"""From a request's samples to its answer: preparation, coverage, predictions, explanations.

Every function here is plain computation on the fitted model (no request, no event loop): it
calls only the library (the fitted model's :class:`~nkpredict.fast.scoring.ArrayScorer` and
:func:`nkpredict.explain.attributions.attributions`), where the speed of the hot path lives,
and returns JSON bytes with the number of samples answered. Each answer uses the
:class:`~service.state.LoadedModel` it is given from start to end, even if an admin reload
swaps the served model meanwhile.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import islice
from typing import Any

import numpy as np
import orjson
import pandas as pd
from fastapi import UploadFile

from nkpredict.data.expression import PreparedExpression
from nkpredict.data.identifiers import HarmonizationReport
from nkpredict.exceptions import CoverageError
from nkpredict.explain.attributions import (
    attributions,
    drivers_of,
    level_allocations,
    output_units,
    resistant_sign,
)
from nkpredict.explain.words import sample_words
from nkpredict.model.fitted import NKResistanceModel
from nkpredict.vocabulary import AGGREGATE_LEVELS, Level, Orientation, ScaleChoice
from service.bodies import SampleMatrix, parse_samples_body
from service.config import ServiceSettings
from service.errors import ServiceError
from service.schemas import OTHER_UNIT, ExplainOptions, PredictOptions
from service.state import LoadedModel
from service.uploads import read_upload

__all__ = [
    "EXPLAIN_CHUNK",
    "SPARSE_INPUT_FACTOR",
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


def dumps(payload: dict[str, Any]) -> bytes:
    """``payload`` as JSON bytes (numpy values included)."""
    return orjson.dumps(payload, option=orjson.OPT_SERIALIZE_NUMPY)


def _prepare(
    model: NKResistanceModel, samples: SampleMatrix | pd.DataFrame, scale: ScaleChoice | None
) -> PreparedExpression:
    """The model's own preparation, with the request's scale when it names one.

    JSON bodies arrive as arrays (:class:`~service.bodies.SampleMatrix`) and go through the
    model's array path; uploaded files arrive as DataFrames.
    """
    if isinstance(samples, SampleMatrix):
        return model.scorer.prepare(
            samples.values, samples.sample_ids, samples.genes, scale, str_labels=True
        )
    return model.prepare(samples, scale=scale)


@dataclass(frozen=True, eq=False)
class ModelInputs:
    """What every answer of a request is computed from, each computed once.

    Attributes
    ----------
    prepared : PreparedExpression
    genes : ndarray, shape (n_samples, n_genes_in)
        ``model.scorer.gene_values(prepared)``.
    features : ndarray, shape (n_samples, n_features)
        ``model.scorer.features(genes)``; holds the coverage too.
    """

    prepared: PreparedExpression
    genes: np.ndarray
    features: np.ndarray


def _check_coverage(
    model: NKResistanceModel,
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
    if features is not None and (model.scorer.coverage(features) >= minimum).all():
        return
    try:
        model.scorer.check_coverage(prepared, minimum)
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


def _harmonization(model: NKResistanceModel, inputs: ModelInputs, limit: int) -> dict[str, Any]:
    """The identifier report of a request, with the model genes it lacks."""
    report: HarmonizationReport = inputs.prepared.report
    missing = model.scorer.missing(inputs.genes)
    renamed, cut_renamed = _cap_dict(report.renamed, limit)
    unmapped, cut_unmapped = _cap_list(report.unmapped, limit)
    ambiguous, cut_ambiguous = _cap_dict(report.ambiguous, limit)
    collided, cut_collided = _cap_dict(report.collided, limit)
    return {
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
        "n_missing_model_genes": len(missing),
        "missing_model_genes": missing,
        "truncated": cut_renamed or cut_unmapped or cut_ambiguous or cut_collided,
    }


def _model_inputs(
    loaded: LoadedModel,
    samples: SampleMatrix | pd.DataFrame,
    options: PredictOptions,
    settings: ServiceSettings,
) -> ModelInputs:
    """Prepare the samples and compute their features; 422 when coverage is too low."""
    model = loaded.model
    prepared = _prepare(model, samples, options.scale)
    if isinstance(samples, SampleMatrix) and samples.report is not None:
        prepared.report = samples.report  # a reduced sparse body: the report of all its genes
    minimum = settings.min_coverage if options.min_coverage is None else options.min_coverage
    limit = settings.report_max_items
    scorer = model.scorer
    n_genes_in = len(scorer.builder.genes_in_)
    if prepared.n_samples * n_genes_in > SPARSE_INPUT_FACTOR * prepared.values.size:
        # the model's arrays would dwarf the input: refuse low coverage before building them
        _check_coverage(model, prepared, minimum, limit)
    genes = scorer.gene_values(prepared)
    features = scorer.features(genes)
    _check_coverage(model, prepared, minimum, limit, features)
    return ModelInputs(prepared, genes, features)


def predict_payload(
    loaded: LoadedModel,
    samples: SampleMatrix | pd.DataFrame,
    options: PredictOptions,
    settings: ServiceSettings,
) -> dict[str, Any]:
    """The /v1/predict answer (before serialisation) for ``samples``."""
    inputs = _model_inputs(loaded, samples, options, settings)
    prepared, model = inputs.prepared, loaded.model
    scorer = model.scorer
    margin = scorer.margins(inputs.features)
    predictions = scorer.predictions(
        prepared.sample_ids, inputs.features, margin, inputs.genes
    ).to_records()
    return {
        "model": loaded.model_ref(),
        "task": loaded.task,
        "scale": prepared.scale,
        "n_samples": len(predictions),
        "predictions": predictions,
        "harmonization": _harmonization(model, inputs, settings.report_max_items),
    }


def predict_json(loaded: LoadedModel, raw: bytes, settings: ServiceSettings) -> tuple[bytes, int]:
    """Parse, prepare, predict and serialise one /v1/predict body; the answer and its number
    of samples."""
    samples, options = parse_samples_body(
        raw, settings.max_samples, PredictOptions, loaded.model_genes, loaded.model.scale
    )
    payload = predict_payload(loaded, samples, options, settings)
    return dumps(payload), payload["n_samples"]


def _compact(values: np.ndarray, units: list[str], top_n: int) -> dict[str, float]:
    """The ``top_n`` largest |values| by unit, the rest summed under :data:`OTHER_UNIT`."""
    if len(units) <= top_n:
        return {unit: float(v) for unit, v in zip(units, values, strict=True)}
    order = np.argsort(-np.abs(values), kind="stable")
    kept = {units[k]: float(values[k]) for k in order[:top_n]}
    kept[OTHER_UNIT] = float(values[order[top_n:]].sum())
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
    out, shown = [], []
    for i, prediction in enumerate(predictions.to_records()):
        drivers = drivers_of(
            summed[drivers_level][i],
            allocations[drivers_level].units,
            drivers_level,
            options.n_drivers,
            sign,
            units,
            prediction["imputed_genes"],
        )
        prediction.update(
            {
                "base_value": result.base_value,
                "model_output": float(margin[i]),
                "prior_part": float(result.prior_part[i]),
                "trees_part": float(margin[i] - result.base_value - result.prior_part[i]),
                "units": units,
                "attributions": {
                    level: _compact(summed[level][i], allocations[level].units, top_n)
                    for level in levels
                },
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
            }
        )
        out.append(prediction)
        shown.append(drivers)
    said = sample_words(model, genes, result, options.n_drivers, shown)
    for prediction, words in zip(out, said, strict=True):
        prediction["driver_sentences"] = words.sentences()
    return out


def explain_json(loaded: LoadedModel, raw: bytes, settings: ServiceSettings) -> tuple[bytes, int]:
    """Parse, prepare, explain and serialise one /v1/explain body; the answer and its number
    of samples."""
    samples, options = parse_samples_body(
        raw, settings.max_samples, ExplainOptions, loaded.model_genes, loaded.model.scale
    )
    inputs = _model_inputs(loaded, samples, options, settings)
    prepared = inputs.prepared
    levels: tuple[Level, ...] = AGGREGATE_LEVELS if options.level == "all" else (options.level,)
    drivers_level: Level = "axis" if options.level == "all" else options.level
    top_n = options.top_n or settings.explain_top_n
    explanations: list[dict[str, Any]] = []
    n_samples = prepared.n_samples
    for start in range(0, n_samples, EXPLAIN_CHUNK):
        rows = slice(start, start + EXPLAIN_CHUNK)
        explanations += _explain_chunk(
            loaded,
            prepared.sample_ids[rows],
            inputs.genes[rows],
            inputs.features[rows],
            levels,
            drivers_level,
            options,
            top_n,
        )
    payload = {
        "model": loaded.model_ref(),
        "task": loaded.task,
        "scale": prepared.scale,
        "n_samples": n_samples,
        "levels": list(levels),
        "top_n": top_n,
        "drivers_level": drivers_level,
        "explanations": explanations,
        "harmonization": _harmonization(loaded.model, inputs, settings.report_max_items),
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
