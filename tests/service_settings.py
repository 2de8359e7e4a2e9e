"""Service settings for tests: explicit values that ignore the environment's NKP_* keys."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from service.config import ServiceSettings

__all__ = ["make_settings"]


def make_settings(model_dir: Path | str, **overrides: Any) -> ServiceSettings:
    """Settings serving ``model_dir`` with no API keys and no CORS origins (explicit values
    win over the environment), and ``overrides`` on top."""
    values: dict[str, Any] = {
        "model_uri": str(model_dir),
        "api_key": None,
        "admin_api_key": None,
        "cors_origins": [],
    }
    values.update(overrides)
    return ServiceSettings(**values)
