"""Everything MLflow of training: runs and what they log, registration and promotion.

The pipeline (:mod:`training.pipeline`) logs only through the functions here and never
imports :mod:`mlflow`. Pointing MLflow at a store, logging and loading models are the
library's (:mod:`nkpredict.integrations.mlflow`, re-exported here: :func:`setup_tracking`,
:func:`log_model`, :func:`package_versions`), so training, the command line and the service
set MLflow up with one function and one rule.
"""

from __future__ import annotations

import logging
import subprocess
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import mlflow
import numpy as np
import pandas as pd
from mlflow import MlflowClient
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException

from nkpredict.exceptions import ModelLoadError, NKPredictError
from nkpredict.integrations.mlflow import (
    TRACKED_PACKAGES,
    log_model,
    package_versions,
    setup_tracking,
)
from nkpredict.settings import Settings

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = [
    "CHALLENGER",
    "CHAMPION",
    "TRACKED_PACKAGES",
    "PromotionDecision",
    "TrackingError",
    "current_champion",
    "decide_promotion",
    "experiment_id",
    "git_commit",
    "is_local_store",
    "list_versions",
    "log_artifact",
    "log_csv",
    "log_dataset",
    "log_dict",
    "log_environment",
    "log_figure",
    "log_metrics",
    "log_model",
    "log_params",
    "log_step_metric",
    "log_table",
    "log_text",
    "package_versions",
    "registration",
    "run_metrics",
    "run_params",
    "set_alias",
    "set_tag",
    "setup_tracking",
    "start_run",
]

logger = logging.getLogger(__name__)

CHAMPION = "champion"
CHALLENGER = "challenger"


class TrackingError(NKPredictError):
    """The MLflow tracking server or store cannot be used."""


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
    log_dict(package_versions(), "environment.json")


@contextmanager
def start_run(experiment: str) -> Iterator[str]:
    """An MLflow run in experiment id ``experiment`` for the block; yields the run id.

    The run ends when the block does (status ``FAILED`` when it raises).
    """
    with mlflow.start_run(experiment_id=experiment) as run:
        yield str(run.info.run_id)


def log_params(params: Mapping[str, Any]) -> None:
    """Log parameters on the active run (values are stored as strings)."""
    mlflow.log_params(dict(params))


def log_metrics(metrics: Mapping[str, float]) -> None:
    """Log the finite values of ``metrics`` on the active run (NaN and inf are skipped)."""
    mlflow.log_metrics({k: float(v) for k, v in metrics.items() if np.isfinite(v)})


def log_step_metric(name: str, values: Any) -> None:
    """Log ``values`` (one per step, e.g. per CV fold) as metric ``name``; skip non-finite."""
    for step, value in enumerate(np.asarray(values, dtype=np.float64)):
        if np.isfinite(value):
            mlflow.log_metric(name, float(value), step=step)


def set_tag(name: str, value: str) -> None:
    """Tag the active run."""
    mlflow.set_tag(name, value)


def log_dict(value: Mapping[str, Any], artifact_file: str) -> None:
    """Log ``value`` as a JSON artifact at ``artifact_file`` of the active run."""
    mlflow.log_dict(dict(value), artifact_file)


def log_text(text: str, artifact_file: str) -> None:
    """Log ``text`` as the artifact ``artifact_file`` of the active run."""
    mlflow.log_text(text, artifact_file)


def log_artifact(path: Path, artifact_dir: str | None = None) -> None:
    """Copy the file ``path`` into directory ``artifact_dir`` of the active run's artifacts."""
    mlflow.log_artifact(str(path), artifact_dir)


def log_csv(frame: pd.DataFrame, artifact_dir: str, file_name: str) -> None:
    """Log ``frame`` (without its index) as CSV file ``artifact_dir/file_name``."""
    with tempfile.TemporaryDirectory(prefix="nkpredict-artifact-") as tmp:
        path = Path(tmp) / file_name
        frame.to_csv(path, index=False)
        log_artifact(path, artifact_dir)


def log_table(frame: pd.DataFrame, artifact_file: str) -> None:
    """Log ``frame`` as an MLflow table (JSON, shown in the UI) at ``artifact_file``."""
    mlflow.log_table(frame, artifact_file)


def log_figure(figure: Figure, artifact_file: str) -> None:
    """Log a matplotlib ``figure`` as the image ``artifact_file``."""
    mlflow.log_figure(figure, artifact_file)


def log_dataset(
    frame: pd.DataFrame, *, source: str, name: str, targets: str, digest: str, context: str
) -> None:
    """Log ``frame`` as an MLflow dataset input of the active run.

    Parameters
    ----------
    frame : DataFrame, shape (n_samples, n_columns)
        The data as the model saw it (features and the target column).
    source : str
        Where the data came from (the expression file).
    name, targets, digest : str
        Dataset name, target column and a short content hash.
    context : str
        ``training`` or ``evaluation``.
    """
    dataset = mlflow.data.from_pandas(  # type: ignore[attr-defined]
        frame, source=source, name=name, targets=targets, digest=digest
    )
    mlflow.log_input(dataset, context=context)


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
    Use it inside :func:`start_run` around logging, promotion and aliasing::

        with start_run(experiment) as run_id, registration(name):
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
