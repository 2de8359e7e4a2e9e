"""Scoring routes: ``POST /v1/predict``, ``POST /v1/explain`` and ``POST /v1/predict/file``.

The first two are direct routes (:mod:`service.api.direct`) of :data:`direct_router`, which
the app puts in front of every other route; the upload route is an ordinary FastAPI route of
:data:`router` (form parsing), behind the API-key dependency.

Model calls (parsing, preparation, prediction, TreeSHAP) are CPU-bound. A request whose
estimated work (:func:`estimated_ms`: parsing by the body's size, the model by its number of
samples) is at most ``NKP_INLINE_MAX_MS`` is answered on the event loop: a single sample costs
a fraction of a millisecond, less than the hop to a worker thread and back, and a whole
profile of 19,000 genes parsed in a worker thread contends with the event loop for the GIL
(a fifth fewer answers per second, measured). Larger requests (and every body over
``NKP_INLINE_MAX_BYTES``, and every upload) run in the threadpool, so the event loop keeps
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
from service.bodies import count_byte
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

__all__ = [
    "PARSE_MS_PER_MB",
    "SAMPLE_MS",
    "direct_router",
    "estimated_ms",
    "router",
    "run_model_call",
]

T = TypeVar("T")

PARSE_MS_PER_MB = 10.0
"""Milliseconds of CPU per megabyte of JSON body: parsing, type checks and preparation of the
values when orjson parses it (about 4.2 ms of ``orjson.loads`` and 3 ms more for a 470 kB
profile of 19,000 genes); a plain body, read by :mod:`service.plain_bodies`, takes about a
third of that, so the estimate errs toward the threadpool."""
SAMPLE_MS: dict[str, float] = {"predict": 0.05, "explain": 0.5, "whatif": 0.5}
"""Milliseconds of model work per sample of each endpoint, beyond the parsing (an
explanation: TreeSHAP, the sums per level, the drivers and their sentences)."""


def estimated_ms(raw: bytes, endpoint: str) -> float:
    """Estimated CPU milliseconds of answering the JSON body ``raw`` at ``endpoint``.

    Only a scheduling estimate (where to run the call, never what it answers): the parsing by
    the body's size, the model by its samples, counted as the body's ``{`` (one per sample
    object, plus the body's own and that of ``samples``).
    """
    return len(raw) / 1e6 * PARSE_MS_PER_MB + count_byte(raw, b"{") * SAMPLE_MS[endpoint]


direct_router = APIRouter(prefix="/v1", route_class=DirectRoute)
"""``/v1/predict`` and ``/v1/explain``: direct routes (they check the API key themselves)."""
router = APIRouter(prefix="/v1", dependencies=[Security(require_api_key)])
"""``/v1/predict/file``: behind the API-key dependency."""


async def run_model_call(
    settings: ServiceSettings, raw: bytes, endpoint: str, call: Callable[..., T], *args: Any
) -> T:
    """Run ``call(*args)`` (which answers the body ``raw`` at ``endpoint``) on the event loop
    when the body is at most ``NKP_INLINE_MAX_BYTES`` and its :func:`estimated_ms` at most
    ``NKP_INLINE_MAX_MS``, else in the threadpool.

    A single-sample prediction takes a fraction of a millisecond of CPU, a 100-sample batch
    or a whole profile a few milliseconds: less than the hop to a worker thread and back
    costs in throughput (the two threads then contend for the GIL). Larger requests run in
    the threadpool so that the event loop keeps answering (``/health`` stays fast) while
    they are computed.
    """
    if len(raw) <= settings.inline_max_bytes and (
        estimated_ms(raw, endpoint) <= settings.inline_max_ms
    ):
        return call(*args)
    return await run_in_threadpool(call, *args)


async def _answer_samples(
    request: Request,
    endpoint: str,
    compute: Callable[[LoadedModel, bytes, ServiceSettings], tuple[Answer, int]],
) -> Response:
    """Read the JSON body, ``compute`` the answer with the current model (inline or in the
    threadpool: :func:`run_model_call`), count the samples of ``endpoint``.

    A request of more than ``NKP_ANSWER_CHUNK_SAMPLES`` samples is answered as a stream: it
    was validated whole, and its chunks are scored as they are sent."""
    require_json_content(request)
    loaded = current_model(request)
    settings = app_settings(request)
    raw = await request.body()
    content, n_samples = await run_model_call(
        settings, raw, endpoint, compute, loaded, raw, settings
    )
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
    return await _answer_samples(request, "predict", predict_json)


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
    return await _answer_samples(request, "explain", explain_json)


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
