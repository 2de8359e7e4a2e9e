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

from nkpredict.registry import ModelUriKind
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
    max_upload_columns: int = Field(
        default=70_000,
        ge=1,
        description="Most columns (fields of the header line) of an uploaded text file or "
        "Parquet file, checked before parsing: every human gene (about 62,000 Ensembl genes) "
        "fits; a file with a million columns does not reach the parser.",
    )
    max_upload_cell_bytes: int = Field(
        default=1_000,
        ge=16,
        description="Longest text cell (sample ID, gene name) of an uploaded Parquet file, "
        "checked from its metadata before the data is read.",
    )
    max_concurrent_uploads: int = Field(
        default=2,
        ge=1,
        description="Uploads parsed at the same time; more wait their turn (memory stays "
        "bounded by this many uploads).",
    )
    reload_uri_kinds: list[ModelUriKind] = Field(
        default_factory=list,
        description="Kinds of model URI an admin reload may name (directory, models, runs, "
        "artifact); empty: only the kind of NKP_MODEL_URI.",
    )
    timeout_keep_alive: float = Field(
        default=5.0, gt=0, description="Seconds an idle keep-alive connection stays open."
    )
    header_timeout: float = Field(
        default=10.0,
        gt=0,
        description="Seconds a client has to send a request's headers, from connecting or "
        "from the previous answer (slowloris); then 408 and the connection is closed.",
    )
    body_timeout: float = Field(
        default=30.0,
        gt=0,
        description="Seconds a request body may pause between two pieces before the "
        "connection is closed (408).",
    )
    max_connections: int = Field(
        default=200,
        ge=1,
        description="Open connections served at once; further ones get 503 "
        "too_many_connections and are closed (uvicorn's limit_concurrency).",
    )
    max_header_bytes: int = Field(
        default=16_384,
        ge=1_024,
        description="Largest request line plus headers (h11's incomplete-event limit); "
        "larger ones get 400.",
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
    answer_chunk_samples: int = Field(
        default=256,
        ge=1,
        description="/v1/predict and /v1/explain requests of more samples than this are "
        "scored this many samples at a time and their answer is streamed, so a request's "
        "memory follows one chunk, not its number of samples; smaller ones are answered whole.",
    )
    inline_max_bytes: int = Field(
        default=524_288,
        ge=0,
        description="Bodies over this size are always answered in the threadpool, so the "
        "event loop keeps answering. 512 kB holds one whole profile of 19,000 genes; it also "
        "bounds how long one body of never-seen gene identifiers (mapped afresh, about 5 ms "
        "per 1,000) can hold the event loop. 0: always the threadpool.",
    )
    inline_max_ms: float = Field(
        default=10.0,
        ge=0.0,
        description="/v1/predict, /v1/explain and /v1/whatif requests whose estimated work "
        "(parsing by the body's size, the model by its number of samples) is at most this "
        "many milliseconds are answered on the event loop: less CPU than handing them to a "
        "worker thread, which also makes the threads contend for the GIL. That covers one "
        "whole profile of 19,000 genes, or 100 samples of the model's genes for predictions "
        "(explanations: about ten times the work per sample). Larger ones run in the "
        "threadpool.",
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
