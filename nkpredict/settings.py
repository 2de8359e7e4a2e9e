"""Configuration shared by the command line and the service (environment prefix ``NKP_``)."""

from __future__ import annotations

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_TRACKING_URI = "sqlite:///mlruns/mlflow.db"
DEFAULT_MODEL_NAME = "nk-resistance"
DEFAULT_MIN_COVERAGE = 0.5
"""Least fraction of a model's genes a sample must carry to be scored: one default for the
command line, streaming and the service (below it, a prediction leans on imputed medians)."""


class Settings(BaseSettings):
    """Every configurable value of nkpredict; read from ``NKP_*`` environment variables.

    ``MLFLOW_TRACKING_URI`` is honoured when ``NKP_TRACKING_URI`` is not set.
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

    model_uri: str = Field(
        default=f"models:/{DEFAULT_MODEL_NAME}@champion",
        description="Model the service loads: an MLflow model URI or a local model directory.",
    )
    api_key: SecretStr | None = Field(
        default=None, description="If set, every route but /health needs the X-API-Key header."
    )
    admin_api_key: SecretStr | None = Field(
        default=None, description="Key for admin routes (default: api_key; admin needs one)."
    )
    max_body_bytes: int = Field(default=20_000_000, description="Largest accepted request body.")
    max_samples: int = Field(default=10_000, description="Most samples in one request.")
    max_upload_expanded_bytes: int = Field(
        default=200_000_000,
        ge=1,
        description="Largest uncompressed size of an uploaded file (gzipped text, Parquet): a "
        "small compressed upload may not expand into gigabytes (decompression bomb).",
    )
    min_coverage: float = Field(
        default=DEFAULT_MIN_COVERAGE,
        ge=0.0,
        le=1.0,
        description="Least fraction of model genes a sample needs.",
    )
    cors_origins: list[str] = Field(default_factory=list, description="CORS origins (off).")
    model_threads: int = Field(default=1, ge=1, description="XGBoost threads per worker.")
    explain_top_n: int = Field(
        default=10,
        ge=1,
        description="Units per level in /v1/explain answers (the rest is summed as 'other').",
    )
    report_max_items: int = Field(
        default=100,
        ge=0,
        description="Most entries per list/dict of the harmonization report in answers.",
    )
    inline_max_bytes: int = Field(
        default=262_144,
        ge=0,
        description="Prediction bodies up to this size (about 100 samples of 150 genes, a few "
        "milliseconds of work) are answered on the event loop: less CPU than handing them to "
        "a worker thread, which also makes the threads contend for the GIL. Larger ones run "
        "in the threadpool, so the event loop keeps answering. Explanations, about ten times "
        "the work per sample, run inline up to a sixteenth of this. 0: always the threadpool.",
    )
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

    def mlflow_http_environment(self) -> dict[str, str]:
        """MLflow's HTTP client settings derived from these settings (names -> values).

        MLflow reads them from the environment on every request; the service exports them
        when it sets up its model loader (:func:`service.state.default_loader`), so an
        unreachable tracking server fails a start-up or a reload within about
        ``timeout x (retries + 1) + 2 ** retries`` seconds instead of minutes.
        """
        return {
            "MLFLOW_HTTP_REQUEST_TIMEOUT": f"{self.mlflow_http_timeout:g}",
            "MLFLOW_HTTP_REQUEST_MAX_RETRIES": str(self.mlflow_http_max_retries),
            "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
            "MLFLOW_HTTP_REQUEST_BACKOFF_JITTER": "0",
        }

    def resolved_tracking_uri(self) -> str:
        """Tracking URI: ``NKP_TRACKING_URI``, else ``MLFLOW_TRACKING_URI``, else local SQLite."""
        if self.tracking_uri:
            return self.tracking_uri
        from mlflow.environment_variables import MLFLOW_TRACKING_URI

        return MLFLOW_TRACKING_URI.get() or DEFAULT_TRACKING_URI
