"""One JSON shape for every failure, and the mapping of library exceptions to HTTP codes.

Every error answer of the service has the body::

    {"error": {"code": "<machine-readable code>", "message": "<one sentence>", "details": ...}}

``details`` is ``null`` or a JSON value that helps a client react (missing genes, the
offending sample, validation errors). The codes and statuses:

====================================  ======  ==================================================
code                                  status  when
====================================  ======  ==================================================
``invalid_json``                      400     body is not JSON (syntax, encoding, a lone UTF-16
                                              surrogate) or is empty
``conflicting_length``                400     both ``Content-Length`` and ``Transfer-Encoding``
``model_uri_not_allowed``             400     admin reload names a URI kind not configured
                                              (``NKP_RELOAD_URI_KINDS``)
``client_disconnected``               400     the client left while its body was read (logged,
                                              never delivered)
``unauthorized``                      401     API key missing or wrong
``admin_disabled``                    403     admin route, but no admin (or API) key configured
``not_found``                         404     unknown route
``method_not_allowed``                405     known route, wrong method
``body_too_large``                    413     body larger than ``max_body_bytes``
``too_many_samples``                  413     more samples than ``max_samples``
``upload_too_large``                  413     an uploaded file expands beyond
                                              ``max_upload_expanded_bytes`` (gzip, Parquet),
                                              has more columns than ``max_upload_columns`` or a
                                              longer text cell than ``max_upload_cell_bytes``
``unsupported_file_type``             415     upload with an unknown file extension
``unsupported_media_type``            415     a JSON route's body declared as another type
``request_timeout``                   408     headers or body not sent within
                                              ``NKP_HEADER_TIMEOUT``/``NKP_BODY_TIMEOUT``
                                              (:mod:`service.connections`)
``validation_error``                  422     request fields of the wrong type/shape, unknown field
``empty_samples``                     422     no samples, or a sample without genes
``duplicate_sample_id``               422     a sample ID occurs twice (also duplicated JSON keys)
``duplicate_gene``                    422     a gene occurs twice within one sample
``duplicate_key``                     422     a duplicated key elsewhere in the JSON body
``non_numeric_value``                 422     an expression value is not a number (or null)
``non_finite_value``                  422     NaN, Infinity or a number too large for a float
``invalid_expression``                422     :class:`~nkpredict.exceptions.ExpressionFormatError`
``invalid_scale``                     422     :class:`~nkpredict.exceptions.ScaleError`
                                              (negative counts, values that fit no scale)
``gene_mapping_failed``               422     :class:`~nkpredict.exceptions.GeneMappingError`
``coverage_too_low``                  422     :class:`~nkpredict.exceptions.CoverageError`;
                                              details name the samples and missing genes
``invalid_input``                     422     any other :class:`~nkpredict.exceptions.InputError`
``reload_failed``                     502     admin reload could not load the new model (the old
                                              one keeps serving)
``model_not_loaded``                  503     no model loaded yet (start-up)
``model_unavailable``                 503     :class:`~nkpredict.exceptions.ModelLoadError`
``too_many_connections``              503     more than ``NKP_MAX_CONNECTIONS`` open connections
                                              (:mod:`service.connections`)
``internal_error``                    500     a bug; logged with its traceback
====================================  ======  ==================================================
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect

from nkpredict.exceptions import (
    CoverageError,
    ExpressionFormatError,
    GeneMappingError,
    InputError,
    ModelLoadError,
    NKPredictError,
    NotFittedError,
    ScaleError,
)

__all__ = [
    "ServiceError",
    "error_body",
    "install_error_handlers",
    "json_safe",
    "library_error_status",
]

logger = logging.getLogger(__name__)

_STATUS_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "body_too_large",
    415: "unsupported_media_type",
    422: "validation_error",
    503: "service_unavailable",
}

# Most specific first: the first class the exception is an instance of wins.
_LIBRARY_ERRORS: tuple[tuple[type[NKPredictError], int, str], ...] = (
    (CoverageError, 422, "coverage_too_low"),
    (ScaleError, 422, "invalid_scale"),
    (GeneMappingError, 422, "gene_mapping_failed"),
    (ExpressionFormatError, 422, "invalid_expression"),
    (InputError, 422, "invalid_input"),
    (ModelLoadError, 503, "model_unavailable"),
    (NotFittedError, 503, "model_unavailable"),
)


class ServiceError(StarletteHTTPException):
    """An error answer with a machine-readable code (raised anywhere in the service).

    It subclasses Starlette's ``HTTPException`` so that FastAPI passes it through unchanged
    even when raised while FastAPI itself reads a request body (the body-size limit).
    """

    def __init__(
        self,
        status_code: int,
        code: str,
        message: str,
        details: Any = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(status_code=status_code, detail=message, headers=headers)
        self.code = code
        self.message = message
        self.details = details


def json_safe(value: Any) -> Any:
    """``value`` with non-finite floats replaced by ``None`` (strict JSON has no NaN)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    return value


def error_body(code: str, message: str, details: Any = None) -> dict[str, Any]:
    """The error shape shared by every failure."""
    return {"error": {"code": code, "message": message, "details": json_safe(details)}}


def library_error_status(exc: NKPredictError) -> tuple[int, str]:
    """HTTP status and error code of a library exception (500 for unexpected classes)."""
    for cls, status, code in _LIBRARY_ERRORS:
        if isinstance(exc, cls):
            return status, code
    return 500, "internal_error"


def _record(request: Request, code: str) -> None:
    metrics = getattr(request.app.state, "metrics", None)
    if metrics is not None:
        metrics.record_error(request.scope, code)


def _respond(
    request: Request,
    status: int,
    code: str,
    message: str,
    details: Any = None,
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    _record(request, code)
    return JSONResponse(
        error_body(code, message, details),
        status_code=status,
        headers=None if headers is None else dict(headers),
    )


async def _service_error(request: Request, exc: Exception) -> JSONResponse:
    if not isinstance(exc, ServiceError):  # pragma: no cover - registered for ServiceError only
        raise exc
    if exc.status_code >= 500:
        logger.warning("%s %s: %s (%s)", request.method, request.url.path, exc.code, exc.message)
    return _respond(request, exc.status_code, exc.code, exc.message, exc.details, exc.headers)


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    if not isinstance(exc, StarletteHTTPException):  # pragma: no cover
        raise exc
    code = _STATUS_CODES.get(exc.status_code, "http_error")
    message = exc.detail if isinstance(exc.detail, str) else code.replace("_", " ")
    if exc.status_code == 404:
        message = f"no route {request.method} {request.url.path}"
    return _respond(request, exc.status_code, code, message, None, exc.headers)


def _clean_validation_errors(errors: Any) -> list[dict[str, Any]]:
    """Validation errors without the echoed input (which may be large or not JSON)."""
    cleaned = []
    for error in errors:
        cleaned.append(
            {
                "loc": [str(part) for part in error.get("loc", ())],
                "type": str(error.get("type", "")),
                "msg": str(error.get("msg", "")),
            }
        )
    return cleaned


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    if not isinstance(exc, RequestValidationError):  # pragma: no cover
        raise exc
    details = _clean_validation_errors(exc.errors())
    where = ".".join(details[0]["loc"]) if details else ""
    reason = str(details[0]["msg"]) if details else "invalid request"
    message = f"invalid request: {where}: {reason}" if where else reason
    return _respond(request, 422, "validation_error", message, details)


async def _library_error(request: Request, exc: Exception) -> JSONResponse:
    if not isinstance(exc, NKPredictError):  # pragma: no cover
        raise exc
    status, code = library_error_status(exc)
    if status >= 500:
        logger.error("%s %s failed: %s", request.method, request.url.path, exc, exc_info=exc)
    return _respond(request, status, code, str(exc))


async def _client_disconnect(request: Request, exc: Exception) -> JSONResponse:
    """The client went away while its body was read (or was cut off by a timeout): no one
    reads this answer, and it is no server error."""
    logger.info(
        "%s %s: the client disconnected before its body arrived", request.method, request.url.path
    )
    return _respond(request, 400, "client_disconnected", "the client disconnected")


async def _internal_error(request: Request, exc: Exception) -> JSONResponse:
    logger.error("%s %s failed: %r", request.method, request.url.path, exc, exc_info=exc)
    return _respond(request, 500, "internal_error", "internal error (logged on the server)")


def install_error_handlers(app: FastAPI) -> None:
    """Register the handlers that give every failure the shared error shape."""
    app.add_exception_handler(ServiceError, _service_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(NKPredictError, _library_error)
    app.add_exception_handler(ClientDisconnect, _client_disconnect)
    app.add_exception_handler(Exception, _internal_error)
