"""Prometheus metrics of one app instance (its own ``CollectorRegistry``).

Each app gets a fresh registry, so tests can create many apps in one process. With several
uvicorn workers every worker exposes its own counters (scrape each, or run one worker per
container); no multiprocess aggregation is attempted.

Series (prefix ``nkpredict_``):

- ``http_requests_total{method, route, status}``: answered requests; ``route`` is the route
  template (``/v1/predict``), ``<unmatched>`` for unknown paths, and ``method`` is ``OTHER``
  for unusual methods, so the labels stay bounded;
- ``http_request_duration_seconds{method, route}``: latency histogram;
- ``http_requests_in_flight``: requests being handled now;
- ``http_errors_total{route, code}``: error answers by error code (see :mod:`service.errors`);
- ``samples_total{endpoint}``: samples predicted or explained;
- ``model_reloads_total{outcome}``: admin reloads, ``success`` or ``failure``;
- ``model_info{name, version, uri}``: 1 for the model being served.
"""

from __future__ import annotations

import logging
import time
from collections.abc import MutableMapping
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = [
    "OTHER_METHOD",
    "UNMATCHED_ROUTE",
    "MetricsMiddleware",
    "ServiceMetrics",
    "method_label",
    "route_label",
]

logger = logging.getLogger(__name__)

NAMESPACE = "nkpredict"
UNMATCHED_ROUTE = "<unmatched>"
LATENCY_BUCKETS = (
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
)


KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
OTHER_METHOD = "OTHER"
"""``method`` label of requests with any other method, so that the label stays bounded."""


def method_label(scope: MutableMapping[str, Any]) -> str:
    """The request method, or ``OTHER`` for methods outside :data:`KNOWN_METHODS`."""
    method = scope.get("method", "")
    return method if method in KNOWN_METHODS else OTHER_METHOD


def route_label(scope: MutableMapping[str, Any]) -> str:
    """The route template the router matched, or ``<unmatched>``."""
    route = scope.get("route")
    path = getattr(route, "path", None)
    return path if isinstance(path, str) else UNMATCHED_ROUTE


class ServiceMetrics:
    """The collectors of one app, registered in their own registry."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "http_requests_total",
            "HTTP requests answered, by method, route template and status.",
            ["method", "route", "status"],
            namespace=NAMESPACE,
            registry=self.registry,
        )
        self.latency = Histogram(
            "http_request_duration_seconds",
            "Time from request start to the end of the answer.",
            ["method", "route"],
            namespace=NAMESPACE,
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.in_flight = Gauge(
            "http_requests_in_flight",
            "Requests being handled.",
            namespace=NAMESPACE,
            registry=self.registry,
        )
        self.errors = Counter(
            "http_errors_total",
            "Error answers by route template and error code.",
            ["route", "code"],
            namespace=NAMESPACE,
            registry=self.registry,
        )
        self.samples = Counter(
            "samples_total",
            "Samples predicted or explained.",
            ["endpoint"],
            namespace=NAMESPACE,
            registry=self.registry,
        )
        self.reloads = Counter(
            "model_reloads_total",
            "Admin model reloads by outcome.",
            ["outcome"],
            namespace=NAMESPACE,
            registry=self.registry,
        )
        self.model_info = Gauge(
            "model_info",
            "1 for the model being served.",
            ["name", "version", "uri"],
            namespace=NAMESPACE,
            registry=self.registry,
        )
        self._request_series: dict[tuple[str, str, int], tuple[Any, Any]] = {}
        self._sample_series: dict[str, Any] = {}

    def record_request(self, method: str, route: str, status: int, seconds: float) -> None:
        """Count one answered request and observe its latency.

        The labelled children are looked up once per (method, route, status) and kept:
        ``labels()`` takes a lock and builds its key on every call.
        """
        key = (method, route, status)
        series = self._request_series.get(key)
        if series is None:
            series = (
                self.requests.labels(method, route, str(status)),
                self.latency.labels(method, route),
            )
            self._request_series[key] = series
        count, latency = series
        count.inc()
        latency.observe(seconds)

    def count_samples(self, endpoint: str, n: int) -> None:
        """Add ``n`` samples predicted or explained by ``endpoint``."""
        child = self._sample_series.get(endpoint)
        if child is None:
            child = self._sample_series[endpoint] = self.samples.labels(endpoint)
        child.inc(n)

    def record_error(self, scope: MutableMapping[str, Any], code: str) -> None:
        """Count one error answer."""
        self.errors.labels(route_label(scope), code).inc()

    def set_model(self, name: str | None, version: str | None, uri: str) -> None:
        """Mark the model being served (the previous one's series is removed)."""
        self.model_info.clear()
        self.model_info.labels(name or "", version or "", uri).set(1)

    def render(self) -> tuple[bytes, str]:
        """The exposition text and its content type."""
        return generate_latest(self.registry), CONTENT_TYPE_LATEST


class MetricsMiddleware:
    """Pure ASGI middleware counting requests and timing them (cheap: no request wrapping)."""

    def __init__(self, app: ASGIApp, metrics: ServiceMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Time the request and count its status (500 when the app raised)."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500
        start = time.perf_counter()

        async def send_with_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        metrics = self.metrics
        metrics.in_flight.inc()
        try:
            await self.app(scope, receive, send_with_status)
        finally:
            metrics.in_flight.dec()
            metrics.record_request(
                method_label(scope), route_label(scope), status, time.perf_counter() - start
            )
