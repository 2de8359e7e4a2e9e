"""``nkpredict simulate`` and ``nkpredict features``: cohorts and their NK features."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from nkpredict.vocabulary import SCENARIOS, Scenario
from training.cli.options import ExpressionOption, Quiet, ScaleOption, choice_option, one_of
from training.cli.output import configure_logging, console, print_table, reports_errors

__all__ = ["features", "simulate"]


@reports_errors
def simulate(
    out: Annotated[Path, typer.Option(help="Directory to write the cohort into.")] = Path(
        "demo/cohort"
    ),
    n_samples: Annotated[int, typer.Option(min=20, help="Number of samples.")] = 600,
    n_genes: Annotated[int, typer.Option(min=1, help="Number of genes in the matrix.")] = 3000,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
    scenario: Annotated[
        Scenario,
        choice_option(
            SCENARIOS,
            f"Planted truth: {one_of(SCENARIOS)} (see the README's Simulation section).",
        ),
    ] = "additive",
    quiet: Quiet = False,
) -> None:
    """Simulate a blood-cancer cohort with planted NK-escape mechanisms and known truth.

    Writes truth.json and contributions.csv (every driver's true contribution per sample)
    next to the expression and labels.
    """
    from nkpredict.simulate.cohort import simulate_cohort
    from nkpredict.simulate.config import SimulationConfig
    from nkpredict.simulate.files import write_cohort

    configure_logging(quiet)
    cohort = simulate_cohort(
        SimulationConfig(n_samples=n_samples, n_genes=n_genes, seed=seed), scenario=scenario
    )
    paths = write_cohort(cohort, out)
    labels = cohort.labels
    print_table(
        f"Simulated cohort in {out}",
        [
            ("scenario", scenario),
            ("samples x genes", f"{cohort.counts.shape[0]} x {cohort.counts.shape[1]}"),
            ("resistant", f"{int(labels['resistant'].sum())} ({labels['resistant'].mean():.0%})"),
            ("lineages", ", ".join(sorted(labels["lineage"].unique()))),
            *[(name, path) for name, path in paths.items()],
        ],
    )


@reports_errors
def features(
    expression: ExpressionOption,
    out: Annotated[Path | None, typer.Option(help="Write features here (.csv/.parquet).")] = None,
    scale: ScaleOption = "auto",
    quiet: Quiet = False,
) -> None:
    """Harmonize an expression matrix, build NK features and summarise them."""
    from nkpredict.data.expression import prepare_expression, read_expression
    from nkpredict.features.builder import NKFeatureBuilder
    from nkpredict.io import write_table

    configure_logging(quiet)
    prepared = prepare_expression(read_expression(expression), scale=scale)
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
