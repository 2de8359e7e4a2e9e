"""Connection-level limits: slow clients, idle sockets and too many connections.

uvicorn closes a keep-alive connection that stays idle after an answer
(``timeout_keep_alive``) and bounds the request head (h11's incomplete-event size), but it
waits forever for a client that connects and sends nothing, or sends a request head one byte
at a time (slowloris), or stops in the middle of a body; and its ``limit_concurrency``
answers a plain-text 503 only once a request arrives. :class:`GuardedH11Protocol` (uvicorn's
h11 protocol, which :func:`uvicorn_config` installs) adds:

- a **header timeout**: the request line and headers must be complete within
  ``NKP_HEADER_TIMEOUT`` seconds of connecting or of the previous answer; a client that sent
  part of a request then gets 408 ``request_timeout``, an idle one is simply disconnected;
- a **body timeout**: a body that pauses longer than ``NKP_BODY_TIMEOUT`` seconds between
  two pieces ends the connection with 408 (the waiting route sees the client disconnect);
- a **connection limit**: beyond ``NKP_MAX_CONNECTIONS`` open connections a new one is
  answered 503 ``too_many_connections`` (the service's error shape) and closed at once,
  before it can hold a slot.

The limits travel on the uvicorn :class:`~uvicorn.Config` (attribute ``nkp_limits``), so
worker processes started by uvicorn's supervisor get them too.
"""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass
from typing import Any

import h11
import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

from service.config import ServiceSettings
from service.errors import error_body

__all__ = ["LIMITS_ATTRIBUTE", "ConnectionLimits", "GuardedH11Protocol", "uvicorn_config"]

logger = logging.getLogger(__name__)

LIMITS_ATTRIBUTE = "nkp_limits"
"""Attribute of the uvicorn ``Config`` that holds the :class:`ConnectionLimits`."""


@dataclass(frozen=True)
class ConnectionLimits:
    """The connection limits of :class:`GuardedH11Protocol` (seconds and counts)."""

    header_timeout: float = 10.0
    body_timeout: float = 30.0
    max_connections: int = 200

    @classmethod
    def of(cls, settings: ServiceSettings) -> ConnectionLimits:
        """The limits of ``settings`` (``NKP_HEADER_TIMEOUT``, ...)."""
        return cls(settings.header_timeout, settings.body_timeout, settings.max_connections)


def _raw_error(status: int, reason: str, code: str, message: str) -> bytes:
    """A complete HTTP/1.1 error answer with the service's error body; the connection closes."""
    body = json.dumps(error_body(code, message)).encode()
    head = (
        f"HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\n"
        f"content-length: {len(body)}\r\nconnection: close\r\n\r\n"
    )
    return head.encode("ascii") + body


class GuardedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with header and body timeouts and a connection limit."""

    def __init__(self, config: uvicorn.Config, *args: Any, **kwargs: Any) -> None:
        super().__init__(config, *args, **kwargs)
        self.limits: ConnectionLimits = getattr(config, LIMITS_ATTRIBUTE, ConnectionLimits())
        self._deadline: asyncio.TimerHandle | None = None
        self._waiting_for: str | None = None  # "headers" or "body": what the timer is for

    # ---------------------------------------------------------------- timers
    def _arm(self, seconds: float, waiting_for: str) -> None:
        self._disarm()
        self._deadline = self.loop.call_later(seconds, self._expired)
        self._waiting_for = waiting_for

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None
        self._waiting_for = None

    def _expired(self) -> None:
        """Close a connection whose client is too slow; 408 when it sent part of a request."""
        self._deadline = None
        self._waiting_for = None
        if self.transport.is_closing():
            return
        partial = bool(self.conn.trailing_data[0]) or self.conn.their_state is h11.SEND_BODY
        answered = self.cycle is not None and self.cycle.response_started
        if partial and not answered:
            self.transport.write(
                _raw_error(
                    408,
                    "Request Timeout",
                    "request_timeout",
                    "the request was not sent in time; the connection is closed",
                )
            )
        self.transport.close()

    def _rearm(self) -> None:
        """The timer for what the client owes now: its headers (one deadline for the whole
        head, however slowly it trickles in), or the next piece of its body."""
        if self.transport.is_closing():
            return
        state = self.conn.their_state
        if state is h11.IDLE:
            idle = self.cycle is None or self.cycle.response_complete
            if idle and self._waiting_for != "headers":
                self._arm(self.limits.header_timeout, "headers")
        elif state is h11.SEND_BODY:
            self._arm(self.limits.body_timeout, "body")
        else:
            self._disarm()  # the request is complete: the application has the time it takes

    # ---------------------------------------------------------------- protocol
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        """Refuse the connection beyond the limit; otherwise start the header timer."""
        super().connection_made(transport)
        if len(self.connections) > self.limits.max_connections:
            logger.warning(
                "connection refused: %d open, limit %d (NKP_MAX_CONNECTIONS)",
                len(self.connections) - 1,
                self.limits.max_connections,
            )
            transport.write(
                _raw_error(
                    503,
                    "Service Unavailable",
                    "too_many_connections",
                    f"the service has {self.limits.max_connections} open connections, its "
                    "limit; retry later",
                )
            )
            transport.close()
            return
        self._arm(self.limits.header_timeout, "headers")

    def data_received(self, data: bytes) -> None:
        """Hand the bytes to h11, then re-arm the timer for what is still owed."""
        super().data_received(data)
        self._rearm()

    def on_response_complete(self) -> None:
        """After an answer the next request's headers are owed within the header timeout."""
        super().on_response_complete()
        self._disarm()
        self._rearm()

    def connection_lost(self, exc: Exception | None) -> None:
        """Stop the timer with the connection."""
        self._disarm()
        super().connection_lost(exc)


def uvicorn_config(app: Any, settings: ServiceSettings, **options: Any) -> uvicorn.Config:
    """A uvicorn ``Config`` for ``app`` with the service's connection limits.

    Parameters
    ----------
    app : ASGI app or str
        The app or its import string (``factory=True`` in ``options`` for a factory).
    settings : ServiceSettings
        ``timeout_keep_alive``, ``max_header_bytes`` (h11's limit), ``max_connections``
        (also uvicorn's ``limit_concurrency``, one above it, so that uvicorn's own plain 503
        only backs up :class:`GuardedH11Protocol`'s), ``header_timeout``, ``body_timeout``.
    **options
        Any other ``uvicorn.Config`` argument (host, port, workers, log_level...).
    """
    config = uvicorn.Config(
        app,
        http=GuardedH11Protocol,
        timeout_keep_alive=max(1, round(settings.timeout_keep_alive)),
        h11_max_incomplete_event_size=settings.max_header_bytes,
        limit_concurrency=settings.max_connections + 1,
        **options,
    )
    setattr(config, LIMITS_ATTRIBUTE, ConnectionLimits.of(settings))
    return config
