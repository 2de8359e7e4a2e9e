"""``nkpredict whatif``: expression counterfactuals of a fitted model for a cohort.

Each sample is scored as measured and after each intervention (a built-in of
:data:`nkpredict.vocabulary.INTERVENTIONS`, or ``NAME:GENE=TARGET,...``); the table has one
row per sample and intervention (:meth:`nkpredict.whatif.counterfactual.WhatIfResult.to_frame`)
and a JSON file beside it says what each intervention set and that these are counterfactuals
of the model, not pharmacology.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from nkpredict.exceptions import InputError
from nkpredict.settings import DEFAULT_MIN_COVERAGE
from nkpredict.vocabulary import INTERVENTIONS
from training.cli.loading import open_model
from training.cli.options import (
    ExpressionOption,
    MinCoverageOption,
    ModelOption,
    Quiet,
    ScaleOption,
    Tracking,
)
from training.cli.output import configure_logging, console, reports_errors

if TYPE_CHECKING:
    from nkpredict.whatif.interventions import Intervention

__all__ = ["parse_interventions", "whatif"]


def parse_interventions(values: list[str] | None) -> list[str]:
    """Check each ``--intervention`` when the command line is parsed (a usage error names
    the problem); every built-in when none is given."""
    from nkpredict.whatif.interventions import parse_intervention

    chosen: list[str] = list(values) if values else list(INTERVENTIONS)
    for value in chosen:
        try:
            parse_intervention(value)
        except InputError as exc:
            raise typer.BadParameter(str(exc)) from None
    return chosen


def _interventions(values: list[str]) -> list[Intervention]:
    from nkpredict.whatif.interventions import parse_intervention

    return [parse_intervention(v) for v in values]


@reports_errors
def whatif(
    model: ModelOption,
    expression: ExpressionOption,
    out: Annotated[
        Path,
        typer.Option(
            help="Output table (.csv, .tsv or .parquet): one row per sample and intervention."
        ),
    ],
    intervention: Annotated[
        list[str] | None,
        typer.Option(
            "--intervention",
            callback=parse_interventions,
            metavar="NAME|NAME:GENE=TARGET,...",
            help=f"A built-in ({', '.join(INTERVENTIONS)}) or your own as "
            "NAME:GENE=TARGET[,GENE=TARGET...], a target being a log2(TPM+1) value (3.5), a "
            "training percentile (p75), 'sensitive' or 'median'. Repeat it for several "
            "(default: every built-in).",
        ),
    ] = None,
    scale: ScaleOption = "auto",
    min_coverage: MinCoverageOption = DEFAULT_MIN_COVERAGE,
    tracking_uri: Tracking = None,
    quiet: Quiet = False,
) -> None:
    """What the model predicts for each sample under each intervention on its expression.

    Expression counterfactuals of the fitted model, not pharmacology: the named genes are set
    to the stated values, everything else stays as measured.
    """
    from nkpredict.data.expression import read_expression
    from nkpredict.io import atomic_paths, write_json, write_table
    from nkpredict.whatif.counterfactual import whatif as run_whatif

    configure_logging(quiet)
    fitted, reference = open_model(model, tracking_uri)
    prepared = fitted.prepare(read_expression(expression), scale=scale)
    fitted.check_coverage(prepared, min_coverage)
    result = run_whatif(fitted, prepared, _interventions(intervention or list(INTERVENTIONS)))
    notes_path = out.with_name(out.stem + ".whatif.json")
    with atomic_paths(out, notes_path) as (staged_out, staged_notes):
        write_table(result.to_frame(), staged_out)
        write_json(
            staged_notes,
            {
                "model": reference.to_dict(),
                "notes": result.notes(),
                "n_samples": len(result.sample_id),
                "n_models": result.n_models,
                "interventions": result.described_interventions(),
            },
        )
    if not quiet:
        for note in result.notes():
            console.print(note, highlight=False, soft_wrap=True)
        resistant = result.baseline_call == "resistant"
        deltas = result.delta
        for r, item in enumerate(result.interventions):
            shown = deltas[resistant, r] if resistant.any() else deltas[:, r]
            group = "predicted-resistant samples" if resistant.any() else "samples"
            console.print(
                f"  {item.name}: mean change {shown.mean():+.2f} {result.units} over "
                f"{len(shown)} {group}",
                highlight=False,
            )
    console.print(f"what-if table: {out}\nnotes: {notes_path}")
