"""The interactive API documentation (``/docs``), served without any outside network.

FastAPI's own ``/docs`` page loads Swagger UI's script and style sheet from a CDN, so the
page stays blank on a machine without internet (a lab network, a cluster node). Here the
same page loads them under ``/docs/assets`` from the static files that the ``fastapi-offline``
package installs (Swagger UI 5, which reads the service's OpenAPI 3.1 document; the older
``swagger-ui-bundle`` package ships Swagger UI 4, which cannot). Only its files are used, not
its ``FastAPI`` replacement, so the order of the routes stays the service's own. ReDoc is not
offered.
"""

from __future__ import annotations

from importlib.resources import files

from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse
from starlette.staticfiles import StaticFiles

__all__ = ["ASSETS", "ASSETS_PATH", "DOCS_PATH", "add_docs"]

DOCS_PATH = "/docs"
"""The Swagger UI page."""
ASSETS_PATH = "/docs/assets"
"""Swagger UI's script, style sheet and icon, from the installed package."""
ASSETS = files("fastapi_offline") / "static"
"""``swagger-ui-bundle.js``, ``swagger-ui.css`` and ``favicon.png`` of ``fastapi-offline``."""


def add_docs(app: FastAPI) -> None:
    """Add the ``/docs`` page and its assets to ``app`` (after its OpenAPI route is set).

    Neither is part of the OpenAPI schema, and like the schema itself they need no API key.
    """
    openapi_url = app.openapi_url or "/openapi.json"
    title = f"{app.title} - API documentation"

    async def docs() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=openapi_url,
            title=title,
            swagger_js_url=f"{ASSETS_PATH}/swagger-ui-bundle.js",
            swagger_css_url=f"{ASSETS_PATH}/swagger-ui.css",
            swagger_favicon_url=f"{ASSETS_PATH}/favicon.png",
        )

    app.add_api_route(DOCS_PATH, docs, methods=["GET"], include_in_schema=False)
    app.mount(ASSETS_PATH, StaticFiles(directory=str(ASSETS)), name="swagger-ui")
