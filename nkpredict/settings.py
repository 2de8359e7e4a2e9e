"""Configuration shared by the command line and the service (environment prefix ``NKP_``)."""

from __future__ import annotations

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_TRACKING_URI = "sqlite:///mlruns/mlflow.db"
DEFAULT_MODEL_NAME = "nk-resistance"


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
    min_coverage: float = Field(
        default=0.5, ge=0.0, le=1.0, description="Least fraction of model genes a sample needs."
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

    def resolved_tracking_uri(self) -> str:
        """Tracking URI: ``NKP_TRACKING_URI``, else ``MLFLOW_TRACKING_URI``, else local SQLite."""
        if self.tracking_uri:
            return self.tracking_uri
        from mlflow.environment_variables import MLFLOW_TRACKING_URI

        return MLFLOW_TRACKING_URI.get() or DEFAULT_TRACKING_URI
