"""API keys and request-size limits.

Keys (header ``X-API-Key``)
---------------------------
- ``/v1/*`` data routes (predict, explain, model) need ``settings.api_key`` when it is set;
  without it they are open.
- ``/v1/admin/*`` routes always need a key: ``settings.admin_api_key``, else
  ``settings.api_key``; with neither configured they answer 403 ``admin_disabled``.
- ``/health``, ``/ready`` and ``/metrics`` are always open: probes and Prometheus scrapers
  should not need secrets, and they reveal no data (model name/version at most). The OpenAPI
  document and ``/docs`` are open too (they describe the API, they do not use the model).

The two checks are :data:`service.deps.require_api_key` and
:data:`service.deps.require_admin_key` (instances of :class:`APIKeyCheck`). The routers of
data routes declare the first as a dependency; a direct route
(:class:`service.api.direct.DirectRoute`) runs it itself before its endpoint, so a direct
route cannot be declared without the check.

Keys are compared with :func:`hmac.compare_digest` on their UTF-8 bytes and never logged.

Body size
---------
:class:`BodySizeLimitMiddleware` answers 400 ``conflicting_length`` (and closes the
connection) when a request carries both ``Content-Length`` and ``Transfer-Encoding``; 413
``body_too_large`` before the app runs when the declared ``Content-Length`` exceeds
``settings.max_body_bytes``; and stops reading (413) as soon as the bytes actually received
go past the limit, whatever was declared, so no oversized body is ever buffered or parsed.
"""

from __future__ import annotations

import hmac
import json
import logging
from typing import TYPE_CHECKING

from fastapi import Request
from fastapi.security import APIKeyHeader
from pydantic import SecretStr
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.errors import ServiceError, error_body

if TYPE_CHECKING:
    from service.metrics import ServiceMetrics

__all__ = [
    "API_KEY_HEADER",
    "CLOSE_CONNECTION",
    "APIKeyCheck",
    "BodySizeLimitMiddleware",
    "keys_match",
]

logger = logging.getLogger(__name__)

API_KEY_HEADER = "X-API-Key"
CLOSE_CONNECTION = {"Connection": "close"}
"""Headers of refusals after which the rest of the connection's bytes are not read."""


def keys_match(given: str | None, expected: SecretStr) -> bool:
    """Constant-time comparison of a presented key with the configured one."""
    if given is None:
        return False
    return hmac.compare_digest(
        given.encode("utf-8", "surrogateescape"),
        expected.get_secret_value().encode("utf-8", "surrogateescape"),
    )


def _unauthorized(given: str | None) -> ServiceError:
    reason = "missing" if given is None else "invalid"
    return ServiceError(
        401,
        "unauthorized",
        f"{reason} API key: send it in the {API_KEY_HEADER} header",
        headers={"WWW-Authenticate": API_KEY_HEADER},
    )


class APIKeyCheck(APIKeyHeader):
    """The ``X-API-Key`` security scheme *and* its check, as one dependency.

    Being an :class:`~fastapi.security.APIKeyHeader`, it documents the scheme in the OpenAPI
    document; checking the key in the same call saves FastAPI a second dependency per
    request (dependency resolution costs tens of microseconds each).

    Parameters
    ----------
    admin : bool
        Admin routes: the admin key (or the API key) is always required, and with neither
        configured the routes answer 403 ``admin_disabled``. Data routes: the API key is
        required only when one is configured.
    """

    def __init__(self, *, admin: bool, scheme_name: str, description: str) -> None:
        super().__init__(
            name=API_KEY_HEADER, auto_error=False, scheme_name=scheme_name, description=description
        )
        self.admin = admin

    async def __call__(self, request: Request) -> str | None:  # type: ignore[override]
        """Check the request's key against the app's settings; return the key checked."""
        return self.check(request)

    def check(self, request: Request) -> str | None:
        """:meth:`__call__` as a plain call, for routes that check the key themselves.

        Returns the key checked, ``None`` for a data route of a service without an API key
        (the header is then not even read).
        """
        settings = request.app.state.settings
        if not self.admin:
            expected = settings.api_key
            if expected is None:
                return None
            key = request.headers.get(API_KEY_HEADER)
            if not keys_match(key, expected):
                raise _unauthorized(key)
            return key
        key = request.headers.get(API_KEY_HEADER)
        expected = settings.admin_api_key or settings.api_key
        if expected is None:
            raise ServiceError(
                403,
                "admin_disabled",
                "admin routes are disabled: configure NKP_ADMIN_API_KEY (or NKP_API_KEY)",
            )
        if not keys_match(key, expected):
            logger.warning(
                "admin request with a %s key refused", "missing" if key is None else "bad"
            )
            raise _unauthorized(key)
        return key


class BodySizeLimitMiddleware:
    """Pure ASGI middleware enforcing ``max_bytes`` on request bodies while they are read."""

    def __init__(self, app: ASGIApp, max_bytes: int, metrics: ServiceMetrics | None = None) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.metrics = metrics

    def _too_large(self, received: int | None = None) -> ServiceError:
        size = "more" if received is None else f"{received}"
        return ServiceError(
            413,
            "body_too_large",
            f"request body of {size} bytes exceeds the limit of {self.max_bytes} bytes",
            {"max_body_bytes": self.max_bytes},
            headers=CLOSE_CONNECTION,
        )

    async def _reject(self, scope: Scope, send: Send, error: ServiceError) -> None:
        if self.metrics is not None:
            self.metrics.record_error(scope, error.code)
        body = json.dumps(error_body(error.code, error.message, error.details)).encode()
        await send(
            {
                "type": "http.response.start",
                "status": error.status_code,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"connection", b"close"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Refuse conflicting framing and declared oversizes at once; count what arrives."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared: int | None = None
        chunked = False
        for name, value in scope.get("headers", ()):
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = -1
            elif name == b"transfer-encoding":
                chunked = True
        if chunked and declared is not None:
            await self._reject(scope, send, _conflicting_framing())
            return
        if declared is not None and declared > self.max_bytes:
            await self._reject(scope, send, self._too_large(declared))
            return
        received = 0

        async def limited_receive() -> Message:
            # Counted whatever the headers declared: the limit holds on the bytes received.
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise self._too_large()
            return message

        await self.app(scope, limited_receive, send)


def _conflicting_framing() -> ServiceError:
    """400 for a request declaring both ``Content-Length`` and ``Transfer-Encoding``.

    RFC 9112 (section 6.3) lets a server refuse such a message, which is how request
    smuggling starts; h11 would read the chunked body and ignore the length.
    """
    return ServiceError(
        400,
        "conflicting_length",
        "the request has both Content-Length and Transfer-Encoding headers; send one",
        headers=CLOSE_CONNECTION,
    )
