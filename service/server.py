"""Run the service under uvicorn: ``serve()`` is what ``nkpredict serve`` calls.

The model is loaded (and checked) *before* uvicorn starts, so a wrong model URI ends the
command at once with a :class:`~nkpredict.exceptions.ModelLoadError` (the CLI turns it into
a one-line message and a non-zero exit) instead of a half-started server.

With ``workers > 1`` uvicorn starts separate processes that each build their app from the
environment (``service.app:create_app`` as a factory): every ``NKP_*`` variable applies to
them, and ``serve`` exports ``NKP_MODEL_URI`` for them. Each worker loads its own copy of
the model; keep ``workers x NKP_MODEL_THREADS`` at or below the number of cores.

Slow and idle clients are bounded by :mod:`service.connections` (keep-alive, header and body
timeouts, header size, connection limit), set from :class:`~service.config.ServiceSettings`.
"""

from __future__ import annotations

import contextlib
import inspect
import logging
import os
import socket
import sys
from typing import Any

import uvicorn
from uvicorn.supervisors import Multiprocess

from nkpredict.model.fitted import NKResistanceModel
from nkpredict.registry import ModelReference
from nkpredict.settings import Settings
from service.app import create_app
from service.config import ServiceSettings
from service.connections import uvicorn_config
from service.state import default_loader, redact_uri

__all__ = ["APP_FACTORY", "access_log_shown", "run_workers", "serve"]

logger = logging.getLogger(__name__)

APP_FACTORY = "service.app:create_app"
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000
STARTUP_FAILURE = 3
"""Exit status when uvicorn could not start (as ``uvicorn.run`` exits)."""


def serve(
    model_uri: str | None = None,
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    workers: int = 1,
    *,
    log_level: str = "info",
    settings: Settings | None = None,
) -> None:
    """Serve the API with uvicorn until interrupted.

    Parameters
    ----------
    model_uri : str, optional
        MLflow model URI or model directory; default ``settings.model_uri``
        (``NKP_MODEL_URI``, else ``models:/nk-resistance@champion``).
    host, port : str, int
        Where to listen (``0.0.0.0`` in a container).
    workers : int
        Uvicorn worker processes (each loads the model).
    log_level : str
        Uvicorn's log level.
    settings : ServiceSettings or Settings, optional
        Defaults to ``ServiceSettings()``. Library :class:`~nkpredict.settings.Settings` (as
        the command line builds them) are completed from the environment
        (:meth:`ServiceSettings.of <service.config.ServiceSettings.of>`). With several
        workers only the environment reaches them.

    Raises
    ------
    ModelLoadError
        The model cannot be loaded; nothing is started.
    ValueError
        ``workers`` is below 1.
    """
    if workers < 1:
        raise ValueError(f"workers must be at least 1, not {workers}")
    config = ServiceSettings() if settings is None else ServiceSettings.of(settings)
    if model_uri is not None:
        config = config.model_copy(update={"model_uri": model_uri})
    load = default_loader(config)
    logger.info("checking model %s", redact_uri(config.model_uri))
    first = load(config.model_uri)
    if workers == 1:
        pending: list[tuple[NKResistanceModel, ModelReference]] = [first]

        def loader(uri: str) -> tuple[NKResistanceModel, ModelReference]:
            """The already loaded model at start-up, a fresh load on every reload."""
            if pending and uri == config.model_uri:
                return pending.pop()
            return load(uri)

        app = create_app(config, model_loader=loader)
        server_config = uvicorn_config(
            app,
            config,
            host=host,
            port=port,
            lifespan="on",
            log_level=log_level,
            access_log=access_log_shown(log_level),
        )
        server = uvicorn.Server(server_config)
        with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C, SIGINT: a normal stop
            server.run()
        if not server.started:
            sys.exit(STARTUP_FAILURE)
        return
    del first
    os.environ["NKP_MODEL_URI"] = config.model_uri
    run_workers(host, port, workers, log_level, settings=config)


def access_log_shown(log_level: str) -> bool:
    """Whether uvicorn's access lines (logged at INFO) would be shown at ``log_level``.

    uvicorn formats the client address and path of every request before its logger drops an
    access line below the configured level; switching the access log off when nothing would
    be shown saves that work (a few microseconds per request) and changes no output.
    """
    level = logging.getLevelName(log_level.upper())
    return not isinstance(level, int) or level <= logging.INFO


def run_workers(
    host: str,
    port: int,
    workers: int,
    log_level: str,
    app: str = APP_FACTORY,
    factory: bool = True,
    settings: ServiceSettings | None = None,
) -> None:
    """``uvicorn.run(app, factory=factory, workers=...)``, with Nagle switched off.

    uvicorn binds the socket it shares between worker processes without naming the TCP
    protocol, so asyncio does not set ``TCP_NODELAY`` on the connections it accepts. A
    response's headers and body then leave as two small writes and the second waits for the
    client's delayed ACK: about 40 ms per request (180 requests/s instead of 5,000 for a bare
    FastAPI endpoint with two workers on 2 cores). ``TCP_NODELAY`` set on the listening
    socket is copied to every accepted connection (Linux), which removes the stall.

    The connection limits of ``settings`` (default: from the environment) apply to every
    worker (:func:`service.connections.uvicorn_config`).
    """
    config = uvicorn_config(
        app,
        ServiceSettings() if settings is None else settings,
        factory=factory,
        host=host,
        port=port,
        workers=workers,
        lifespan="on",
        log_level=log_level,
        access_log=access_log_shown(log_level),
    )
    sock = config.bind_socket()
    if sock.family in (socket.AF_INET, socket.AF_INET6):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    supervisor: Any
    if "target" in inspect.signature(Multiprocess).parameters:  # uvicorn < 0.36
        target = uvicorn.Server(config).run
        supervisor = Multiprocess(config, target=target, sockets=[sock])  # type: ignore[call-arg]
    else:
        supervisor = Multiprocess(config, sockets=[sock])
    supervisor.run()
