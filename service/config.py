"""The service's own settings: what only the HTTP service reads (environment prefix ``NKP_``).

:class:`ServiceSettings` extends the library's :class:`~nkpredict.settings.Settings` (tracking,
experiment, model name, minimum coverage, model threads, MLflow HTTP client) with the model the
service loads, its keys, its request limits and the shape of its answers. The variable names
are those of the library's settings: ``NKP_`` followed by the field name in capitals
(``NKP_API_KEY``, ``NKP_MAX_BODY_BYTES``...).
"""

from __future__ import annotations

from pydantic import Field, SecretStr
from pydantic_settings import SettingsConfigDict

from nkpredict.settings import DEFAULT_MODEL_NAME, Settings

__all__ = ["DEFAULT_MODEL_URI", "ServiceSettings"]

DEFAULT_MODEL_URI = f"models:/{DEFAULT_MODEL_NAME}@champion"
"""The model the service loads unless ``NKP_MODEL_URI`` names another."""


class ServiceSettings(Settings):
    """Every setting of the service; read from ``NKP_*`` environment variables.

    The fields of :class:`~nkpredict.settings.Settings` are inherited (``NKP_MIN_COVERAGE``
    among them: one default for the command line, streaming and the service).
    """

    model_config = SettingsConfigDict(env_prefix="NKP_", extra="ignore")

    model_uri: str = Field(
        default=DEFAULT_MODEL_URI,
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
    cors_origins: list[str] = Field(default_factory=list, description="CORS origins (off).")
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

    @classmethod
    def of(cls, settings: Settings) -> ServiceSettings:
        """``settings`` as service settings: its own values, the service's from the environment.

        Parameters
        ----------
        settings : Settings
            The library's settings (e.g. built by the command line); returned unchanged when it
            already is a :class:`ServiceSettings`.
        """
        if isinstance(settings, cls):
            return settings
        return cls(**settings.model_dump())
