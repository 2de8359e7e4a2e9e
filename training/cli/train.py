"""``nkpredict train``, ``evaluate`` and ``models``: tracked training runs and the registry.

Also the label policy of the command line: which label and id columns a labels table gets
by default (the Dufva NK PRISM table's are filled in once, here) and the checks that span
several options.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from nkpredict.data.labels import LabelDefinition, direction_source
from nkpredict.features.genome import DEFAULT_GENOME_ALPHA, DEFAULT_GENOME_GENES
from nkpredict.vocabulary import AucMethod, Direction, LabelFormat, Task
from training.cli.loading import open_model
from training.cli.options import (
    AucOption,
    DirectionOption,
    EngineOption,
    ExpressionOption,
    LabelsFormatOption,
    ModelOption,
    Quiet,
    SchedulerOption,
    TaskOption,
    Tracking,
    check_scheduler,
)
from training.cli.output import (
    cell,
    configure_logging,
    console,
    mlflow_ui_command,
    print_table,
    progress_reporter,
    reports_errors,
)

__all__ = [
    "PRISM_ID_COLUMN",
    "PRISM_LABEL_COLUMN",
    "evaluate",
    "label_definition",
    "labels_defaults",
    "models",
    "train",
]

PRISM_LABEL_COLUMN = "auc_norm"
"""Label column of a published NK-screen table (the paper's AUC) unless ``--label-column``
or ``--auc log2-killing`` (``killing_auc``)."""
PRISM_ID_COLUMN = "DepMap_ID"
"""Id column of a published NK-screen table (the per-line table carries its own ids)."""
LISTED_METRICS = ("cv_roc_auc", "cv_pr_auc", "cv_brier", "cv_rmse", "oracle_roc_auc")
"""Metrics ``nkpredict models`` shows per version (those logged for the task)."""
SHOWN_METRIC_SUFFIXES = (
    "roc_auc",
    "pr_auc",
    "brier",
    "balanced_accuracy",
    "rmse",
    "spearman",
    "minus_best_baseline",
)
"""Metrics ``nkpredict train`` prints after the run (after the headline ones)."""


def labels_defaults(
    labels: Path, labels_format: LabelFormat = "auto", auc: AucMethod | None = None
) -> tuple[str | None, str | None]:
    """Default label and id columns of the labels table at ``labels``.

    Returns
    -------
    (str or None, str or None)
        The AUC column (``auc_norm``, or ``killing_auc`` under ``--auc log2-killing``) and
        :data:`PRISM_ID_COLUMN` for a published NK-screen table; for a generic table the AUC
        column when ``--auc`` is given and no id column (the readers' defaults apply).
    """
    from nkpredict.data.public import SCREEN_FORMATS, auc_column, label_format

    layout = label_format(labels, labels_format)
    if layout in SCREEN_FORMATS:
        return auc_column(layout, auc), PRISM_ID_COLUMN
    return auc_column(layout, auc), None


def label_definition(
    column: str | None,
    task: Task,
    threshold: float | None,
    quantile: float | None,
    resistant_when: Direction | None,
) -> LabelDefinition:
    """The training target from the label options (usage errors for contradictory ones).

    Parameters
    ----------
    column : str or None
        ``--label-column`` or the labels table's default (:func:`labels_defaults`).
    task : {"classification", "regression"}
    threshold, quantile : float or None
        At most one: the cut-off turning a readout into a call, or its quantile.
    resistant_when : {"above", "below"} or None
        Which side of the cut-off is resistant (``None``: inferred from the column name).
    """
    if threshold is not None and quantile is not None:
        raise typer.BadParameter("give --threshold or --quantile, not both")
    if column is None:
        raise typer.BadParameter(
            "--label-column is required (e.g. resistant or killing_auc), or --auc to compute one"
        )
    return LabelDefinition(column, task, threshold, quantile, resistant_when)


@reports_errors
def train(
    expression: ExpressionOption,
    labels: Annotated[Path, typer.Option(help="Labels table or Dufva NK PRISM table.")],
    label_column: Annotated[
        str | None,
        typer.Option(help=f"Label column (default {PRISM_LABEL_COLUMN} for PRISM tables)."),
    ] = None,
    id_column: Annotated[
        str | None,
        typer.Option(help=f"Sample id column (sample_id; {PRISM_ID_COLUMN} for PRISM)."),
    ] = None,
    group_column: Annotated[
        str | None, typer.Option(help="Keep each group (lineage, patient) in one CV fold.")
    ] = None,
    lineage_column: Annotated[
        str, typer.Option(help="Labels column for leave-one-lineage-out results (if present).")
    ] = "lineage",
    labels_format: LabelsFormatOption = "auto",
    auc: AucOption = None,
    task: TaskOption = "classification",
    threshold: Annotated[
        float | None, typer.Option(help="Cut-off turning a continuous readout into a call.")
    ] = None,
    quantile: Annotated[
        float | None, typer.Option(help="Cut-off as a quantile of the training labels.")
    ] = None,
    resistant_when: DirectionOption = None,
    tuning_budget: Annotated[
        float,
        typer.Option(
            help="Seconds of nested Optuna search of tree parameters (0 = off); with "
            "--tuning-trials, a time cap."
        ),
    ] = 0.0,
    tuning_trials: Annotated[
        int,
        typer.Option(
            min=0, help="Optuna trials inside every fit (0 = off; reproducible under load)."
        ),
    ] = 0,
    cv_splits: Annotated[int, typer.Option(min=2, help="Cross-validation folds.")] = 5,
    cv_repeats: Annotated[int, typer.Option(min=1, help="Cross-validation repeats.")] = 3,
    genome_genes: Annotated[
        int,
        typer.Option(
            min=0,
            help="Most genome-wide (non-catalogue) genes selected inside each fold (0 = off).",
        ),
    ] = DEFAULT_GENOME_GENES,
    genome_alpha: Annotated[
        float,
        typer.Option(
            min=0.0,
            max=1.0,
            help="Family-wise level of the screen genome-wide genes must pass: association "
            "with what the catalogue features leave unexplained (0 = no screen: the "
            "--genome-genes genes most correlated with the label).",
        ),
    ] = DEFAULT_GENOME_ALPHA,
    baselines: Annotated[bool, typer.Option(help="Evaluate baselines on the same folds.")] = True,
    tracking_uri: Tracking = None,
    experiment: Annotated[str | None, typer.Option(help="MLflow experiment name.")] = None,
    model_name: Annotated[str | None, typer.Option(help="Registered model name.")] = None,
    register: Annotated[bool, typer.Option(help="Register the model version.")] = True,
    promote: Annotated[bool, typer.Option(help="Set champion/challenger alias.")] = True,
    force: Annotated[bool, typer.Option(help="Make this version champion regardless.")] = False,
    model_out: Annotated[Path | None, typer.Option(help="Also save the model here.")] = None,
    report: Annotated[
        bool, typer.Option(help="Log an HTML explanation report with the run.")
    ] = True,
    report_out: Annotated[
        Path | None, typer.Option(help="Also write the HTML report to this file.")
    ] = None,
    seed: Annotated[int, typer.Option(help="Random seed for folds and trees.")] = 0,
    conformal_level: Annotated[
        float,
        typer.Option(
            min=0.5,
            max=0.99,
            help="Level of the conformal prediction sets and intervals every prediction "
            "carries (0.9: the set holds the true label for 90% of samples like the "
            "training cohort).",
        ),
    ] = 0.9,
    engine: EngineOption = "local",
    scheduler: SchedulerOption = None,
    n_jobs: Annotated[
        int,
        typer.Option(
            help="Cross-validation fits at a time: -1 one per core, 1 one after the other "
            "(same results); with --engine dask and no --scheduler, the local cluster's workers."
        ),
    ] = -1,
    quiet: Quiet = False,
) -> None:
    """Cross-validate, fit, log to MLflow, register and promote a model."""
    from nkpredict.evaluate.baselines import BASELINE_NAMES
    from nkpredict.evaluate.folds import CVConfig
    from nkpredict.evaluate.summary import comparison_sentence, headline
    from nkpredict.settings import Settings
    from training.pipeline import TrainConfig
    from training.pipeline import train as run_training

    configure_logging(quiet)
    check_scheduler(engine, scheduler)
    settings = Settings()
    default_label, default_id = labels_defaults(labels, labels_format, auc)
    config = TrainConfig(
        expression=expression,
        labels=labels,
        label=label_definition(
            label_column or default_label, task, threshold, quantile, resistant_when
        ),
        id_column=id_column or default_id,
        group_column=group_column,
        lineage_column=lineage_column,
        labels_format=labels_format,
        auc=auc,
        cv=CVConfig(n_splits=cv_splits, n_repeats=cv_repeats, random_state=seed),
        n_genome_genes=genome_genes,
        genome_alpha=genome_alpha or None,
        tuning_budget=tuning_budget,
        tuning_trials=tuning_trials,
        tracking_uri=tracking_uri,
        experiment=experiment,
        model_name=model_name,
        register=register,
        promote=promote,
        force=force,
        baselines=baselines,
        model_out=model_out,
        report=report,
        report_out=report_out,
        engine=engine,
        scheduler=scheduler,
        n_jobs=n_jobs,
        conformal_level=conformal_level,
    )
    fits = cv_splits * cv_repeats * (1 + len(BASELINE_NAMES) if baselines else 1) + 1
    with progress_reporter(quiet, total=fits) as advance:
        result = run_training(config, settings, advance)
    definition = result.model.label_definition_
    rows: list[tuple[str, Any]] = [
        ("label", definition.describe()),
    ]
    if definition.resistant_when is not None:
        rows.append(
            ("resistant when", f"{definition.resistant_when} ({direction_source(definition)})")
        )
    rows += [
        ("tracking URI", result.tracking_uri),
        ("run id", result.run_id),
        ("model URI", result.model_uri),
    ]
    if result.version is not None:
        rows.append(("registered", f"{config.model_name or settings.model_name} v{result.version}"))
    if result.decision is not None:
        rows.append(("alias", f"{result.decision.alias} ({result.decision.reason})"))
    best = result.model.metadata_.get("best_baseline")
    if best is not None:
        rows.append(("best baseline", best))
    shown = headline(result.metrics, result.model.task)
    for name, value, low, high in shown:
        interval = "" if math.isnan(low) else f" [{low:.3f}, {high:.3f}]"
        rows.append((name, f"{value:.3f}{interval}"))
    first = {name for name, *_ in shown}
    for key in sorted(result.metrics):
        if key.endswith(SHOWN_METRIC_SUFFIXES) and key not in first:
            rows.append((key, f"{result.metrics[key]:.3f}"))
    if result.report_path is not None:
        rows.append(("report", result.report_path))
    print_table("Training run", rows)
    verdict = comparison_sentence(result.metrics, best, result.model.task)
    if verdict:
        console.print(verdict, highlight=False, soft_wrap=True)
    command = mlflow_ui_command(result.tracking_uri)
    if command is not None:
        console.print(f"MLflow UI: {command}", highlight=False, soft_wrap=True)


@reports_errors
def evaluate(
    model: ModelOption,
    expression: Annotated[Path, typer.Option(help="Expression matrix.")],
    labels: Annotated[Path, typer.Option(help="Labels table or NK PRISM table.")],
    label_column: Annotated[str | None, typer.Option(help="Label column.")] = None,
    id_column: Annotated[str | None, typer.Option(help="Sample id column.")] = None,
    out: Annotated[Path | None, typer.Option(help="Write per-sample predictions here.")] = None,
    tracking_uri: Tracking = None,
    experiment: Annotated[str | None, typer.Option(help="MLflow experiment name.")] = None,
    quiet: Quiet = False,
) -> None:
    """Evaluate a trained model on new labelled data (metrics with CIs, logged to MLflow)."""
    from nkpredict.io import write_table
    from nkpredict.settings import Settings
    from training import tracking
    from training.pipeline import evaluate_and_log

    configure_logging(quiet)
    settings = Settings()
    fitted, reference = open_model(model, tracking_uri, settings)
    tracking.setup_tracking(tracking_uri, settings)  # the evaluation run is logged there
    trained = fitted.label_definition_
    definition = LabelDefinition(
        column=label_column or trained.column,
        task=fitted.task,
        threshold=trained.threshold,
        resistant_when=trained.resistant_when,
    )
    metrics, table = evaluate_and_log(
        fitted,
        reference,
        expression,
        labels,
        definition,
        id_column or labels_defaults(labels)[1],
        experiment or settings.experiment,
        settings,
    )
    print_table(f"Evaluation of {model}", [(k, f"{v:.3f}") for k, v in sorted(metrics.items())])
    if out is not None:
        write_table(table, out)
        console.print(f"predictions written to {out}")


@reports_errors
def models(
    model_name: Annotated[str | None, typer.Option(help="Registered model name.")] = None,
    tracking_uri: Tracking = None,
) -> None:
    """List registered versions with their aliases and key metrics."""
    from nkpredict.settings import Settings
    from training import tracking

    configure_logging(False)
    settings = Settings()
    store = tracking.setup_tracking(tracking_uri, settings, create_store=False)
    console.print(f"tracking store: {store}", highlight=False, soft_wrap=True)
    name = model_name or settings.model_name
    frame = tracking.list_versions(name, LISTED_METRICS)
    if frame.empty:
        console.print(f"no registered versions of {name}")
        return
    table = Table(title=f"Registered model {name}")
    shown = [c for c in frame.columns if c not in LISTED_METRICS or frame[c].notna().any()]
    for column in shown:
        table.add_column(column.removeprefix("cv_"), overflow="fold")
    for _, row in frame.iterrows():
        table.add_row(*(cell(row[c]) for c in shown))
    console.print(table)
