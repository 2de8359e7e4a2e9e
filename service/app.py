"""The FastAPI app factory: settings, model holder, middleware, routes, error handlers.

``create_app()`` builds an app whose lifespan loads ``settings.model_uri`` once (an MLflow
URI such as ``models:/nk-resistance@champion`` in the configured store, or a local model
directory). If that fails the lifespan raises, so uvicorn reports the error and exits
non-zero instead of serving without a model. Routes get the model through
:mod:`service.deps` (the :func:`~service.deps.get_loaded_model` dependency, which tests may
override); the routes themselves live in :mod:`service.api`.

Run it with ``nkpredict serve`` (:func:`service.server.serve`) or directly::

    NKP_MODEL_URI=/models/champion uvicorn --factory service.app:create_app --lifespan on
"""

from __future__ import annotations

import asyncio
import gc
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from starlette.concurrency import run_in_threadpool

from nkpredict import __version__
from nkpredict.exceptions import ModelLoadError
from service.api import admin, model, probes, scoring, whatif
from service.config import ServiceSettings
from service.dispatch import ServiceApp
from service.docs import add_docs
from service.errors import install_error_handlers
from service.metrics import MetricsMiddleware, ServiceMetrics
from service.security import API_KEY_HEADER, BodySizeLimitMiddleware
from service.state import LoadedModel, ModelHolder, ModelLoader, default_loader, redact_uri

__all__ = ["DESCRIPTION", "create_app"]

logger = logging.getLogger(__name__)

DESCRIPTION = """
Predict and explain NK-cell resistance of blood-cancer samples from gene expression.

* `POST /v1/predict` — samples as JSON `{"samples": {"<id>": {"<gene>": value}}}`;
  genes as HGNC symbols, aliases (B7-H6), Ensembl or Entrez IDs; raw counts, TPM or
  log2(x+1) (auto-detected unless `scale` is given).
* `POST /v1/predict/file` — the same from an uploaded CSV/TSV/Parquet file.
* `POST /v1/explain` — TreeSHAP attributions summed to genes, NK ligand axes and pathways.
* `POST /v1/whatif` — the prediction after interventions on the expression profile
  (built-ins such as `b7h6_restoration`, or your own genes -> values/percentiles):
  expression counterfactuals of the model, not pharmacology.
* `GET /v1/model` — the model being served and how it was evaluated.

Errors always have the body `{"error": {"code", "message", "details"}}`. When the service
has an API key, send it in the `X-API-Key` header (not needed for /health, /ready, /metrics).
"""


def _model_loaded_hook(metrics: ServiceMetrics) -> Callable[[LoadedModel], None]:
    """Keep the ``model_info`` metric on the model being served."""

    def on_swap(loaded: LoadedModel) -> None:
        ref = loaded.reference
        metrics.set_model(ref.name, ref.version, redact_uri(ref.uri))

    return on_swap


def _add_routes(app: FastAPI) -> None:
    """The API routes first, then the probes, the admin routes and the documentation.

    FastAPI's router tries routes in order and each candidate costs a few microseconds even
    when its path does not match, so the prediction routes, which take almost all the
    traffic, come first, as routes of the app itself (an included router is matched in two
    steps). The OpenAPI document and its page (``/openapi.json``, ``/docs``: see
    :mod:`service.docs`), which ``FastAPI()`` would otherwise put in front, are added last.
    """
    app.router.routes.extend(scoring.direct_router.routes)  # matched directly, not as a sub-router
    app.router.routes.extend(whatif.router.routes)  # a direct route too, after the hot two
    app.include_router(scoring.router)
    app.include_router(model.router)
    app.include_router(probes.router)
    app.include_router(admin.router)
    app.openapi_url = "/openapi.json"
    app.setup()
    add_docs(app)  # /docs with Swagger UI from an installed package, not a CDN


def create_app(
    settings: ServiceSettings | None = None, model_loader: ModelLoader | None = None
) -> FastAPI:
    """Build the service.

    Parameters
    ----------
    settings : ServiceSettings, optional
        Defaults to ``ServiceSettings()`` (``NKP_*`` environment variables).
    model_loader : callable, optional
        ``loader(uri) -> (NKResistanceModel, ModelReference)``, used at start-up and by
        ``/v1/admin/reload``; defaults to :func:`service.state.default_loader`.

    Returns
    -------
    FastAPI
        A :class:`~service.dispatch.ServiceApp` (POSTs to ``/v1/predict``, ``/v1/explain``
        and ``/v1/whatif`` skip the framework's routing layers, with the same middleware and
        error handlers); not yet serving: the model is loaded when its lifespan starts
        (``with TestClient(app)`` or under uvicorn).
    """
    settings = settings if settings is not None else ServiceSettings()
    metrics = ServiceMetrics()
    holder = ModelHolder(
        model_loader if model_loader is not None else default_loader(settings),
        threads=settings.model_threads,
        on_swap=_model_loaded_hook(metrics),
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        uri = settings.model_uri
        logger.info("loading model %s", redact_uri(uri))
        try:
            await run_in_threadpool(holder.load, uri)
        except ModelLoadError as exc:
            logger.error("cannot start the service: model %s: %s", redact_uri(uri), exc)
            raise
        # Everything loaded so far (libraries, the model) lives as long as the process: keep
        # it out of the garbage collector's full passes, which otherwise walk a million
        # objects and stall a request for tens of milliseconds now and then.
        gc.collect()
        gc.freeze()
        yield
        logger.info("service stopped")

    app = ServiceApp(
        title="nkpredict",
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
        openapi_url=None,  # added after the API routes: see _add_routes
        docs_url=None,  # FastAPI's pages load Swagger UI and ReDoc from a CDN: service.docs
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.metrics = metrics
    app.state.holder = holder
    app.state.upload_slots = asyncio.Semaphore(settings.max_concurrent_uploads)
    install_error_handlers(app)
    _add_routes(app)

    # Added innermost first: CORS (outermost) -> metrics -> body limit -> routes.
    app.add_middleware(BodySizeLimitMiddleware, max_bytes=settings.max_body_bytes, metrics=metrics)
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST"],
            allow_headers=["Content-Type", API_KEY_HEADER],
        )
    return app
