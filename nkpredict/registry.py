"""Load a fitted model from a local directory or an MLflow model URI, without unpickling.

Accepted references:

* a directory written by :meth:`NKResistanceModel.save` (holds ``model.json``);
* a directory holding an MLflow model logged by nkpredict (holds ``MLmodel``);
* any MLflow model URI: ``models:/NAME@ALIAS``, ``models:/NAME/VERSION``, ``runs:/ID/model``,
  ``models:/m-<id>``. Its artifacts are downloaded and the nkpredict directory inside is read.
"""

from __future__ import annotations

import logging
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from nkpredict.exceptions import ModelLoadError
from nkpredict.model.fitted import MODEL_FILE, NKResistanceModel

logger = logging.getLogger(__name__)

MODEL_ARTIFACT = "nkpredict_model"


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


_UNREACHABLE_SIGNS = (
    "Max retries exceeded",
    "Failed to establish a new connection",
    "Connection refused",
    "timed out",
    "Name or service not known",
)


def mlflow_failure(action: str, message: str) -> str:
    """One readable sentence for a failed MLflow call; names the server when unreachable.

    Parameters
    ----------
    action : str
        What was attempted (``"cannot resolve models:/nk@champion"``).
    message : str
        MLflow's message (long, with the HTTP client's retry details).
    """
    import mlflow

    if any(sign in message for sign in _UNREACHABLE_SIGNS):
        return (
            f"{action}: the MLflow tracking server {mlflow.get_tracking_uri()} cannot be "
            f"reached ({message[:300]})"
        )
    return f"{action}: {message}"


def _registry_details(uri: str) -> ModelReference:
    """Resolve ``models:/NAME@ALIAS`` or ``models:/NAME/VERSION`` to version and run."""
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    body = uri.removeprefix("models:/")
    client = MlflowClient()
    try:
        if "@" in body:
            name, alias = body.split("@", 1)
            version = client.get_model_version_by_alias(name, alias)
            return ModelReference(uri, name, str(version.version), alias, version.run_id)
        name, _, number = body.partition("/")
        if number.isdigit():
            version = client.get_model_version(name, number)
            return ModelReference(uri, name, number, None, version.run_id)
    except MlflowException as exc:
        raise ModelLoadError(mlflow_failure(f"cannot resolve {uri}", exc.message)) from exc
    return ModelReference(uri)


def load_model(reference: str | Path) -> tuple[NKResistanceModel, ModelReference]:
    """Load a model from a directory or an MLflow URI (see module docstring).

    Raises
    ------
    ModelLoadError
        The reference does not exist, cannot be reached, or holds no nkpredict model.
    """
    text = str(reference)
    path = Path(text)
    if path.exists():
        return _read_model(_find_model_dir(path)), ModelReference(uri=text)
    if "://" not in text and not text.startswith("models:/"):
        raise ModelLoadError(f"model {text!r}: no such directory and not an MLflow URI")
    import mlflow
    from mlflow.exceptions import MlflowException

    details = _registry_details(text) if text.startswith("models:/") else ModelReference(text)
    with tempfile.TemporaryDirectory(prefix="nkpredict-model-") as tmp:
        try:
            local = mlflow.artifacts.download_artifacts(artifact_uri=text, dst_path=tmp)
        except (MlflowException, OSError) as exc:
            raise ModelLoadError(mlflow_failure(f"cannot download model {text}", str(exc))) from exc
        try:
            directory = _find_model_dir(Path(local))
        except ModelLoadError:
            raise ModelLoadError(
                f"cannot download model {text}: the artifact store "
                f"({mlflow.get_tracking_uri()}) returned no nkpredict model files "
                f"({MODEL_FILE} missing; were the artifacts deleted?)"
            ) from None
        model = _read_model(directory)
    logger.info("loaded model %s (version %s)", text, details.version)
    return model, details
