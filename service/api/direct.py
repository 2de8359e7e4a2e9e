"""Direct routes: FastAPI documents them, but calls their endpoint without its machinery.

``/v1/predict`` and ``/v1/explain`` take almost all the traffic and their own work is a
fraction of a millisecond; FastAPI's dependency resolution, body handling and response
validation would cost tens of microseconds per request (each dependency about 10). A
:class:`DirectRoute` hands its endpoint the :class:`~fastapi.Request` and sends the
:class:`~fastapi.Response` it returns, after checking the API key itself: the check is part
of the route, not of each endpoint, so a new direct route is protected by construction (and
documented as such in the OpenAPI document). Such routes are matched first
(:func:`service.app.create_app`), so the framework costs no more than a bare FastAPI endpoint
(``benchmarks/service_load.py``).
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Iterator
from typing import Any

from fastapi import Request, Response
from fastapi.responses import StreamingResponse
from fastapi.routing import APIRoute
from pydantic import BaseModel
from starlette.types import Receive, Scope, Send

from service.deps import require_api_key
from service.errors import ServiceError

__all__ = [
    "API_KEY_REQUIRED",
    "JSON_MEDIA_TYPE",
    "DirectEndpoint",
    "DirectRoute",
    "json_body_doc",
    "json_response",
    "json_stream_response",
    "require_json_content",
]

JSON_MEDIA_TYPE = "application/json"
API_KEY_REQUIRED: dict[str, Any] = {"security": [{require_api_key.scheme_name: []}]}
"""OpenAPI security requirement of every direct route (they check the key themselves)."""

DirectEndpoint = Callable[[Request], Coroutine[Any, Any, Response]]
"""What a direct route calls: ``async def endpoint(request) -> Response``."""


class DirectRoute(APIRoute):
    """A route whose endpoint takes the :class:`Request` and returns a :class:`Response`.

    FastAPI documents it like any route (from the decorator's arguments and
    ``openapi_extra``, to which the API-key requirement is added) but the route calls the
    endpoint directly, after :data:`service.deps.require_api_key` has checked the request:
    no dependency resolution, body handling or response validation per request. The endpoint
    does its own parsing and serialisation.

    Raises
    ------
    TypeError
        When declared with dependencies: a direct route would not resolve them.
    """

    def __init__(self, path: str, endpoint: DirectEndpoint, **kwargs: Any) -> None:
        if kwargs.get("dependencies"):
            raise TypeError(
                f"direct route {path} cannot have dependencies (they would not run); "
                "call what it needs from service.deps"
            )
        kwargs["openapi_extra"] = (kwargs.get("openapi_extra") or {}) | API_KEY_REQUIRED
        super().__init__(path, endpoint, **kwargs)

    def get_route_handler(self) -> DirectEndpoint:
        """The endpoint itself."""
        endpoint: DirectEndpoint = self.endpoint
        return endpoint

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Check the key, then answer with the endpoint's response (other methods: the usual
        405).

        Errors propagate to the app's exception middleware, which answers them with the
        app's handlers (401 ``unauthorized`` for a missing or wrong key); no per-request exit
        stacks are opened (there are no dependencies).
        """
        if self.methods is None or scope["method"] not in self.methods:
            await super().handle(scope, receive, send)
            return
        request = Request(scope, receive, send)
        require_api_key.check(request)
        response = await self.endpoint(request)
        await response(scope, receive, send)


def json_body_doc(model: type[BaseModel], examples: dict[str, Any]) -> dict[str, Any]:
    """OpenAPI request body (``openapi_extra``) of a route that parses its JSON body itself."""
    return {
        "requestBody": {
            "required": True,
            "content": {
                JSON_MEDIA_TYPE: {"schema": model.model_json_schema(), "examples": examples}
            },
        }
    }


def json_response(content: bytes, status_code: int = 200) -> Response:
    """A response with already serialised JSON ``content``."""
    return Response(content=content, status_code=status_code, media_type=JSON_MEDIA_TYPE)


def json_stream_response(pieces: Iterator[bytes]) -> StreamingResponse:
    """A 200 response sending the JSON text ``pieces`` as they are computed (each ``next`` in
    the threadpool, so the event loop keeps answering while a large answer is produced)."""
    return StreamingResponse(pieces, media_type=JSON_MEDIA_TYPE)


def require_json_content(request: Request) -> None:
    """Refuse a body declared as anything but JSON (415 ``unsupported_media_type``).

    ``application/json`` and ``application/<name>+json`` (parameters such as ``charset``
    allowed) are JSON; a request without ``Content-Type`` is read as JSON too.
    """
    declared = request.headers.get("content-type")
    if declared is None:
        return
    media = declared.split(";", 1)[0].strip().lower()
    if media == JSON_MEDIA_TYPE or (media.startswith("application/") and media.endswith("+json")):
        return
    raise ServiceError(
        415,
        "unsupported_media_type",
        f"the body is declared as {media[:60]!r}; send JSON (Content-Type: application/json)",
        {"content_type": media[:60], "accepted": [JSON_MEDIA_TYPE]},
    )
