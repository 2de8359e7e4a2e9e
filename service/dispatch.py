"""The service's app class: a POST to a direct route skips the framework's layers.

A request to ``/v1/predict`` passes about ten ASGI layers before its
:class:`~service.api.direct.DirectRoute` runs (Starlette's server-error middleware,
FastAPI's telemetry and body-limit middleware, the user middleware, the exception
middleware, FastAPI's exit stack, the router) and each wraps ``send`` on the way back: tens
of microseconds per request, as much as the model's own work for one sample.
:class:`ServiceApp` sends a POST whose path is exactly that of one of the leading direct
routes (the routes the router tries first, so the router would pick the same one) through
a shorter stack built from the same parts:

    ServerErrorMiddleware -> the app's user middleware -> ExceptionMiddleware -> the route

The same middleware instances' classes and arguments (metrics, body limit, CORS when
configured), the same exception handlers and the same route handling, so answers, error
bodies, headers and metrics are those of the full stack. Only the layers that do nothing for
such a request are left out: FastAPI's telemetry (the fast path is taken only while it is
off, :meth:`ServiceApp.direct_dispatch_allowed`), its body limit (taken only without
``max_body_size``), its exit stack (direct routes open no files and have no dependencies),
and the router's matching (the route is known from the path). Everything else (other paths,
other methods, an app with a ``root_path`` or in debug mode) goes through FastAPI unchanged.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from starlette.middleware.errors import ServerErrorMiddleware
from starlette.middleware.exceptions import ExceptionMiddleware
from starlette.types import ASGIApp, Receive, Scope, Send

from service.api.direct import DirectRoute

__all__ = ["ServiceApp"]


class _RoutedCall:
    """The innermost layer of a direct stack: what the router does for its one route (the
    route's entries in the scope, then its handling)."""

    def __init__(self, route: DirectRoute) -> None:
        self.route = route
        self.endpoint = route.endpoint

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Set the scope's ``router``, ``endpoint``, ``path_params`` and ``route`` as the
        router would on a match, then let the route handle the request."""
        if "router" not in scope:
            scope["router"] = scope["app"].router
        scope["endpoint"] = self.endpoint
        scope["path_params"] = {}
        scope["route"] = self.route
        await self.route.handle(scope, receive, send)


class ServiceApp(FastAPI):
    """A FastAPI app whose leading direct routes are called through a shorter stack (see
    the module's description); everything else goes through FastAPI itself."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._direct_stacks: dict[str, ASGIApp] = {}

    def build_middleware_stack(self) -> ASGIApp:
        """FastAPI's stack, and with it (at the same moment: the first call, once routes,
        middleware and handlers are set) the stack of each leading direct route."""
        stack = super().build_middleware_stack()
        self._direct_stacks = self._build_direct_stacks()
        return stack

    def _build_direct_stacks(self) -> dict[str, ASGIApp]:
        """Path -> stack of each direct route that the router tries before any other kind
        of route and whose path has no parameters (the first of a path wins, as in the
        router)."""
        error_handler = None
        handlers: dict[Any, Any] = {}
        for key, value in self.exception_handlers.items():
            if key in (500, Exception):
                error_handler = value
            else:
                handlers[key] = value
        stacks: dict[str, ASGIApp] = {}
        for route in self.router.routes:
            if not isinstance(route, DirectRoute):
                break
            if route.param_convertors or route.path in stacks:
                continue
            app: ASGIApp = ExceptionMiddleware(_RoutedCall(route), handlers=handlers, debug=False)
            for cls, args, kwargs in reversed(self.user_middleware):
                app = cls(app, *args, **kwargs)
            stacks[route.path] = ServerErrorMiddleware(app, handler=error_handler, debug=False)
        return stacks

    def direct_dispatch_allowed(self) -> bool:
        """Whether the shorter stack answers as the full one would: no debug pages, no
        ``root_path`` of the app, no FastAPI body limit, FastAPI's own telemetry off."""
        if self.debug or self.root_path or getattr(self, "max_body_size", None) is not None:
            return False
        telemetry = getattr(self, "_native_telemetry", None)
        return telemetry is None or not telemetry.enabled()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """A POST to a leading direct route's exact path: its stack; anything else: FastAPI."""
        if scope["type"] == "http" and scope["method"] == "POST" and not scope.get("root_path"):
            stack = self._direct_stacks.get(scope["path"])
            if stack is not None and self.direct_dispatch_allowed():
                scope["app"] = self
                await stack(scope, receive, send)
                return
        await super().__call__(scope, receive, send)
