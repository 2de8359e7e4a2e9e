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
from nkpredict.model import MODEL_FILE, NKResistanceModel

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
        raise ModelLoadError(f"cannot resolve {uri}: {exc.message}") from exc
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
        return NKResistanceModel.load(_find_model_dir(path)), ModelReference(uri=text)
    if "://" not in text and not text.startswith("models:/"):
        raise ModelLoadError(f"model {text!r}: no such directory and not an MLflow URI")
    import mlflow
    from mlflow.exceptions import MlflowException

    details = _registry_details(text) if text.startswith("models:/") else ModelReference(text)
    with tempfile.TemporaryDirectory(prefix="nkpredict-model-") as tmp:
        try:
            local = mlflow.artifacts.download_artifacts(artifact_uri=text, dst_path=tmp)
        except (MlflowException, OSError) as exc:
            raise ModelLoadError(f"cannot download model {text}: {exc}") from exc
        model = NKResistanceModel.load(_find_model_dir(Path(local)))
    logger.info("loaded model %s (version %s)", text, details.version)
    return model, details
