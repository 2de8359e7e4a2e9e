"""What routes depend on: the app's settings and model, and the API-key checks.

Everything here reads the app's state (``app.state.settings``, ``app.state.holder``) set up by
:func:`service.app.create_app`. The getters are FastAPI dependencies, ``async`` because they
never block (FastAPI would run plain ``def`` dependencies in the threadpool, one hop per
dependency per request); tests may override :func:`get_loaded_model`.

The direct routes (:mod:`service.api.direct`) resolve no dependencies: they call
:func:`current_model` and :func:`app_settings` as plain functions, and their route class
checks :data:`require_api_key` itself.
"""

from __future__ import annotations

from fastapi import Request

from service.config import ServiceSettings
from service.security import APIKeyCheck
from service.state import LoadedModel, ModelHolder

__all__ = [
    "app_settings",
    "current_model",
    "get_holder",
    "get_loaded_model",
    "get_settings",
    "require_admin_key",
    "require_api_key",
]

require_api_key = APIKeyCheck(
    admin=False,
    scheme_name="APIKey",
    description="Needed when the service is configured with NKP_API_KEY.",
)
"""The data routes' check: ``X-API-Key`` when an API key is configured."""
require_admin_key = APIKeyCheck(
    admin=True,
    scheme_name="AdminKey",
    description="NKP_ADMIN_API_KEY (or NKP_API_KEY when no admin key is set).",
)
"""The admin routes' check: the admin key (or the API key) is always required."""


def app_settings(request: Request) -> ServiceSettings:
    """The settings of the app answering ``request``."""
    settings: ServiceSettings = request.app.state.settings
    return settings


def current_model(request: Request) -> LoadedModel:
    """The model being served, taken once per request (503 ``model_not_loaded`` before one
    is loaded)."""
    holder: ModelHolder = request.app.state.holder
    return holder.get()


async def get_holder(request: Request) -> ModelHolder:
    """Dependency: the app's model holder."""
    holder: ModelHolder = request.app.state.holder
    return holder


async def get_loaded_model(request: Request) -> LoadedModel:
    """Dependency: the model for this request (503 before one is loaded). Tests override it."""
    return current_model(request)


async def get_settings(request: Request) -> ServiceSettings:
    """Dependency: the app's settings."""
    return app_settings(request)
