"""The HTTP endpoints. They only call the fitted model object; no feature code lives here.

Routes
------
==========================  ======  ===========================================================
``GET /health``             open    the process is alive
``GET /ready``              open    a model is loaded (503 ``model_not_loaded`` otherwise)
``GET /metrics``            open    Prometheus text exposition
``GET /v1/model``           key     what model is served: name, version, run, data, metrics
``POST /v1/predict``        key     JSON samples -> probability/score, call, coverage
``POST /v1/predict/file``   key     CSV/TSV/Parquet upload (samples as rows) -> the same
``POST /v1/explain``        key     JSON samples -> attributions at gene/axis/pathway level
``POST /v1/admin/reload``   admin   load the model again (or another URI) and swap it in
==========================  ======  ===========================================================

"key": ``X-API-Key`` needed when ``NKP_API_KEY`` is set; "admin": always needs the admin key
(see :mod:`service.security`).

Model calls (parsing, preparation, prediction, TreeSHAP) are CPU-bound. Small bodies (up to
``NKP_INLINE_MAX_BYTES``, a sixteenth of it for explanations) are answered on the event loop:
a single sample costs about 0.1 ms to predict and 0.2 ms to explain, less than the hop to a
worker thread. Larger ones run in the threadpool, so the event loop keeps answering
(``/health`` stays fast under load); see :func:`run_model_call`. Every request uses the model
it got at its start, even if an admin reload swaps the model meanwhile.

The routes only call the library (``NKResistanceModel.prepare_values`` / ``prepare``,
``gene_values``, ``margin_values``, ``predictions_of``,
:func:`nkpredict.explain.attributions.attributions_of`):
the speed of the hot path lives there. ``/v1/predict`` and ``/v1/explain`` are
:class:`DirectRoute` routes matched first (see :func:`service.app.create_app`): the framework
then costs no more than a bare FastAPI endpoint (``benchmarks/service_load.py``).
"""

from __future__ import annotations

import gzip
import logging
import re
import shutil
import tempfile
import time
import zlib
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path, PurePath
from typing import Any, Literal, TypeVar

import numpy as np
import orjson
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from fastapi import APIRouter, Body, Depends, File, Form, Request, Response, Security, UploadFile
from fastapi.routing import APIRoute
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool
from starlette.types import Receive, Scope, Send

from nkpredict.data.expression import PreparedExpression, read_expression
from nkpredict.data.identifiers import HarmonizationReport
from nkpredict.exceptions import CoverageError, NKPredictError
from nkpredict.explain.attributions import (
    Level,
    attributions_of,
    drivers_of,
    level_allocations,
    output_units,
    resistant_sign,
)
from nkpredict.model.fitted import NKResistanceModel
from nkpredict.settings import Settings
from service.errors import ServiceError, library_error_status
from service.schemas import (
    DEFAULT_LEVELS,
    OTHER_UNIT,
    ErrorResponse,
    ExplainOptions,
    ExplainRequest,
    ExplainResponse,
    HealthResponse,
    ModelInfo,
    ModelRef,
    PredictOptions,
    PredictRequest,
    PredictResponse,
    ReadyResponse,
    ReloadRequest,
    ReloadResponse,
    SampleMatrix,
    ScaleName,
    explain_examples,
    parse_samples_body,
    predict_examples,
)
from service.security import require_admin_key, require_api_key
from service.state import (
    LoadedModel,
    ModelHolder,
    get_holder,
    get_loaded_model,
    get_settings,
    redact_uri,
)

logger = logging.getLogger(__name__)

JSON_MEDIA_TYPE = "application/json"
T = TypeVar("T")
EXPLAIN_CHUNK = 256
"""Samples explained per TreeSHAP call (keeps per-sample driver look-ups cheap)."""
CHUNK_BYTES = 1 << 20
UPLOAD_SUFFIXES = (".csv", ".tsv", ".txt", ".tab", ".parquet", ".pq")
"""Accepted upload extensions; the text formats may also be gzipped (``.csv.gz``)."""


class DirectRoute(APIRoute):
    """A route whose endpoint takes the :class:`Request` and returns a :class:`Response`.

    FastAPI documents it like any route (from the decorator's arguments and
    ``openapi_extra``) but calls the endpoint directly: no dependency resolution, body
    handling or response validation per request, which cost tens of microseconds. The
    endpoint does its own parsing, key check and serialisation.
    """

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        """The endpoint itself."""
        endpoint: Callable[[Request], Coroutine[Any, Any, Response]] = self.endpoint
        return endpoint

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Answer with the endpoint's response (other methods: the usual 405).

        Errors propagate to the app's exception middleware, which answers them with the
        app's handlers; no per-request exit stacks are opened (there are no dependencies).
        """
        if self.methods is None or scope["method"] not in self.methods:
            await super().handle(scope, receive, send)
            return
        response = await self.endpoint(Request(scope, receive, send))
        await response(scope, receive, send)


probe_router = APIRouter(tags=["operations"])
model_router = APIRouter(prefix="/v1", route_class=DirectRoute)
"""``/v1/predict`` and ``/v1/explain``: direct routes (see :func:`serving_model`)."""
api_router = APIRouter(prefix="/v1", dependencies=[Security(require_api_key)])
admin_router = APIRouter(
    prefix="/v1/admin", tags=["admin"], dependencies=[Security(require_admin_key)]
)


def _error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    return {status: {"model": ErrorResponse} for status in statuses}


def _json_body_doc(model: type[BaseModel], examples: dict[str, Any]) -> dict[str, Any]:
    """OpenAPI request body for routes that parse their JSON body themselves."""
    return {
        "requestBody": {
            "required": True,
            "content": {
                JSON_MEDIA_TYPE: {"schema": model.model_json_schema(), "examples": examples}
            },
        }
    }


def serving_model(request: Request) -> LoadedModel:
    """The API-key check and the model of :func:`get_loaded_model`, as one plain call.

    The prediction routes take almost all the traffic and their own work is a fraction of a
    millisecond; each FastAPI dependency costs about 10 microseconds to resolve, so these
    routes use none and call this instead (their OpenAPI entries name the key all the same,
    see :data:`API_KEY_REQUIRED`).
    """
    require_api_key.check(request)
    holder: ModelHolder = request.app.state.holder
    return holder.get()


API_KEY_REQUIRED: dict[str, Any] = {"security": [{require_api_key.scheme_name: []}]}
"""OpenAPI security requirement of the routes that check the key in :func:`serving_model`."""


def _dumps(payload: dict[str, Any]) -> bytes:
    return orjson.dumps(payload, option=orjson.OPT_SERIALIZE_NUMPY)


def _json(content: bytes, status_code: int = 200) -> Response:
    return Response(content=content, status_code=status_code, media_type=JSON_MEDIA_TYPE)


# --------------------------------------------------------------------------- model calls


EXPLAIN_INLINE_FRACTION = 16
"""Explanations run inline up to ``inline_max_bytes // 16`` (about ten times the work of a
prediction per sample)."""


async def run_model_call(limit: int, body_bytes: int, call: Callable[..., T], *args: Any) -> T:
    """Run ``call(*args)`` on the event loop for bodies up to ``limit`` bytes, else in the
    threadpool.

    A single-sample prediction takes about 0.1 ms of CPU, a 100-sample batch a few
    milliseconds: less than the hop to a worker thread and back costs in throughput (the
    two threads then contend for the GIL). Larger bodies run in the threadpool so that the
    event loop keeps answering (``/health`` stays fast) while they are computed.
    """
    if body_bytes <= limit:
        return call(*args)
    return await run_in_threadpool(call, *args)


def _prepare(
    model: NKResistanceModel, samples: SampleMatrix | pd.DataFrame, scale: ScaleName | None
) -> PreparedExpression:
    """The model's own preparation, with the request's scale when it names one.

    JSON bodies arrive as arrays (:class:`~service.schemas.SampleMatrix`) and go through the
    model's array path; uploaded files arrive as DataFrames.
    """
    if isinstance(samples, SampleMatrix):
        return model.prepare_values(samples.values, samples.sample_ids, samples.genes, scale)
    return model.prepare(samples, scale=scale)


@dataclass(frozen=True, eq=False)
class ModelInputs:
    """What every answer of a request is computed from, each computed once.

    Attributes
    ----------
    prepared : PreparedExpression
    genes : ndarray, shape (n_samples, n_genes_in)
        ``model.gene_values(prepared)``.
    features : ndarray, shape (n_samples, n_features)
        ``model.feature_builder.transform_values(genes)``; holds the coverage too.
    """

    prepared: PreparedExpression
    genes: np.ndarray
    features: np.ndarray


def _check_coverage(
    model: NKResistanceModel, inputs: ModelInputs, minimum: float, limit: int
) -> None:
    """The model's coverage check; on failure a 422 naming (up to ``limit``) samples and the
    missing genes."""
    coverage = inputs.features[:, model.feature_builder.coverage_column]
    if (coverage >= minimum).all():
        return  # the usual case, without building the check's Series
    prepared = inputs.prepared
    try:
        model.check_coverage(prepared, minimum)
    except CoverageError as exc:
        low = np.flatnonzero(coverage < minimum)
        raise ServiceError(
            422,
            "coverage_too_low",
            str(exc),
            {
                "min_coverage": minimum,
                "n_samples": len(low),
                "samples": {prepared.sample_ids[i]: float(coverage[i]) for i in low[:limit]},
                "missing_genes": model.feature_builder.missing_of(inputs.genes[low]),
                "truncated": len(low) > limit,
            },
        ) from None


def _cap_list(items: list[Any], limit: int) -> tuple[list[Any], bool]:
    return items[:limit], len(items) > limit


def _cap_dict(items: dict[str, Any], limit: int) -> tuple[dict[str, Any], bool]:
    if len(items) <= limit:
        return items, False
    return dict(list(items.items())[:limit]), True


def _harmonization(model: NKResistanceModel, inputs: ModelInputs, limit: int) -> dict[str, Any]:
    """The identifier report of a request, with the model genes it lacks."""
    report: HarmonizationReport = inputs.prepared.report
    missing = model.feature_builder.missing_of(inputs.genes)
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
    settings: Settings,
) -> ModelInputs:
    """Prepare the samples and compute their features; 422 when coverage is too low."""
    model = loaded.model
    prepared = _prepare(model, samples, options.scale)
    genes = model.gene_values(prepared)
    inputs = ModelInputs(prepared, genes, model.feature_builder.transform_values(genes))
    minimum = settings.min_coverage if options.min_coverage is None else options.min_coverage
    _check_coverage(model, inputs, minimum, settings.report_max_items)
    return inputs


def _predict_payload(
    loaded: LoadedModel,
    samples: SampleMatrix | pd.DataFrame,
    options: PredictOptions,
    settings: Settings,
) -> dict[str, Any]:
    inputs = _model_inputs(loaded, samples, options, settings)
    prepared, model = inputs.prepared, loaded.model
    margin = model.margin_values(inputs.features)
    predictions = model.predictions_of(prepared.sample_ids, inputs.features, margin).to_records()
    return {
        "model": loaded.model_ref(),
        "task": loaded.task,
        "scale": prepared.scale,
        "n_samples": len(predictions),
        "predictions": predictions,
        "harmonization": _harmonization(model, inputs, settings.report_max_items),
    }


def predict_json(loaded: LoadedModel, raw: bytes, settings: Settings) -> tuple[bytes, int]:
    """Parse, prepare, predict and serialise one /v1/predict body (runs in the threadpool)."""
    samples, options = parse_samples_body(raw, settings.max_samples, PredictOptions)
    payload = _predict_payload(loaded, samples, options, settings)
    return _dumps(payload), payload["n_samples"]


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
    features: np.ndarray,
    levels: tuple[Level, ...],
    drivers_level: Level,
    options: ExplainOptions,
    top_n: int,
) -> list[dict[str, Any]]:
    """One entry per sample: its prediction, attributions per level and top drivers."""
    model = loaded.model
    result = attributions_of(model, features)
    margin = result.model_output
    # the float32 margin the model predicts with (exact), so probabilities equal /v1/predict's
    predictions = model.predictions_of(sample_ids, features, margin.astype(np.float32))
    allocations = level_allocations(model.feature_builder)
    summed = {level: result.contributions @ allocations[level].matrix for level in levels}
    if drivers_level not in summed:
        summed[drivers_level] = result.contributions @ allocations[drivers_level].matrix
    sign, units = resistant_sign(model), output_units(model)
    out = []
    for i, prediction in enumerate(predictions.to_records()):
        del prediction["coverage"]
        drivers = drivers_of(
            summed[drivers_level][i],
            allocations[drivers_level].units,
            drivers_level,
            options.n_drivers,
            sign,
            units,
        )
        prediction.update(
            {
                "base_value": result.base_value,
                "model_output": float(margin[i]),
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
    return out


def explain_json(loaded: LoadedModel, raw: bytes, settings: Settings) -> tuple[bytes, int]:
    """Parse, prepare, explain and serialise one /v1/explain body (runs in the threadpool)."""
    samples, options = parse_samples_body(raw, settings.max_samples, ExplainOptions)
    inputs = _model_inputs(loaded, samples, options, settings)
    prepared = inputs.prepared
    levels = DEFAULT_LEVELS if options.level == "all" else (options.level,)
    drivers_level: Level = "axis" if options.level == "all" else options.level
    top_n = options.top_n or settings.explain_top_n
    explanations: list[dict[str, Any]] = []
    n_samples = prepared.n_samples
    for start in range(0, n_samples, EXPLAIN_CHUNK):
        rows = slice(start, start + EXPLAIN_CHUNK)
        explanations += _explain_chunk(
            loaded,
            prepared.sample_ids[rows],
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
    return _dumps(payload), n_samples


# --------------------------------------------------------------------------- uploads


def _upload_suffix(filename: str) -> str:
    """``.csv``, ``.tsv.gz``, ``.parquet``...: the part of the name that picks the reader."""
    suffixes = [s.lower() for s in PurePath(filename).suffixes]
    gzipped = suffixes[-1:] == [".gz"]
    if gzipped:
        suffixes = suffixes[:-1]
    ext = suffixes[-1] if suffixes else ""
    if ext not in UPLOAD_SUFFIXES or (gzipped and ext in (".parquet", ".pq")):
        raise ServiceError(
            415,
            "unsupported_file_type",
            f"cannot read {filename!r}: expected a file ending in "
            f"{', '.join(UPLOAD_SUFFIXES)} (text formats may end in .gz)",
            {"filename": filename, "accepted": list(UPLOAD_SUFFIXES)},
        )
    return ext + (".gz" if gzipped else "")


def _safe_name(filename: str | None) -> str:
    name = PurePath(filename or "upload").name
    return re.sub(r"[^\w.\-]+", "_", name)[:100] or "upload"


def _too_expanded(name: str, limit: int) -> ServiceError:
    return ServiceError(
        413,
        "upload_too_large",
        f"{name} expands to more than {limit} bytes uncompressed (NKP_MAX_UPLOAD_EXPANDED_BYTES)",
        {"filename": name, "max_upload_expanded_bytes": limit},
    )


def _store_upload(upload: UploadFile, directory: Path, suffix: str, name: str, limit: int) -> Path:
    """Write the upload into ``directory``; gunzip text files on the way, at most ``limit``
    bytes, so that a small compressed upload cannot expand into gigabytes in memory."""
    if not suffix.endswith(".gz"):
        path = directory / f"upload{suffix}"
        with path.open("wb") as target:
            shutil.copyfileobj(upload.file, target, length=CHUNK_BYTES)
        return path
    path = directory / f"upload{suffix.removesuffix('.gz')}"
    written = 0
    try:
        with gzip.GzipFile(fileobj=upload.file, mode="rb") as source, path.open("wb") as target:
            while chunk := source.read(CHUNK_BYTES):
                written += len(chunk)
                if written > limit:
                    raise _too_expanded(name, limit)
                target.write(chunk)
    except (OSError, EOFError, zlib.error) as exc:
        raise ServiceError(
            422, "invalid_expression", f"{name} is not a valid gzip file: {exc}", {"filename": name}
        ) from None
    return path


def _check_parquet_size(path: Path, name: str, limit: int) -> None:
    """Refuse Parquet files whose cells would take more than ``limit`` bytes as float64.

    Parquet's own sizes are of encoded pages (a column of zeros encodes to almost nothing),
    so the bound uses rows x columns from the file metadata, read before any data.
    """
    try:
        metadata = pq.read_metadata(path)
    except (OSError, ValueError, pa.ArrowException):
        return  # not Parquet after all: read_expression reports it
    expanded = metadata.num_rows * metadata.num_columns * 8  # float64 cells once read
    if expanded > limit:
        raise _too_expanded(name, limit)


def predict_upload(
    loaded: LoadedModel,
    upload: UploadFile,
    options: PredictOptions,
    orientation: Literal["samples", "genes", "auto"],
    settings: Settings,
) -> tuple[bytes, int]:
    """Read an uploaded matrix from a private temporary file and predict (threadpool)."""
    name = _safe_name(upload.filename)
    suffix = _upload_suffix(name)
    limit = settings.max_upload_expanded_bytes
    with tempfile.TemporaryDirectory(prefix="nkpredict-upload-") as tmp:
        path = _store_upload(upload, Path(tmp), suffix, name, limit)
        if suffix in (".parquet", ".pq"):
            _check_parquet_size(path, name, limit)
        try:
            frame = read_expression(path, orientation=orientation)
        except NKPredictError as exc:
            status, code = library_error_status(exc)
            message = str(exc).replace(str(path), name)
            raise ServiceError(status, code, message, {"filename": name}) from None
    n_samples = frame.shape[0]
    if n_samples > settings.max_samples:
        raise ServiceError(
            413,
            "too_many_samples",
            f"{name} holds {n_samples} samples; the limit is {settings.max_samples}",
            {"n_samples": n_samples, "max_samples": settings.max_samples},
        )
    payload = _predict_payload(loaded, frame, options, settings)
    return _dumps(payload), payload["n_samples"]


# --------------------------------------------------------------------------- probes


@probe_router.get("/health", response_model=HealthResponse, summary="Liveness (no auth)")
async def health() -> HealthResponse:
    """The process is up and the event loop answers; says nothing about the model."""
    return HealthResponse()


@probe_router.get(
    "/ready",
    response_model=ReadyResponse,
    summary="Readiness: a model is loaded (no auth)",
    responses=_error_responses(503),
)
async def ready(loaded: LoadedModel = Depends(get_loaded_model)) -> ReadyResponse:
    """200 once a model is loaded and serving, 503 ``model_not_loaded`` before."""
    return ReadyResponse(model=ModelRef.model_validate(loaded.model_ref()))


@probe_router.get(
    "/metrics",
    summary="Prometheus metrics (no auth)",
    response_class=Response,
    responses={200: {"content": {"text/plain": {}}}},
)
async def metrics(request: Request) -> Response:
    """Request counts by route and status, latency histogram, errors by code, reloads."""
    content, content_type = request.app.state.metrics.render()
    return Response(content=content, media_type=content_type)


# --------------------------------------------------------------------------- the API


async def _answer_samples(
    request: Request,
    endpoint: str,
    compute: Callable[[LoadedModel, bytes, Settings], tuple[bytes, int]],
    inline_fraction: int,
) -> Response:
    """Check the key, read the JSON body, ``compute`` the answer (inline for bodies up to
    ``NKP_INLINE_MAX_BYTES // inline_fraction``), count the samples of ``endpoint``."""
    loaded = serving_model(request)
    settings: Settings = request.app.state.settings
    raw = await request.body()
    limit = settings.inline_max_bytes // inline_fraction
    content, n_samples = await run_model_call(limit, len(raw), compute, loaded, raw, settings)
    request.app.state.metrics.count_samples(endpoint, n_samples)
    return _json(content)


@model_router.post(
    "/predict",
    tags=["predict"],
    summary="Predict NK resistance of samples sent as JSON",
    response_model=None,
    responses={
        200: {"model": PredictResponse, "description": "One prediction per sample."},
        **_error_responses(400, 401, 413, 422, 503),
    },
    openapi_extra=_json_body_doc(PredictRequest, predict_examples()) | API_KEY_REQUIRED,
)
async def predict(request: Request) -> Response:
    """Probability (classification) or score (regression), call and gene coverage per sample,
    with the model that answered, the input scale and the gene-identifier report."""
    return await _answer_samples(request, "predict", predict_json, inline_fraction=1)


@model_router.post(
    "/explain",
    tags=["explain"],
    summary="Explain predictions: attributions to genes, NK axes and pathways",
    response_model=None,
    responses={
        200: {"model": ExplainResponse, "description": "One explanation per sample."},
        **_error_responses(400, 401, 413, 422, 503),
    },
    openapi_extra=_json_body_doc(ExplainRequest, explain_examples()) | API_KEY_REQUIRED,
)
async def explain_samples(request: Request) -> Response:
    """TreeSHAP attributions summed exactly to gene, axis and pathway level.

    Per sample and level the ``top_n`` units with the largest |attribution| are listed and
    the others summed under ``"<other>"``, so ``base_value + sum(attributions[level])`` equals
    ``model_output`` (log-odds for classification) at every level. ``top_drivers`` puts the
    largest axis-level contributions (or those of the requested level) into words.
    """
    return await _answer_samples(
        request, "explain", explain_json, inline_fraction=EXPLAIN_INLINE_FRACTION
    )


@api_router.post(
    "/predict/file",
    tags=["predict"],
    summary="Predict NK resistance of an uploaded expression file",
    response_model=None,
    responses={
        200: {"model": PredictResponse, "description": "One prediction per sample."},
        **_error_responses(400, 401, 413, 415, 422, 503),
    },
)
async def predict_file(
    request: Request,
    file: UploadFile = File(
        description="CSV, TSV (.tsv/.txt/.tab, optionally .gz) or Parquet; samples as rows, "
        "the first column (or the stored index) holds the sample IDs."
    ),
    scale: ScaleName | None = Form(default=None, description="Default: the model's (auto)."),
    min_coverage: float | None = Form(default=None, ge=0.0, le=1.0),
    orientation: Literal["samples", "genes", "auto"] = Form(
        default="samples", description="What the rows are; 'auto' guesses from the labels."
    ),
    loaded: LoadedModel = Depends(get_loaded_model),
    settings: Settings = Depends(get_settings),
) -> Response:
    """Batch prediction from a file; same answer as ``/v1/predict``."""
    options = PredictOptions(scale=scale, min_coverage=min_coverage)
    try:
        content, n_samples = await run_in_threadpool(
            predict_upload, loaded, file, options, orientation, settings
        )
    finally:
        await file.close()
    request.app.state.metrics.count_samples("predict_file", n_samples)
    return _json(content)


@api_router.get(
    "/model",
    response_model=ModelInfo,
    tags=["model"],
    summary="The model being served",
    responses=_error_responses(401, 503),
)
async def model_info(loaded: LoadedModel = Depends(get_loaded_model)) -> dict[str, Any]:
    """Registered name, version, run, training-data fingerprint, label definition, metrics,
    number of features and catalogue version."""
    return {"model": loaded.model_ref(), "loaded_at": loaded.loaded_at, **loaded.info}


# --------------------------------------------------------------------------- admin


@admin_router.post(
    "/reload",
    response_model=ReloadResponse,
    summary="Load the model again (or another one) and swap it in",
    responses=_error_responses(400, 401, 403, 502),
)
async def reload_model(
    request: Request,
    body: ReloadRequest | None = Body(default=None),
    holder: ModelHolder = Depends(get_holder),
    settings: Settings = Depends(get_settings),
) -> ReloadResponse:
    """Re-resolve ``NKP_MODEL_URI`` (e.g. a moved ``@champion`` alias) or load
    ``body.model_uri``, then swap atomically: running requests finish on the old model.

    On failure the old model keeps serving and the answer is 502 ``reload_failed``.
    """
    uri = body.model_uri if body is not None and body.model_uri else settings.model_uri
    reloads = request.app.state.metrics.reloads
    start = time.perf_counter()
    try:
        loaded, previous = await run_in_threadpool(holder.load, uri)
    except (NKPredictError, OSError, ValueError, KeyError, TypeError) as exc:
        reloads.labels("failure").inc()
        current = holder.current
        logger.warning("reload of %s failed, old model kept: %s", redact_uri(uri), exc)
        raise ServiceError(
            502,
            "reload_failed",
            f"could not load {redact_uri(uri)}: {exc}; the previous model keeps serving",
            {
                "model_uri": redact_uri(uri),
                "serving": None if current is None else current.model_ref(),
            },
        ) from None
    reloads.labels("success").inc()
    return ReloadResponse(
        model=ModelRef.model_validate(loaded.model_ref()),
        previous=None if previous is None else ModelRef.model_validate(previous.model_ref()),
        seconds=time.perf_counter() - start,
    )
