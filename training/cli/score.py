"""``nkpredict predict``, ``explain`` and ``report``: scoring and explaining a cohort.

``predict`` and ``explain`` read, score and write in chunks (on this machine or a Dask
cluster); ``report`` writes one self-contained HTML file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from nkpredict.settings import DEFAULT_MIN_COVERAGE
from training.cli.loading import open_model
from training.cli.options import (
    ChunkSizeOption,
    EngineOption,
    MethodOption,
    MinCoverageOption,
    ModelOption,
    Quiet,
    ScaleOption,
    SchedulerOption,
    Tracking,
    check_scheduler,
)
from training.cli.output import configure_logging, console, reports_errors, row_progress

__all__ = ["counts_sentence", "explain", "predict", "report"]


GroupByOption = Annotated[
    list[str] | None,
    typer.Option(
        "--group-by",
        help="obs column of an .h5ad input to group cells by (repeat for combinations, e.g. "
        "--group-by sample --group-by cluster): one row per group with the resistant "
        "fraction, its 95% Wilson interval, the pseudobulk prediction and its top axes.",
    ),
]


def counts_sentence(n_rows: int, calls: dict[str, int]) -> str:
    """``"12 samples scored: 3 resistant, 9 sensitive."`` (the calls in order of count)."""
    noun = "sample" if n_rows == 1 else "samples"
    parts = [f"{n} {call}" for call, n in sorted(calls.items(), key=lambda kv: (-kv[1], kv[0]))]
    return f"{n_rows} {noun} scored" + (f": {', '.join(parts)}." if parts else ".")


@reports_errors
def predict(
    model: ModelOption,
    expression: Annotated[Path, typer.Option(help="Expression matrix to score.")],
    out: Annotated[
        Path,
        typer.Option(
            help="Output: a table (.csv, .tsv or .parquet); for an .h5ad input also a scored "
            "copy of it (.h5ad: nk_* columns in obs, provenance in uns['nkpredict']) or "
            "the per-cell obs columns alone (<name>.obs.parquet)."
        ),
    ],
    scale: ScaleOption = "auto",
    min_coverage: MinCoverageOption = DEFAULT_MIN_COVERAGE,
    group_by: GroupByOption = None,
    engine: EngineOption = "local",
    scheduler: SchedulerOption = None,
    chunk_size: ChunkSizeOption = None,
    tracking_uri: Tracking = None,
    quiet: Quiet = False,
) -> None:
    """Score samples: one row per sample with probability/score and call.

    The input is read, scored and written in chunks of --chunk-size samples (Parquet and
    h5ad inputs are never loaded whole), on this machine or on a Dask cluster. With
    --group-by, the group table goes to <out stem>.groups.csv beside --out.
    """
    from nkpredict.io import atomic_paths, write_json
    from nkpredict.stream.cells import output_kind
    from nkpredict.stream.groups import groups_path
    from nkpredict.stream.run import predict_file
    from training.engines import open_engine

    configure_logging(quiet)
    check_scheduler(engine, scheduler)
    fitted, reference = open_model(model, tracking_uri)
    kind = output_kind(out)
    stem = groups_path(out).name.removesuffix(".groups.csv")
    report_path = out.with_name(stem + ".harmonization.json")
    targets = [out, report_path, *([groups_path(out)] if group_by else [])]
    provenance = {
        "model_name": reference.name,
        "model_version": reference.version,
        "model_alias": reference.alias,
        "run_id": reference.run_id,
        "model_uri": reference.uri,
    }
    # The predictions and their reports are committed together or not at all (a disk that
    # fills up while the report is written leaves neither).
    with (
        atomic_paths(*targets) as staged,
        open_engine(engine, scheduler) as runner,
        row_progress(quiet) as progress,
    ):
        staged_out, staged_report = staged[0], staged[1]
        result = predict_file(
            fitted,
            expression,
            staged_out,
            scale=scale,
            chunk_size=chunk_size,
            min_coverage=min_coverage,
            progress=progress,
            mapper=runner.map_ordered,
            group_by=group_by or (),
            groups_out=staged[2] if group_by else None,
            kind=kind,
            provenance=provenance,
        )
        write_json(
            staged_report,
            {"model": reference.to_dict(), "input_scale": result.scale, **result.report.to_dict()},
        )
    if not quiet:
        console.print(
            f"{counts_sentence(result.n_rows, result.calls)} Harmonization: "
            f"{result.report.summary()}.",
            highlight=False,
            soft_wrap=True,
        )
    console.print(f"predictions: {out}\nharmonization report: {report_path}")
    if group_by:
        console.print(f"groups: {groups_path(out)}")


@reports_errors
def explain(
    model: ModelOption,
    expression: Annotated[Path, typer.Option(help="Expression matrix to explain.")],
    out: Annotated[Path, typer.Option(help="Directory for genes/features/axes/pathways.csv.")],
    scale: ScaleOption = "auto",
    method: MethodOption = "auto",
    group_by: GroupByOption = None,
    engine: EngineOption = "local",
    scheduler: SchedulerOption = None,
    chunk_size: ChunkSizeOption = None,
    tracking_uri: Tracking = None,
    quiet: Quiet = False,
) -> None:
    """SHAP attributions per sample at feature, gene, axis and pathway level (in chunks).

    With --group-by, also groups.csv: the group table of predict, whose top axes explain
    each group's pseudobulk profile."""
    from nkpredict.stream.run import explain_file
    from training.engines import open_engine

    configure_logging(quiet)
    check_scheduler(engine, scheduler)
    fitted, _ = open_model(model, tracking_uri)
    with open_engine(engine, scheduler) as runner, row_progress(quiet) as progress:
        result = explain_file(
            fitted,
            expression,
            out,
            scale=scale,
            chunk_size=chunk_size,
            method=method,
            progress=progress,
            mapper=runner.map_ordered,
            group_by=group_by or (),
        )
    if not quiet:
        console.print("[bold]Top NK axes over the cohort[/] (mean |SHAP|):")
        for row in result.summary["levels"]["axis"][:5]:
            console.print(f"  {row['label']}: {row['mean_abs_shap']:.3f} ({row['direction']})")
    console.print("written: " + ", ".join(str(p) for p in result.paths.values()))


@reports_errors
def report(
    model: ModelOption,
    expression: Annotated[Path, typer.Option(help="Expression matrix of the cohort.")],
    out: Annotated[Path, typer.Option(help="HTML file to write.")],
    labels: Annotated[
        Path | None, typer.Option(help="Labels, to add calibration on this cohort.")
    ] = None,
    id_column: Annotated[str | None, typer.Option(help="Sample id column of the labels.")] = None,
    max_samples: Annotated[
        int, typer.Option(min=0, help="Per-sample waterfall pages (predicted resistant first).")
    ] = 40,
    scale: ScaleOption = "auto",
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
    prepared = fitted.prepare(matrix, scale=scale)
    html = build_report(
        fitted,
        prepared,
        labels=label_table,
        label_column=fitted.label_definition_.column,
        max_samples=max_samples,
        title=f"nkpredict report: {reference.uri}",
    )
    console.print(f"report: {write_report(html, out)}")
