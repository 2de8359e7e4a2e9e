"""The ``nkpredict`` command line: parses options, calls the library, prints results.

Every library error becomes a one-line message on stderr and exit status 1; bad options
exit with status 2 (Typer's usage errors).
"""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, ParamSpec, TypeVar

import numpy as np
import typer
from rich.console import Console
from rich.logging import RichHandler
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from nkpredict.data.labels import LabelDefinition
from nkpredict.exceptions import NKPredictError

if TYPE_CHECKING:
    from nkpredict.model.fitted import NKResistanceModel
    from nkpredict.registry import ModelReference

app = typer.Typer(
    name="nkpredict",
    help="Predict and explain NK-cell resistance of blood-cancer samples from expression.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console()
err_console = Console(stderr=True)

P = ParamSpec("P")
R = TypeVar("R")

Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="Only print errors and results.")]


def configure_logging(quiet: bool) -> None:
    """Send library logs to stderr through rich (warnings by default, errors when quiet)."""
    level = logging.ERROR if quiet else logging.WARNING
    handler = RichHandler(console=err_console, show_path=False, show_time=False)
    logging.basicConfig(level=level, handlers=[handler], format="%(message)s", force=True)
    logging.getLogger("mlflow").setLevel(max(level, logging.WARNING))
    logging.getLogger("distributed").setLevel(max(level, logging.WARNING))
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")


def reports_errors(command: Callable[P, R]) -> Callable[P, R]:
    """Turn library errors raised by ``command`` into a one-line message and exit status 1."""

    @functools.wraps(command)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return command(*args, **kwargs)
        except NKPredictError as exc:
            err_console.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
            raise typer.Exit(code=1) from None
        except OSError as exc:  # disk full, permissions: outputs are atomic, nothing partial
            where = f" ({exc.filename})" if exc.filename else ""
            message = f"{exc.strerror or exc}{where}"
            err_console.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
            raise typer.Exit(code=1) from None
        except KeyboardInterrupt:
            err_console.print("[bold red]interrupted[/]")
            raise typer.Exit(code=130) from None

    return wrapper


def print_table(title: str, rows: list[tuple[str, Any]]) -> None:
    """Print a two-column key/value table."""
    table = Table(title=title, show_header=False, title_justify="left")
    table.add_column(style="bold")
    table.add_column()
    for key, value in rows:
        table.add_row(key, str(value))
    console.print(table)


@app.command()
@reports_errors
def simulate(
    out: Annotated[Path, typer.Option(help="Directory to write the cohort into.")] = Path(
        "demo/cohort"
    ),
    n_samples: Annotated[int, typer.Option(min=20, help="Number of samples.")] = 600,
    n_genes: Annotated[int, typer.Option(min=1, help="Number of genes in the matrix.")] = 3000,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
    quiet: Quiet = False,
) -> None:
    """Simulate a blood-cancer cohort with planted NK-escape mechanisms and known truth."""
    from nkpredict.simulate.cohort import SimulationConfig, simulate_cohort, write_cohort

    configure_logging(quiet)
    cohort = simulate_cohort(SimulationConfig(n_samples=n_samples, n_genes=n_genes, seed=seed))
    paths = write_cohort(cohort, out)
    labels = cohort.labels
    print_table(
        f"Simulated cohort in {out}",
        [
            ("samples x genes", f"{cohort.counts.shape[0]} x {cohort.counts.shape[1]}"),
            ("resistant", f"{int(labels['resistant'].sum())} ({labels['resistant'].mean():.0%})"),
            ("lineages", ", ".join(sorted(labels["lineage"].unique()))),
            *[(name, path) for name, path in paths.items()],
        ],
    )


@app.command()
@reports_errors
def features(
    expression: Annotated[Path, typer.Option(help="Expression matrix (CSV/TSV/Parquet/h5ad).")],
    out: Annotated[Path | None, typer.Option(help="Write features here (.csv/.parquet).")] = None,
    scale: Annotated[str, typer.Option(help="auto, counts, tpm or log.")] = "auto",
    quiet: Quiet = False,
) -> None:
    """Harmonize an expression matrix, build NK features and summarise them."""
    from nkpredict.data.expression import prepare_expression, read_expression
    from nkpredict.features.builder import NKFeatureBuilder
    from nkpredict.io import write_table

    configure_logging(quiet)
    prepared = prepare_expression(read_expression(expression), scale=_scale(scale))
    builder = NKFeatureBuilder().fit(prepared.matrix)
    table = builder.transform(prepared.matrix)
    console.print(f"[bold]Harmonization:[/] {prepared.report.summary()}")
    console.print(f"[bold]Input scale:[/] {prepared.scale} -> log2(TPM+1)")
    summary = Table(title=f"{table.shape[1]} features for {table.shape[0]} samples")
    for column in ("feature", "mean", "sd", "min", "max"):
        summary.add_column(column, justify="left" if column == "feature" else "right")
    shown = [c for c in table.columns if not c.startswith("gene:")]
    for name in shown:
        values = table[name]
        summary.add_row(
            name, *(f"{v:.2f}" for v in (values.mean(), values.std(), values.min(), values.max()))
        )
    console.print(summary)
    console.print(f"(+ {len(table.columns) - len(shown)} per-gene ligand features)")
    if out is not None:
        write_table(table.reset_index(), out)
        console.print(f"features written to {out}")


Tracking = Annotated[
    str | None,
    typer.Option(help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI or local SQLite)."),
]
ModelRef = Annotated[
    str, typer.Option("--model", help="Model directory or MLflow URI (models:/NAME@ALIAS).")
]
EngineOption = Annotated[
    str, typer.Option(help="Where to run: local (this process) or dask (a Dask cluster).")
]
SchedulerOption = Annotated[
    str | None,
    typer.Option(
        help="Dask scheduler address (tcp://host:8786) for --engine dask "
        "(default: a local cluster with one worker per core)."
    ),
]
ChunkSizeOption = Annotated[
    int | None,
    typer.Option(min=1, help="Samples read and scored at once (default 10,000); bounds memory."),
]


def _progress_bar(quiet: bool) -> Progress:
    """A rich progress bar on stderr, disabled under --quiet, in CI and off a terminal."""
    enabled = not quiet and err_console.is_terminal and not os.environ.get("CI")
    return Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err_console,
        disable=not enabled,
        transient=True,
    )


@contextmanager
def progress_reporter(quiet: bool, total: int | None = None) -> Iterator[Callable[[str], None]]:
    """Yield a callback that advances a progress bar by one step, showing its message."""
    with _progress_bar(quiet) as bar:
        task = bar.add_task("working", total=total)

        def advance(message: str) -> None:
            bar.update(task, advance=1, description=message)

        yield advance


@contextmanager
def row_progress(quiet: bool) -> Iterator[Callable[[int, int], None]]:
    """Yield ``update(rows_done, rows_total)`` driving a progress bar of scored rows."""
    with _progress_bar(quiet) as bar:
        task = bar.add_task("scoring", total=None)

        def update(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        yield update


def open_model(model: str, tracking_uri: str | None) -> tuple[NKResistanceModel, ModelReference]:
    """Point MLflow at the tracking store and load ``model`` (directory or MLflow URI)."""
    from nkpredict.registry import load_model
    from nkpredict.settings import Settings
    from training import tracking

    tracking.setup_tracking(tracking_uri, Settings())
    return load_model(model)


def _label_definition(
    label_column: str | None,
    task: str,
    threshold: float | None,
    quantile: float | None,
    resistant_when: str | None,
    prism: bool,
) -> LabelDefinition:
    if threshold is not None and quantile is not None:
        raise typer.BadParameter("give --threshold or --quantile, not both")
    column = label_column or ("killing_auc" if prism else None)
    if column is None:
        raise typer.BadParameter("--label-column is required (e.g. resistant or killing_auc)")
    if resistant_when not in (None, "above", "below"):
        raise typer.BadParameter("--resistant-when must be above or below")
    if task not in ("classification", "regression"):
        raise typer.BadParameter("--task must be classification or regression")
    return LabelDefinition(column, task, threshold, quantile, resistant_when)  # type: ignore[arg-type]


@app.command()
@reports_errors
def train(
    expression: Annotated[Path, typer.Option(help="Expression matrix (CSV/TSV/Parquet/h5ad).")],
    labels: Annotated[Path, typer.Option(help="Labels table or Dufva NK PRISM table.")],
    label_column: Annotated[
        str | None, typer.Option(help="Label column (default killing_auc for PRISM tables).")
    ] = None,
    id_column: Annotated[
        str | None, typer.Option(help="Sample id column (sample_id; DepMap_ID for PRISM).")
    ] = None,
    group_column: Annotated[
        str | None, typer.Option(help="Keep each group (lineage, patient) in one CV fold.")
    ] = None,
    lineage_column: Annotated[
        str, typer.Option(help="Labels column for leave-one-lineage-out results (if present).")
    ] = "lineage",
    task: Annotated[str, typer.Option(help="classification or regression.")] = "classification",
    threshold: Annotated[
        float | None, typer.Option(help="Cut-off turning a continuous readout into a call.")
    ] = None,
    quantile: Annotated[
        float | None, typer.Option(help="Cut-off as a quantile of the training labels.")
    ] = None,
    resistant_when: Annotated[
        str | None, typer.Option(help="above or below the cut-off is resistant (inferred).")
    ] = None,
    tuning_budget: Annotated[
        float, typer.Option(help="Seconds of nested Optuna search of tree parameters (0 = off).")
    ] = 0.0,
    cv_splits: Annotated[int, typer.Option(min=2, help="Cross-validation folds.")] = 5,
    cv_repeats: Annotated[int, typer.Option(min=1, help="Cross-validation repeats.")] = 3,
    genome_genes: Annotated[
        int, typer.Option(min=0, help="Genome-wide genes selected inside each fold.")
    ] = 0,
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
    engine: EngineOption = "local",
    scheduler: SchedulerOption = None,
    quiet: Quiet = False,
) -> None:
    """Cross-validate, fit, log to MLflow, register and promote a model."""
    from nkpredict.data.public import is_nk_prism_file
    from nkpredict.evaluate.cv import CVConfig
    from nkpredict.settings import Settings
    from training.pipeline import TrainConfig
    from training.pipeline import train as run_training

    configure_logging(quiet)
    prism = is_nk_prism_file(labels)
    config = TrainConfig(
        expression=expression,
        labels=labels,
        label=_label_definition(label_column, task, threshold, quantile, resistant_when, prism),
        id_column=id_column or ("DepMap_ID" if prism else None),
        group_column=group_column,
        lineage_column=lineage_column,
        cv=CVConfig(n_splits=cv_splits, n_repeats=cv_repeats, random_state=seed),
        n_genome_genes=genome_genes,
        tuning_budget=tuning_budget,
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
        engine=_engine(engine, scheduler),
        scheduler=scheduler,
    )
    fits = cv_splits * cv_repeats * (4 if baselines else 1) + 1
    with progress_reporter(quiet, total=fits) as advance:
        result = run_training(config, Settings(), advance)
    rows: list[tuple[str, Any]] = [
        ("tracking URI", result.tracking_uri),
        ("run id", result.run_id),
        ("model URI", result.model_uri),
    ]
    if result.version is not None:
        rows.append(
            ("registered", f"{config.model_name or Settings().model_name} v{result.version}")
        )
    if result.decision is not None:
        rows.append(("alias", f"{result.decision.alias} ({result.decision.reason})"))
    for key in sorted(result.metrics):
        if key.endswith(("roc_auc", "pr_auc", "brier", "balanced_accuracy", "rmse", "spearman")):
            rows.append((key, f"{result.metrics[key]:.3f}"))
    if result.report_path is not None:
        rows.append(("report", result.report_path))
    print_table("Training run", rows)
    if result.tracking_uri.startswith("sqlite:"):
        console.print(f"MLflow UI: mlflow ui --backend-store-uri {result.tracking_uri}")


@app.command()
@reports_errors
def evaluate(
    model: ModelRef,
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
    from nkpredict.data.public import is_nk_prism_file
    from nkpredict.io import write_table
    from nkpredict.settings import Settings
    from training.pipeline import evaluate_and_log

    configure_logging(quiet)
    settings = Settings()
    fitted, reference = open_model(model, tracking_uri)
    prism = is_nk_prism_file(labels)
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
        id_column or ("DepMap_ID" if prism else None),
        experiment or settings.experiment,
        settings,
    )
    print_table(f"Evaluation of {model}", [(k, f"{v:.3f}") for k, v in sorted(metrics.items())])
    if out is not None:
        write_table(table, out)
        console.print(f"predictions written to {out}")


@app.command()
@reports_errors
def predict(
    model: ModelRef,
    expression: Annotated[Path, typer.Option(help="Expression matrix to score.")],
    out: Annotated[Path, typer.Option(help="Output table (.csv, .tsv or .parquet).")],
    scale: Annotated[str, typer.Option(help="auto, counts, tpm or log.")] = "auto",
    min_coverage: Annotated[
        float, typer.Option(min=0.0, max=1.0, help="Reject samples covering fewer model genes.")
    ] = 0.0,
    engine: EngineOption = "local",
    scheduler: SchedulerOption = None,
    chunk_size: ChunkSizeOption = None,
    tracking_uri: Tracking = None,
    quiet: Quiet = False,
) -> None:
    """Score samples: one row per sample with probability/score and call.

    The input is read, scored and written in chunks of --chunk-size samples (Parquet and
    h5ad inputs are never loaded whole), on this machine or on a Dask cluster.
    """
    from nkpredict.io import write_json
    from nkpredict.stream.run import predict_file
    from training.engines import open_engine

    configure_logging(quiet)
    engine = _engine(engine, scheduler)
    fitted, reference = open_model(model, tracking_uri)
    with open_engine(engine, scheduler) as runner, row_progress(quiet) as progress:
        result = predict_file(
            fitted,
            expression,
            out,
            scale=_scale(scale),
            chunk_size=chunk_size,
            min_coverage=min_coverage,
            progress=progress,
            mapper=runner.map_ordered,
        )
    report_path = out.with_name(out.stem + ".harmonization.json")
    write_json(
        report_path,
        {"model": reference.to_dict(), "input_scale": result.scale, **result.report.to_dict()},
    )
    if not quiet:
        console.print(
            f"{result.n_rows} samples scored ({result.calls}); "
            f"harmonization: {result.report.summary()}"
        )
    console.print(f"predictions: {out}\nharmonization report: {report_path}")


@app.command()
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
    tracking.setup_tracking(tracking_uri, settings)
    name = model_name or settings.model_name
    metrics = ("cv_roc_auc", "cv_pr_auc", "cv_brier", "cv_rmse", "oracle_roc_auc")
    frame = tracking.list_versions(name, metrics)
    if frame.empty:
        console.print(f"no registered versions of {name}")
        return
    table = Table(title=f"Registered model {name}")
    shown = [c for c in frame.columns if c not in metrics or frame[c].notna().any()]
    for column in shown:
        table.add_column(column.removeprefix("cv_"), overflow="fold")
    for _, row in frame.iterrows():
        table.add_row(*(_cell(row[c]) for c in shown))
    console.print(table)


@app.command()
@reports_errors
def explain(
    model: ModelRef,
    expression: Annotated[Path, typer.Option(help="Expression matrix to explain.")],
    out: Annotated[Path, typer.Option(help="Directory for genes/features/axes/pathways.csv.")],
    scale: Annotated[str, typer.Option(help="auto, counts, tpm or log.")] = "auto",
    method: Annotated[
        str,
        typer.Option(
            help="TreeSHAP implementation: auto (= compiled), compiled (numpy tables checked "
            "against XGBoost; XGBoost's own when a model cannot be compiled), native (XGBoost), "
            "shap (shap.TreeExplainer)."
        ),
    ] = "auto",
    engine: EngineOption = "local",
    scheduler: SchedulerOption = None,
    chunk_size: ChunkSizeOption = None,
    tracking_uri: Tracking = None,
    quiet: Quiet = False,
) -> None:
    """SHAP attributions per sample at feature, gene, axis and pathway level (in chunks)."""
    from nkpredict.explain.attributions import METHODS
    from nkpredict.stream.run import explain_file
    from training.engines import open_engine

    configure_logging(quiet)
    if method not in METHODS:
        raise typer.BadParameter(f"--method must be one of {', '.join(METHODS)}")
    engine = _engine(engine, scheduler)
    fitted, _ = open_model(model, tracking_uri)
    with open_engine(engine, scheduler) as runner, row_progress(quiet) as progress:
        result = explain_file(
            fitted,
            expression,
            out,
            scale=_scale(scale),
            chunk_size=chunk_size,
            method=method,
            progress=progress,
            mapper=runner.map_ordered,
        )
    if not quiet:
        console.print("[bold]Top NK axes over the cohort[/] (mean |SHAP|):")
        for row in result.summary["levels"]["axis"][:5]:
            console.print(f"  {row['label']}: {row['mean_abs_shap']:.3f} ({row['direction']})")
    console.print("written: " + ", ".join(str(p) for p in result.paths.values()))


@app.command()
@reports_errors
def report(
    model: ModelRef,
    expression: Annotated[Path, typer.Option(help="Expression matrix of the cohort.")],
    out: Annotated[Path, typer.Option(help="HTML file to write.")],
    labels: Annotated[
        Path | None, typer.Option(help="Labels, to add calibration on this cohort.")
    ] = None,
    id_column: Annotated[str | None, typer.Option(help="Sample id column of the labels.")] = None,
    max_samples: Annotated[
        int, typer.Option(min=0, help="Per-sample waterfall pages (predicted resistant first).")
    ] = 40,
    scale: Annotated[str, typer.Option(help="auto, counts, tpm or log.")] = "auto",
    tracking_uri: Tracking = None,
    quiet: Quiet = False,
) -> None:
    """Write a self-contained HTML explanation report for a model and a cohort."""
    from nkpredict.data.expression import read_expression
    from nkpredict.data.public import join_labels, read_labels
    from nkpredict.report.html import build_report, write_report

    configure_logging(quiet)
    fitted, reference = open_model(model, tracking_uri)
    if reference.name is not None:
        fitted.metadata_.update(model_name=reference.name, model_version=reference.version)
    matrix = read_expression(expression)
    label_table = None
    if labels is not None:
        matrix, label_table = join_labels(matrix, read_labels(labels, id_column or "sample_id"))
    prepared = fitted.prepare(matrix, scale=_scale(scale))
    html = build_report(
        fitted,
        prepared,
        labels=label_table,
        label_column=fitted.label_definition_.column,
        max_samples=max_samples,
        title=f"nkpredict report: {reference.uri}",
    )
    console.print(f"report: {write_report(html, out)}")


@app.command()
@reports_errors
def serve(
    model: Annotated[
        str | None,
        typer.Option("--model", help="Model directory or MLflow URI (default: NKP_MODEL_URI)."),
    ] = None,
    host: Annotated[str, typer.Option(help="Interface to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port.")] = 8000,
    workers: Annotated[int, typer.Option(min=1, help="Worker processes.")] = 1,
    log_level: Annotated[str, typer.Option(help="uvicorn log level.")] = "info",
    tracking_uri: Tracking = None,
) -> None:
    """Serve the model over HTTP (FastAPI under uvicorn)."""
    from nkpredict.settings import Settings
    from service.server import serve as run_server

    settings = Settings()
    if tracking_uri:
        settings = settings.model_copy(update={"tracking_uri": tracking_uri})
        os.environ["NKP_TRACKING_URI"] = tracking_uri
    configure_logging(False)
    uri = model or settings.model_uri
    err_console.print(
        f"serving {uri} on http://{host}:{port}  (docs: http://{host}:{port}/docs)\n"
        f"try: curl -s -X POST http://{host}:{port}/v1/predict -H 'Content-Type: application/json'"
        ' -d \'{"samples": {"S1": {"NCR3LG1": 0.5, "HLA-E": 9.0, "MICA": 2.0}}, '
        '"scale": "log", "min_coverage": 0}\'',
        soft_wrap=True,
        highlight=False,
    )
    run_server(uri, host, port, workers, log_level=log_level, settings=settings)


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return "" if np.isnan(value) else f"{value:.3f}"
    return str(value)


def _engine(value: str, scheduler: str | None) -> str:
    if value not in ("local", "dask"):
        raise typer.BadParameter("--engine must be local or dask")
    if scheduler and value != "dask":
        raise typer.BadParameter("--scheduler needs --engine dask")
    return value


def _scale(value: str) -> Any:
    allowed = ("auto", "counts", "tpm", "log")
    if value not in allowed:
        raise typer.BadParameter(f"--scale must be one of {', '.join(allowed)}")
    return value


def main() -> None:  # pragma: no cover - console entry used by `python -m training.cli`
    """Run the command line."""
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
