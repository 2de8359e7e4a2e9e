"""``POST /v1/admin/reload``: load the model again (or another one) and swap it in.

Admin routes always need a key (``NKP_ADMIN_API_KEY``, else ``NKP_API_KEY``; with neither,
403 ``admin_disabled``): see :mod:`service.security`.
"""

from __future__ import annotations

import logging
import time

from fastapi import APIRouter, Body, Depends, Request, Security
from starlette.concurrency import run_in_threadpool

from nkpredict.exceptions import ModelLoadError, NKPredictError
from nkpredict.registry import ModelUriKind, redact_text, uri_kind
from service.config import ServiceSettings
from service.deps import get_holder, get_settings, require_admin_key
from service.errors import ServiceError
from service.schemas import ModelRef, ReloadRequest, ReloadResponse, error_responses
from service.state import ModelHolder, redact_uri

__all__ = ["allowed_uri_kinds", "check_uri_kind", "reload_model", "router"]

logger = logging.getLogger(__name__)

router = APIRouter(prefix="/v1/admin", tags=["admin"], dependencies=[Security(require_admin_key)])


def allowed_uri_kinds(settings: ServiceSettings) -> tuple[ModelUriKind, ...]:
    """``NKP_RELOAD_URI_KINDS``, else the kind of ``NKP_MODEL_URI`` alone."""
    if settings.reload_uri_kinds:
        return tuple(settings.reload_uri_kinds)
    try:
        return (uri_kind(settings.model_uri),)
    except ModelLoadError:  # the configured directory has gone: still a directory
        return ("directory",)


def check_uri_kind(uri: str, settings: ServiceSettings) -> None:
    """Refuse (400 ``model_uri_not_allowed``) a reload URI of a kind not configured.

    Without this an admin key could make the service copy any readable directory
    (``file:///``) into its temporary folder or fetch from any host it can reach.
    """
    allowed = allowed_uri_kinds(settings)
    try:
        kind = uri_kind(uri)
    except ModelLoadError:
        return  # neither a directory nor a URI: the load reports it (502)
    if kind not in allowed:
        raise ServiceError(
            400,
            "model_uri_not_allowed",
            f"reload from a {kind} reference is not allowed here (allowed: "
            f"{', '.join(allowed)}; set NKP_RELOAD_URI_KINDS)",
            {"kind": kind, "allowed": list(allowed)},
        )


@router.post(
    "/reload",
    response_model=ReloadResponse,
    summary="Load the model again (or another one) and swap it in",
    responses=error_responses(400, 401, 403, 502),
)
async def reload_model(
    request: Request,
    body: ReloadRequest | None = Body(default=None),
    holder: ModelHolder = Depends(get_holder),
    settings: ServiceSettings = Depends(get_settings),
) -> ReloadResponse:
    """Re-resolve ``NKP_MODEL_URI`` (e.g. a moved ``@champion`` alias) or load
    ``body.model_uri``, then swap atomically: running requests finish on the old model.

    A ``model_uri`` of a kind not configured (``NKP_RELOAD_URI_KINDS``, by default the kind
    of ``NKP_MODEL_URI``) is refused with 400 ``model_uri_not_allowed``. On failure the old
    model keeps serving and the answer is 502 ``reload_failed``.
    """
    uri = body.model_uri if body is not None and body.model_uri else settings.model_uri
    if uri != settings.model_uri:
        check_uri_kind(uri, settings)
    reloads = request.app.state.metrics.reloads
    start = time.perf_counter()
    try:
        loaded, previous = await run_in_threadpool(holder.load, uri)
    except (NKPredictError, OSError, ValueError, KeyError, TypeError) as exc:
        reloads.labels("failure").inc()
        current = holder.current
        reason = redact_text(str(exc))
        logger.warning("reload of %s failed, old model kept: %s", redact_uri(uri), reason)
        raise ServiceError(
            502,
            "reload_failed",
            f"could not load {redact_uri(uri)}: {reason}; the previous model keeps serving",
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
