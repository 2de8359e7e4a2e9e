"""Load a fitted model from a local directory or an MLflow model URI, without unpickling.

Accepted references:

* a directory written by :meth:`NKResistanceModel.save` (holds ``model.json``);
* a directory holding an MLflow model logged by nkpredict (holds ``MLmodel``);
* any MLflow model URI: ``models:/NAME@ALIAS``, ``models:/NAME/VERSION``, ``runs:/ID/model``,
  ``models:/m-<id>``. Its artifacts are downloaded and the nkpredict directory inside is read.

Each reference has a kind (:data:`ModelUriKind`: ``directory``, ``models``, ``runs`` or
``artifact`` for any other ``scheme://`` URI), so that a caller may accept only some kinds
(the service's admin reload). Credentials in a URI (``https://user:secret@host``) never
leave this module in a message: :func:`redact_uri` and :func:`redact_text`.

Everything MLflow (resolving a registered name, downloading artifacts, pointing MLflow at a
store) is in :mod:`nkpredict.integrations.mlflow`, imported only when a URI is loaded; this
module holds the references themselves. MLflow pyfunc artifacts logged by earlier versions
import :data:`MODEL_ARTIFACT` from here.
"""

from __future__ import annotations

import logging
import re
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, get_args
from urllib.parse import urlsplit, urlunsplit

from nkpredict.exceptions import ModelLoadError
from nkpredict.model.fitted import MODEL_FILE, NKResistanceModel

if TYPE_CHECKING:
    from nkpredict.settings import Settings

__all__ = [
    "MODEL_ARTIFACT",
    "MODEL_URI_KINDS",
    "ModelReference",
    "ModelUriKind",
    "is_mlflow_uri",
    "load_model",
    "redact_text",
    "redact_uri",
    "uri_kind",
]

logger = logging.getLogger(__name__)

MODEL_ARTIFACT = "nkpredict_model"
"""Name of the nkpredict model directory among a logged MLflow model's artifacts."""

ModelUriKind = Literal["directory", "models", "runs", "artifact"]
"""What a model reference is: a local directory, a registered model (``models:/``), a run's
model (``runs:/``), or any other artifact URI (``file://``, ``s3://``, ``https://``...)."""
MODEL_URI_KINDS: tuple[ModelUriKind, ...] = get_args(ModelUriKind)

_CREDENTIALS = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.\-]*://)[^/@\s'\"]*@")


def redact_uri(uri: str) -> str:
    """``uri`` without user information (``https://user:secret@host/`` -> ``https://host/``)."""
    if "@" not in uri or "://" not in uri:
        return uri
    try:
        parts = urlsplit(uri)
        if parts.password is None and parts.username is None:
            return uri
        port = parts.port
    except ValueError:  # not a well-formed URL: remove what looks like user information
        return redact_text(uri)
    host = parts.hostname or ""
    netloc = f"{host}:{port}" if port else host
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def redact_text(text: str) -> str:
    """``text`` with the user information of every URI in it removed (messages, logs)."""
    if "@" not in text:
        return text
    return _CREDENTIALS.sub(r"\g<scheme>", text)


def uri_kind(reference: str | Path) -> ModelUriKind:
    """The kind of a model reference (see :data:`ModelUriKind`).

    Raises
    ------
    ModelLoadError
        ``reference`` is neither an existing directory nor a URI.
    """
    text = str(reference)
    if not is_mlflow_uri(text):
        return "directory"
    if text.startswith("models:/"):
        return "models"
    if text.startswith("runs:/"):
        return "runs"
    return "artifact"


@dataclass(frozen=True)
class ModelReference:
    """Where a loaded model came from."""

    uri: str
    name: str | None = None
    version: str | None = None
    alias: str | None = None
    run_id: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-serialisable form."""
        return asdict(self)


def _find_model_dir(root: Path) -> Path:
    if (root / MODEL_FILE).is_file():
        return root
    candidate = root / "artifacts" / MODEL_ARTIFACT
    if (candidate / MODEL_FILE).is_file():
        return candidate
    raise ModelLoadError(f"{root} holds no nkpredict model ({MODEL_FILE} not found)")


def _read_model(directory: Path) -> NKResistanceModel:
    """:meth:`NKResistanceModel.load` with every malformed-content error as ModelLoadError.

    A truncated or hand-edited ``model.json`` (a missing key, a value of the wrong type)
    would otherwise surface as a bare ``KeyError`` with a traceback instead of a one-line
    reason.
    """
    try:
        return NKResistanceModel.load(directory)
    except ModelLoadError:
        raise
    except (KeyError, IndexError, TypeError, ValueError, AttributeError) as exc:
        reason = f"missing entry {exc}" if isinstance(exc, KeyError) else str(exc)
        raise ModelLoadError(
            f"{directory} does not hold a valid nkpredict model ({type(exc).__name__}: {reason})"
        ) from exc
    except OSError as exc:
        raise ModelLoadError(f"cannot read the model at {directory}: {exc}") from exc


def is_mlflow_uri(reference: str | Path) -> bool:
    """True when ``reference`` is read through MLflow: not an existing path, but a URI.

    Raises
    ------
    ModelLoadError
        ``reference`` is neither an existing directory nor a URI.
    """
    text = str(reference)
    if Path(text).exists():
        return False
    if "://" not in text and not text.startswith(("models:/", "runs:/")):
        raise ModelLoadError(
            f"model {redact_text(text)!r}: no such directory and not an MLflow URI"
        )
    return True


def load_model(
    reference: str | Path,
    *,
    settings: Settings | None = None,
    tracking_uri: str | None = None,
) -> tuple[NKResistanceModel, ModelReference]:
    """Load a model from a directory or an MLflow URI (see module docstring).

    Parameters
    ----------
    reference : str or Path
        A model directory or an MLflow model URI.
    settings : Settings, optional
        Given by readers (the service, ``nkpredict predict``): before an MLflow URI is
        resolved, MLflow is pointed at the tracking store (``tracking_uri``, else the one of
        ``settings``) with :func:`nkpredict.integrations.mlflow.setup_tracking`, refusing a
        local store that does not exist. Without it MLflow's current tracking URI is used.
    tracking_uri : str, optional
        The tracking store (``--tracking-uri``); only with ``settings``.

    Raises
    ------
    ModelLoadError
        The reference does not exist, cannot be reached, or holds no nkpredict model.
    """
    text = str(reference)
    if not is_mlflow_uri(text):
        return _read_model(_find_model_dir(Path(text))), ModelReference(uri=text)
    try:
        return _load_mlflow_model(text, settings, tracking_uri)
    except ModelLoadError as exc:  # MLflow quotes URIs (the tracking server's too) verbatim
        message = redact_text(str(exc))
        if message == str(exc):
            raise
        raise type(exc)(message) from None


def _load_mlflow_model(
    text: str, settings: Settings | None, tracking_uri: str | None
) -> tuple[NKResistanceModel, ModelReference]:
    """:func:`load_model` of an MLflow URI; the download is deleted on every path."""
    from nkpredict.integrations import mlflow as mlflow_adapter

    if settings is not None:
        try:
            mlflow_adapter.setup_tracking(tracking_uri, settings, create_store=False)
        except mlflow_adapter.MissingStoreError as exc:
            raise mlflow_adapter.MissingStoreError(f"cannot load {text}: {exc}") from None
    with tempfile.TemporaryDirectory(prefix="nkpredict-model-") as tmp:
        local, details = mlflow_adapter.download_model(text, Path(tmp))
        try:
            directory = _find_model_dir(local)
        except ModelLoadError:
            raise ModelLoadError(
                f"cannot download model {text}: the artifact store "
                f"({mlflow_adapter.current_tracking_uri()}) returned no nkpredict model files "
                f"({MODEL_FILE} missing; were the artifacts deleted?)"
            ) from None
        model = _read_model(directory)
    logger.info("loaded model %s (version %s)", redact_uri(text), details.version)
    return model, details
