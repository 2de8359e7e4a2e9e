"""Train -> evaluate -> log -> register -> promote, as one honest, tracked run.

Every MLflow call goes through :mod:`training.tracking`; the execution engine
(:mod:`training.engines`) runs the cross-validation folds and the boosting.
"""

from __future__ import annotations

import hashlib
import logging
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from nkpredict.catalog import load_catalog
from nkpredict.data.expression import PreparedExpression, prepare_expression, read_expression
from nkpredict.data.labels import LabelDefinition, direction_source
from nkpredict.data.public import join_labels, read_labels
from nkpredict.evaluate.baselines import baseline_estimators
from nkpredict.evaluate.cv import MODEL_NAME, CVResult, group_table, leave_one_group_out_result
from nkpredict.evaluate.folds import CVConfig, make_folds
from nkpredict.evaluate.metrics import (
    HIGHER_IS_BETTER,
    PRIMARY_METRIC,
    calibration_table,
    oracle_metrics,
    score_with_intervals,
)
from nkpredict.evaluate.summary import evaluation_summary
from nkpredict.exceptions import LabelError
from nkpredict.features.genome import DEFAULT_GENOME_ALPHA, DEFAULT_GENOME_GENES
from nkpredict.model.fitted import NKResistanceModel
from nkpredict.registry import ModelReference, load_model
from nkpredict.report.html import build_report, write_report
from nkpredict.report.plots import classification_figure, regression_figure
from nkpredict.settings import Settings
from nkpredict.uncertainty.conformal import DEFAULT_LEVEL
from nkpredict.vocabulary import AucMethod, LabelFormat, ScaleChoice, Task
from nkpredict.vocabulary import Engine as EngineName
from training import tracking
from training.engines import Engine, LocalEngine, open_engine

__all__ = [
    "ALL_GENES_BASELINE",
    "MODEL_ESTIMATOR",
    "TRUTH_COLUMN",
    "Progress",
    "TrainConfig",
    "TrainResult",
    "TrainingData",
    "calibrate_from_cv",
    "evaluate_and_log",
    "evaluate_fixed_model",
    "evaluate_model_cv",
    "fingerprint",
    "load_training_data",
    "primary_metric",
    "train",
]

logger = logging.getLogger(__name__)

MODEL_ESTIMATOR = MODEL_NAME
"""Name of the model among the cross-validated estimators (the others are baselines)."""
TRUTH_COLUMN = "true_probability"
"""Labels column of simulated cohorts holding the generator's own probability (the oracle)."""
Progress = Callable[[str], None]
"""Called with a short message after each step of a long job (drives the CLI's bar)."""


@dataclass
class TrainConfig:
    """Everything ``nkpredict train`` needs; defaults are the documented CLI defaults."""

    expression: Path
    labels: Path
    label: LabelDefinition
    id_column: str | None = None
    group_column: str | None = None
    lineage_column: str | None = "lineage"
    labels_format: LabelFormat = "auto"
    auc: AucMethod | None = None
    cv: CVConfig = field(default_factory=CVConfig)
    n_genome_genes: int = DEFAULT_GENOME_GENES
    genome_alpha: float | None = DEFAULT_GENOME_ALPHA
    tuning_budget: float = 0.0
    tuning_trials: int = 0
    booster: dict[str, Any] = field(default_factory=dict)
    scale: ScaleChoice = "auto"
    tracking_uri: str | None = None
    experiment: str | None = None
    model_name: str | None = None
    register: bool = True
    promote: bool = True
    force: bool = False
    baselines: bool = True
    model_out: Path | None = None
    report: bool = True
    report_out: Path | None = None
    engine: EngineName = "local"
    scheduler: str | None = None
    n_jobs: int = -1
    conformal_level: float = DEFAULT_LEVEL


@dataclass
class TrainResult:
    """What a training run produced."""

    run_id: str
    experiment_id: str
    tracking_uri: str
    metrics: dict[str, float]
    model: NKResistanceModel
    model_uri: str
    version: str | None = None
    decision: tracking.PromotionDecision | None = None
    report_path: Path | None = None


@dataclass
class TrainingData:
    """Expression, labels and target, joined and cleaned."""

    prepared: PreparedExpression
    labels: pd.DataFrame
    y: pd.Series
    definition: LabelDefinition
    groups: pd.Series | None
    lineages: pd.Series | None = None


def _label_column(labels: pd.DataFrame, column: str, index: pd.Index) -> pd.Series:
    if column not in labels.columns:
        raise LabelError(f"column {column!r} not in labels; available: {', '.join(labels)}")
    return labels.loc[index, column].astype(str)


def _lineages(labels: pd.DataFrame, column: str | None, index: pd.Index) -> pd.Series | None:
    """The lineage of each sample, or None when the labels do not say (all empty)."""
    if column is None or column not in labels.columns or labels.loc[index, column].isna().all():
        return None
    values = labels.loc[index, column]
    if values.isna().any():
        logger.warning(
            "%d sample(s) without a %s are grouped as 'unknown'", int(values.isna().sum()), column
        )
    return values.astype(object).where(values.notna(), "unknown").astype(str)


def load_training_data(
    expression_path: Path,
    labels_path: Path,
    label: LabelDefinition,
    id_column: str | None,
    group_column: str | None,
    scale: ScaleChoice = "auto",
    lineage_column: str | None = None,
    labels_format: LabelFormat = "auto",
    auc: AucMethod | None = None,
) -> TrainingData:
    """Read, join, resolve the target and prepare expression for training or evaluation.

    The labels are read by :func:`nkpredict.data.public.read_labels` with ``labels_format``
    and ``auc``: the same table ``nkpredict labels`` writes. ``group_column`` defines the CV
    groups (required to exist when given); ``lineage_column`` is used for
    leave-one-lineage-out results when the labels have it.
    """
    labels = read_labels(
        labels_path, id_column=id_column or "sample_id", fmt=labels_format, auc=auc
    )
    expression, labels = join_labels(read_expression(expression_path), labels)
    y, definition = label.resolve(labels)
    groups = None if group_column is None else _label_column(labels, group_column, y.index)
    lineages = _lineages(labels, lineage_column, y.index)
    prepared = prepare_expression(expression.loc[y.index], scale=scale)
    return TrainingData(prepared, labels.loc[y.index], y, definition, groups, lineages)


def fingerprint(data: TrainingData) -> dict[str, Any]:
    """Identity and shape of the training data (hash of values, ids, genes and target)."""
    digest = hashlib.sha256()
    matrix = data.prepared.matrix
    digest.update(np.ascontiguousarray(matrix.to_numpy(dtype=np.float32)).tobytes())
    digest.update("\n".join(map(str, matrix.index)).encode())
    digest.update("\n".join(map(str, matrix.columns)).encode())
    digest.update(np.asarray(data.y, dtype=np.float64).tobytes())
    catalog_genes = load_catalog().all_genes()
    present = set(matrix.columns)
    info: dict[str, Any] = {
        "data_sha256": digest.hexdigest(),
        "n_samples": int(matrix.shape[0]),
        "n_genes": int(matrix.shape[1]),
        "catalog_gene_coverage": round(
            sum(g in present for g in catalog_genes) / len(catalog_genes), 4
        ),
        "input_scale": data.prepared.scale,
    }
    if data.definition.task == "classification":
        info["n_resistant"] = int(data.y.sum())
        info["fraction_resistant"] = round(float(data.y.mean()), 4)
    else:
        info["label_mean"] = float(data.y.mean())
        info["label_sd"] = float(data.y.std())
    return info


def _booster_params(config: TrainConfig, data: TrainingData) -> dict[str, Any] | None:
    """Tree parameters; ``--tuning-trials`` runs in every fit of the model, and
    ``--tuning-budget`` (seconds, a cap when trials are given) is shared evenly by them.

    The search runs inside each fit (nested in CV): one per CV fold, one per held-out lineage
    and the final fit.
    """
    params = dict(config.booster)
    if config.tuning_trials > 0:
        params["tuning_trials"] = config.tuning_trials
    if config.tuning_budget > 0:
        n_lineages = 0 if data.lineages is None else data.lineages.nunique()
        n_fits = config.cv.n_splits * config.cv.n_repeats + n_lineages + 1
        params["tuning_budget"] = config.tuning_budget / n_fits
    return params or None


def primary_metric(task: Task) -> tuple[str, bool]:
    """The cross-validated metric promotion compares (``cv_roc_auc``, ``cv_rmse``), and
    whether higher is better."""
    name = PRIMARY_METRIC[task]
    return f"cv_{name}", HIGHER_IS_BETTER[name]


ALL_GENES_BASELINE = "xgb_allgenes"
"""The baseline cross-validated as its own step (its fits are most of the evaluation's time)."""


def evaluate_model_cv(
    model: NKResistanceModel,
    data: TrainingData,
    cv: CVConfig,
    baselines: bool,
    progress: Progress | None,
    engine: Engine | None = None,
) -> CVResult:
    """Cross-validate the model (and baselines) on the same grouped folds (on ``engine``).

    The model's fold models of the first repeat are kept (``result.models``: the members
    that give what-if changes their spread). The groups also reach the inner splits (early
    stopping, tuning) of every estimator. The
    all-genes XGBoost baseline runs as a step of its own after the others, so the progress
    output and the log show what it costs; the result is that of one call with all of them.
    """
    task = data.definition.task
    folds = make_folds(data.y, data.groups, cv, task)
    estimators = {MODEL_ESTIMATOR: model.core}
    if baselines:
        estimators.update(
            baseline_estimators(task, random_state=cv.random_state, lineages=data.lineages)
        )
    run = (engine or LocalEngine()).cross_validate
    matrix = data.prepared.matrix
    first = {name: f for name, f in estimators.items() if name != ALL_GENES_BASELINE}
    parts = [run(first, matrix, data.y, folds, task, progress, data.groups, keep=MODEL_ESTIMATOR)]
    if ALL_GENES_BASELINE in estimators:
        _say(
            progress,
            f"all-genes XGBoost baseline: {len(folds)} fits on {matrix.shape[1]} genes",
        )
        started = time.perf_counter()
        only = {ALL_GENES_BASELINE: estimators[ALL_GENES_BASELINE]}
        parts.append(run(only, matrix, data.y, folds, task, progress, data.groups))
        _say(
            progress,
            f"all-genes XGBoost baseline: {len(folds)} fits in "
            f"{time.perf_counter() - started:.0f} s",
        )
    return CVResult.concat(parts)


def train(config: TrainConfig, settings: Settings, progress: Progress | None = None) -> TrainResult:
    """Run the whole training job and return where its results are.

    ``config.engine`` (``local`` or ``dask``, see :mod:`training.engines`) runs the
    cross-validation folds (``config.n_jobs`` of them at a time locally) and the boosting;
    it is started here and closed at the end.
    """
    with open_engine(config.engine, config.scheduler, config.n_jobs) as engine:
        return _train(config, settings, progress, engine)


def _train(
    config: TrainConfig, settings: Settings, progress: Progress | None, engine: Engine
) -> TrainResult:
    uri = tracking.setup_tracking(config.tracking_uri, settings)
    experiment = tracking.experiment_id(config.experiment or settings.experiment, settings)
    model_name = config.model_name or settings.model_name
    data = load_training_data(
        config.expression,
        config.labels,
        config.label,
        config.id_column,
        config.group_column,
        config.scale,
        config.lineage_column,
        config.labels_format,
        config.auc,
    )
    task = data.definition.task
    model = NKResistanceModel(
        task=task,
        n_genome_genes=config.n_genome_genes,
        genome_alpha=config.genome_alpha,
        booster=_booster_params(config, data),
    )
    _say(progress, f"cross-validating on {data.prepared.matrix.shape[0]} samples")
    result = evaluate_model_cv(model, data, config.cv, config.baselines, progress, engine)
    lineage_results, lolo = None, None
    if data.lineages is not None and data.lineages.nunique() > 1:
        _say(progress, "leave-one-lineage-out evaluation")
        lolo = leave_one_group_out_result(
            model.core,
            data.prepared.matrix,
            data.y,
            data.lineages,
            task,
            inner_groups=data.groups,
            run=engine.cross_validate,
        )
        lineage_results = group_table(lolo, data.lineages)
    evaluation = evaluation_summary(result, data.groups, data.lineages, lolo)
    metrics = evaluation.metrics
    if TRUTH_COLUMN in data.labels.columns and task == "classification":
        metrics.update(oracle_metrics(data.y, data.labels[TRUTH_COLUMN], task))
    _say(progress, "fitting the final model on all samples")
    with engine.boosting():
        model.fit_prepared(
            data.prepared, data.y, data.definition, groups=data.groups, lineages=data.lineages
        )
    _say(progress, "calibrating probabilities and conformal sets on out-of-fold predictions")
    calibrate_from_cv(model, data, result, config.conformal_level)
    model.keep_members(result.models)
    data_info = fingerprint(data)
    model.metadata_ = {
        "metrics": metrics,
        "best_baseline": evaluation.best_baseline,
        "data": data_info,
        "cv": asdict(config.cv),
        "group_column": config.group_column,
        "expression_source": str(config.expression),
        "labels_source": str(config.labels),
    }
    if lineage_results is not None:
        model.metadata_["leave_one_lineage_out"] = lineage_results.to_dict(orient="records")
        model.metadata_["within_lineage"] = group_table(result, data.lineages).to_dict(
            orient="records"
        )
    if config.model_out is not None:
        model.save(config.model_out)
    report_path = None
    if config.register:
        model.metadata_["model_name"] = model_name
    registered_name = model_name if config.register else None
    with tracking.start_run(experiment) as run_id, tracking.registration(registered_name):
        _log_run(config, data, model, result, metrics, data_info)
        info = tracking.log_model(
            model,
            data.prepared.matrix.iloc[:2],
            model_name if config.register else None,
        )
        decision = None
        version = getattr(info, "registered_model_version", None)
        if version is not None:
            model.metadata_["model_version"] = str(version)
        if config.report:  # inside registration(): a failing report rolls the version back
            _say(progress, "writing the explanation report")
            report_path = _log_report(model, data, config.report_out, result)
        if config.register and version is not None:
            decision = _promotion(model_name, str(version), metrics, data, config, progress, engine)
            tracking.log_dict(decision.to_dict(), "promotion.json")
            tracking.set_tag("promotion", decision.alias)
            if config.promote:
                tracking.set_alias(model_name, decision)
    return TrainResult(
        run_id,
        experiment,
        uri,
        metrics,
        model,
        info.model_uri,
        None if version is None else str(version),
        decision,
        report_path,
    )


def calibrate_from_cv(
    model: NKResistanceModel, data: TrainingData, result: CVResult, level: float
) -> None:
    """Calibration and conformal sets from the model's out-of-fold predictions, Mondrian by
    the training lineages when the labels name them.

    Every repeat's prediction of a sample counts (each comes from one fold model, like the
    final model's predictions; their average would be smoother than any single model).
    """
    rows = result.predictions[result.predictions["estimator"] == MODEL_ESTIMATOR]
    rows = rows[rows["y_pred"].notna()]
    lineages = None
    if data.lineages is not None:
        by_sample = pd.Series(data.lineages.to_numpy(), index=data.y.index.astype(str))
        lineages = by_sample.reindex(rows["sample_id"].astype(str)).to_numpy()
    model.fit_uncertainty(
        rows["y_pred"].to_numpy(),
        rows["y_true"].to_numpy(),
        lineages,
        level,
        samples=rows["sample_id"].to_numpy(),
    )


def _say(progress: Progress | None, message: str) -> None:
    logger.info(message)
    if progress is not None:
        progress(message)


def _log_run(
    config: TrainConfig,
    data: TrainingData,
    model: NKResistanceModel,
    result: CVResult,
    metrics: dict[str, float],
    data_info: dict[str, Any],
) -> None:
    tracking.log_params(
        {
            "task": data.definition.task,
            "label_definition": data.definition.describe(),
            "label_column": data.definition.column,
            "threshold": data.definition.threshold,
            "resistant_when": data.definition.resistant_when,
            "direction_source": direction_source(data.definition),
            "labels_format": config.labels_format,
            "auc": config.auc,
            "group_column": config.group_column,
            "cv_splits": config.cv.n_splits,
            "cv_repeats": config.cv.n_repeats,
            "engine": config.engine,
            "tuning_trials": config.tuning_trials,
            "best_baseline": model.metadata_.get("best_baseline"),
            "n_genome_genes": config.n_genome_genes,
            "genome_alpha": config.genome_alpha,
            "genome_genes": ",".join(model.feature_builder.genome_genes_),
            "n_features": len(model.feature_builder.get_feature_names_out()),
            "n_boosting_rounds": model.boosted_trees.n_rounds_,
            "catalog_version": model.feature_builder.catalog_version_,
            **{f"booster_{k}": v for k, v in model.boosted_trees.get_params().items()},
            **{k: v for k, v in data_info.items() if k != "input_scale"},
        }
    )
    tracking.log_metrics(metrics)
    _log_fold_metrics(result)
    features = model.features(data.prepared)
    tracking.log_dataset(
        features.assign(target=data.y.to_numpy()).reset_index(),
        source=str(config.expression),
        name="training-features",
        targets="target",
        digest=data_info["data_sha256"][:16],
        context="training",
    )
    tracking.log_dict(data_info, "data_fingerprint.json")
    tracking.log_dict(data.prepared.report.to_dict(), "harmonization_report.json")
    tracking.log_dict(data.definition.to_dict(), "label_definition.json")
    tracking.log_text(
        "\n".join(map(str, model.feature_builder.get_feature_names_out())), "features.txt"
    )
    tracking.log_environment()
    tracking.log_csv(result.predictions, "evaluation", "cv_predictions.csv")
    _log_evaluation_figures(data, result)
    if "leave_one_lineage_out" in model.metadata_:
        logo = pd.DataFrame(model.metadata_["leave_one_lineage_out"])
        tracking.log_table(logo, "evaluation/leave_one_lineage_out.json")


def _log_report(
    model: NKResistanceModel, data: TrainingData, report_out: Path | None, result: CVResult
) -> Path | None:
    """Build the HTML report on the training cohort (its curves out of fold, from ``result``)
    and log it as ``report/report.html``."""
    html = build_report(
        model,
        data.prepared,
        labels=data.labels,
        label_column=data.definition.column,
        title="nkpredict training report",
        cv_result=result,
        lineages=data.lineages,
    )
    with tempfile.TemporaryDirectory() as tmp:
        path = write_report(html, Path(tmp) / "report.html")
        tracking.log_artifact(path, "report")
    return write_report(html, report_out) if report_out is not None else None


def _log_fold_metrics(result: CVResult) -> None:
    frame = result.fold_metrics
    for (estimator, metric), rows in frame.groupby(["estimator", "metric"]):
        prefix = "" if estimator == MODEL_ESTIMATOR else f"baseline_{estimator}_"
        tracking.log_step_metric(f"{prefix}fold_{metric}", rows["value"].to_numpy())


def _log_evaluation_figures(data: TrainingData, result: CVResult) -> None:
    pooled = {name: result.pooled(name) for name in result.predictions["estimator"].unique()}
    model_pooled = pooled[MODEL_ESTIMATOR]
    if data.definition.task == "classification":
        calibration = calibration_table(model_pooled["y_true"], model_pooled["y_pred"])
        tracking.log_table(calibration, "evaluation/calibration.json")
        curves = {
            name: (frame["y_true"].to_numpy(), frame["y_pred"].to_numpy())
            for name, frame in pooled.items()
        }
        if TRUTH_COLUMN in data.labels.columns:
            curves["oracle"] = (data.y.to_numpy(), data.labels[TRUTH_COLUMN].to_numpy())
        tracking.log_figure(classification_figure(curves, calibration), "evaluation/curves.png")
    else:
        figure = regression_figure(
            model_pooled["y_true"].to_numpy(),
            model_pooled["y_pred"].to_numpy(),
            data.definition.column,
        )
        tracking.log_figure(figure, "evaluation/observed_vs_predicted.png")


def _promotion(
    model_name: str,
    version: str,
    metrics: dict[str, float],
    data: TrainingData,
    config: TrainConfig,
    progress: Progress | None,
    engine: Engine | None = None,
) -> tracking.PromotionDecision:
    """Compare the new version with the champion on the same data and folds."""
    metric, higher_is_better = primary_metric(data.definition.task)
    champion = tracking.current_champion(model_name)
    champion_score: tuple[str, float] | None = None
    if champion is not None and champion.version != version:
        champion_score = (
            str(champion.version),
            _champion_score(champion, metric, data, config, progress, engine),
        )
    return tracking.decide_promotion(
        version, metric, metrics[metric], champion_score, higher_is_better, config.force
    )


def _champion_score(
    champion: Any,
    metric: str,
    data: TrainingData,
    config: TrainConfig,
    progress: Progress | None,
    engine: Engine | None = None,
) -> float:
    """The champion's ``metric`` on this run's evaluation.

    When the champion was evaluated on identical data with the same CV settings its logged
    metric is that score; otherwise the champion's configuration is cross-validated on this
    run's folds.
    """
    params = tracking.run_params(champion.run_id) if champion.run_id else {}
    same_data = params.get("data_sha256") == fingerprint(data)["data_sha256"]
    same_cv = params.get("cv_splits") == str(config.cv.n_splits) and params.get(
        "cv_repeats"
    ) == str(config.cv.n_repeats)
    if same_data and same_cv:
        logged = tracking.run_metrics(champion.run_id).get(metric)
        if logged is not None:
            return float(logged)
    _say(progress, f"re-evaluating champion v{champion.version} on this run's folds")
    model, _ = load_model(f"models:/{champion.name}/{champion.version}")
    template = NKResistanceModel(
        task=model.task,
        n_genome_genes=model.n_genome_genes,
        genome_alpha=model.genome_alpha,
        booster=model.booster,
    )
    summary = evaluate_model_cv(template, data, config.cv, False, progress, engine).summary()
    return float(summary[metric])


def evaluate_fixed_model(
    model: NKResistanceModel, data: TrainingData, n_bootstrap: int = 1000, seed: int = 0
) -> tuple[dict[str, float], pd.DataFrame]:
    """Score a trained model on new labelled data: ``eval_*`` metrics with bootstrap 95% CIs."""
    table = model.predict_table(data.prepared)
    prediction = table["probability" if model.task == "classification" else "score"]
    scores = score_with_intervals(
        model.task, data.y.to_numpy(), prediction.to_numpy(), n_bootstrap, seed
    )
    table.insert(1, "y_true", data.y.to_numpy())
    return {f"eval_{name}": value for name, value in scores.items()}, table


def evaluate_and_log(
    model: NKResistanceModel,
    reference: ModelReference,
    expression: Path,
    labels: Path,
    definition: LabelDefinition,
    id_column: str | None,
    experiment: str,
    settings: Settings,
) -> tuple[dict[str, float], pd.DataFrame]:
    """Evaluate a trained model on new labelled data and log the evaluation as an MLflow run."""
    data = load_training_data(expression, labels, definition, id_column, None, model.scale)
    metrics, table = evaluate_fixed_model(model, data)
    if TRUTH_COLUMN in data.labels.columns and model.task == "classification":
        metrics.update(oracle_metrics(data.y, data.labels[TRUTH_COLUMN], model.task))
    with tracking.start_run(tracking.experiment_id(experiment, settings)):
        tracking.set_tag("nkpredict.kind", "evaluation")
        tracking.log_params(
            {
                "model": reference.uri,
                "model_version": reference.version,
                "label_definition": data.definition.describe(),
                **fingerprint(data),
            }
        )
        tracking.log_metrics(metrics)
        tracking.log_dict(data.prepared.report.to_dict(), "harmonization_report.json")
        tracking.log_table(table, "evaluation/predictions.json")
    return metrics, table
