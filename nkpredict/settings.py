"""Configuration shared by the command line and the service (environment prefix ``NKP_``)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = [
    "DEFAULT_MIN_COVERAGE",
    "DEFAULT_MODEL_NAME",
    "DEFAULT_TRACKING_URI",
    "LOW_COVERAGE_WARNING",
    "Settings",
]

DEFAULT_TRACKING_URI = "sqlite:///mlruns/mlflow.db"
DEFAULT_MODEL_NAME = "nk-resistance"
DEFAULT_MIN_COVERAGE = 0.5
LOW_COVERAGE_WARNING = 0.9
"""Below this coverage a scored sample's prediction carries the ``low_coverage`` warning: it is
scored, but a tenth or more of the model's catalogue genes were imputed with training medians."""
"""Least fraction of a model's genes a sample must carry to be scored: one default for the
command line, streaming and the service (below it, a prediction leans on imputed medians)."""


class Settings(BaseSettings):
    """The values the command line, the library and the service share; read from ``NKP_*``
    environment variables.

    The HTTP service adds its own (model URI, keys, request limits) in
    ``service.config.ServiceSettings``, under the same prefix. ``MLFLOW_TRACKING_URI`` is
    honoured when ``NKP_TRACKING_URI`` is not set.
    """

    model_config = SettingsConfigDict(env_prefix="NKP_", extra="ignore")

    tracking_uri: str | None = Field(
        default=None, description="MLflow tracking URI (default: local SQLite store)."
    )
    artifact_root: str = Field(
        default="mlruns/artifacts", description="Artifact location for new local experiments."
    )
    experiment: str = Field(default="nkpredict", description="MLflow experiment name.")
    model_name: str = Field(default=DEFAULT_MODEL_NAME, description="Registered model name.")

    min_coverage: float = Field(
        default=DEFAULT_MIN_COVERAGE,
        ge=0.0,
        le=1.0,
        description="Least fraction of model genes a sample needs.",
    )
    model_threads: int = Field(default=1, ge=1, description="XGBoost threads per worker.")
    mlflow_http_timeout: float = Field(
        default=10.0,
        gt=0,
        description="Seconds one HTTP request to the MLflow tracking server may take "
        "(MLFLOW_HTTP_REQUEST_TIMEOUT for the service).",
    )
    mlflow_http_max_retries: int = Field(
        default=2,
        ge=0,
        description="Retries of a failed MLflow HTTP request (MLFLOW_HTTP_REQUEST_MAX_RETRIES "
        "for the service); with the timeout this bounds how long an unreachable tracking "
        "server delays start-up or a reload.",
    )
