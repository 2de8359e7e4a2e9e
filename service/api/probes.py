"""The open probes: ``GET /health``, ``GET /ready`` and ``GET /metrics`` (no key, no data)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request, Response

from service.deps import get_loaded_model
from service.schemas import HealthResponse, ModelRef, ReadyResponse, error_responses
from service.state import LoadedModel

__all__ = ["health", "metrics", "ready", "router"]

router = APIRouter(tags=["operations"])


@router.get("/health", response_model=HealthResponse, summary="Liveness (no auth)")
async def health() -> HealthResponse:
    """The process is up and the event loop answers; says nothing about the model."""
    return HealthResponse()


@router.get(
    "/ready",
    response_model=ReadyResponse,
    summary="Readiness: a model is loaded (no auth)",
    responses=error_responses(503),
)
async def ready(loaded: LoadedModel = Depends(get_loaded_model)) -> ReadyResponse:
    """200 once a model is loaded and serving, 503 ``model_not_loaded`` before."""
    return ReadyResponse(model=ModelRef.model_validate(loaded.model_ref()))


@router.get(
    "/metrics",
    summary="Prometheus metrics (no auth)",
    response_class=Response,
    responses={200: {"content": {"text/plain": {}}}},
)
async def metrics(request: Request) -> Response:
    """Request counts by route and status, latency histogram, errors by code, reloads."""
    content, content_type = request.app.state.metrics.render()
    return Response(content=content, media_type=content_type)
