"""Scoring routes: ``POST /v1/predict``, ``POST /v1/explain`` and ``POST /v1/predict/file``.

The first two are direct routes (:mod:`service.api.direct`) of :data:`direct_router`, which
the app puts in front of every other route; the upload route is an ordinary FastAPI route of
:data:`router` (form parsing), behind the API-key dependency.

Model calls (parsing, preparation, prediction, TreeSHAP) are CPU-bound. Small bodies (up to
``NKP_INLINE_MAX_BYTES``, a sixteenth of it for explanations) are answered on the event loop:
a single sample costs about 0.1 ms to predict and 0.2 ms to explain, less than the hop to a
worker thread. Larger ones, and every upload, run in the threadpool, so the event loop keeps
answering (``/health`` stays fast under load); see :func:`run_model_call`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from fastapi import APIRouter, Depends, File, Form, Request, Response, Security, UploadFile
from starlette.concurrency import run_in_threadpool

from nkpredict.vocabulary import Orientation, ScaleChoice
from service.answers import Answer, explain_json, predict_json, predict_upload
from service.api.direct import (
    DirectRoute,
    json_body_doc,
    json_response,
    json_stream_response,
    require_json_content,
)
from service.config import ServiceSettings
from service.deps import (
    app_settings,
    current_model,
    get_loaded_model,
    get_settings,
    require_api_key,
)
from service.schemas import (
    ExplainRequest,
    ExplainResponse,
    PredictOptions,
    PredictRequest,
    PredictResponse,
    error_responses,
    explain_examples,
    predict_examples,
)
from service.state import LoadedModel

__all__ = ["EXPLAIN_INLINE_FRACTION", "direct_router", "router", "run_model_call"]

T = TypeVar("T")

EXPLAIN_INLINE_FRACTION = 16
"""Explanations run inline up to ``inline_max_bytes // 16`` (about ten times the work of a
prediction per sample)."""

direct_router = APIRouter(prefix="/v1", route_class=DirectRoute)
"""``/v1/predict`` and ``/v1/explain``: direct routes (they check the API key themselves)."""
router = APIRouter(prefix="/v1", dependencies=[Security(require_api_key)])
"""``/v1/predict/file``: behind the API-key dependency."""


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


async def _answer_samples(
    request: Request,
    endpoint: str,
    compute: Callable[[LoadedModel, bytes, ServiceSettings], tuple[Answer, int]],
    inline_fraction: int,
) -> Response:
    """Read the JSON body, ``compute`` the answer with the current model (inline for bodies up
    to ``NKP_INLINE_MAX_BYTES // inline_fraction``), count the samples of ``endpoint``.

    A request of more than ``NKP_ANSWER_CHUNK_SAMPLES`` samples is answered as a stream: it
    was validated whole, and its chunks are scored as they are sent."""
    require_json_content(request)
    loaded = current_model(request)
    settings = app_settings(request)
    raw = await request.body()
    limit = settings.inline_max_bytes // inline_fraction
    content, n_samples = await run_model_call(limit, len(raw), compute, loaded, raw, settings)
    request.app.state.metrics.count_samples(endpoint, n_samples)
    if isinstance(content, bytes):
        return json_response(content)
    return json_stream_response(content)


@direct_router.post(
    "/predict",
    tags=["predict"],
    summary="Predict NK resistance of samples sent as JSON",
    response_model=None,
    responses={
        200: {"model": PredictResponse, "description": "One prediction per sample."},
        **error_responses(400, 401, 413, 415, 422, 503),
    },
    openapi_extra=json_body_doc(PredictRequest, predict_examples()),
)
async def predict(request: Request) -> Response:
    """Probability (classification) or score (regression), call and gene coverage per sample,
    with the model that answered, the input scale and the gene-identifier report."""
    return await _answer_samples(request, "predict", predict_json, inline_fraction=1)


@direct_router.post(
    "/explain",
    tags=["explain"],
    summary="Explain predictions: attributions to genes, NK axes and pathways",
    response_model=None,
    responses={
        200: {"model": ExplainResponse, "description": "One explanation per sample."},
        **error_responses(400, 401, 413, 415, 422, 503),
    },
    openapi_extra=json_body_doc(ExplainRequest, explain_examples()),
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


@router.post(
    "/predict/file",
    tags=["predict"],
    summary="Predict NK resistance of an uploaded expression file",
    response_model=None,
    responses={
        200: {"model": PredictResponse, "description": "One prediction per sample."},
        **error_responses(400, 401, 413, 415, 422, 503),
    },
)
async def predict_file(
    request: Request,
    file: UploadFile = File(
        description="CSV, TSV (.tsv/.txt/.tab, optionally .gz) or Parquet; samples or genes "
        "as rows (detected as the command line does), the first column (or the stored index) "
        "holds the row labels."
    ),
    scale: ScaleChoice | None = Form(default=None, description="Default: the model's (auto)."),
    min_coverage: float | None = Form(default=None, ge=0.0, le=1.0),
    orientation: Orientation = Form(
        default="auto",
        description="What the rows are: samples, genes, or auto (genes when most row labels "
        "look like gene identifiers and the column labels do not, as on the command line).",
    ),
    loaded: LoadedModel = Depends(get_loaded_model),
    settings: ServiceSettings = Depends(get_settings),
) -> Response:
    """Batch prediction from a file; same answer as ``/v1/predict``.

    The file is read in a worker thread (the event loop keeps answering), at most
    ``NKP_MAX_CONCURRENT_UPLOADS`` at a time; others wait their turn.
    """
    options = PredictOptions(scale=scale, min_coverage=min_coverage)
    try:
        async with request.app.state.upload_slots:  # NKP_MAX_CONCURRENT_UPLOADS at a time
            content, n_samples = await run_in_threadpool(
                predict_upload, loaded, file, options, orientation, settings
            )
    finally:
        await file.close()
    request.app.state.metrics.count_samples("predict_file", n_samples)
    return json_response(content)
