"""``nkpredict labels``: the per-line label table that ``train`` would use, for checking.

It reads the labels file exactly as ``train --labels`` does
(:func:`nkpredict.data.public.read_labels`) and, when a cut is given, adds the ``call`` that
training would make (:func:`nkpredict.data.labels.label_table`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from training.cli.options import AucOption, DirectionOption, LabelsFormatOption, Quiet
from training.cli.output import configure_logging, print_table, reports_errors
from training.cli.train import label_definition, labels_defaults

__all__ = ["labels"]


@reports_errors
def labels(
    labels: Annotated[
        Path, typer.Option("--labels", help="Labels table or a published NK-screen file.")
    ],
    out: Annotated[Path, typer.Option(help="Per-line table to write (.csv, .tsv or .parquet).")],
    auc: AucOption = None,
    threshold: Annotated[
        float | None, typer.Option(help="Cut-off turning the readout into a call.")
    ] = None,
    quantile: Annotated[
        float | None, typer.Option(help="Cut-off as a quantile of the readout.")
    ] = None,
    resistant_when: DirectionOption = None,
    label_column: Annotated[
        str | None, typer.Option(help="Readout to cut (default: the AUC column).")
    ] = None,
    id_column: Annotated[
        str | None, typer.Option(help="Sample id column of a generic table (sample_id).")
    ] = None,
    labels_format: LabelsFormatOption = "auto",
    quiet: Quiet = False,
) -> None:
    """Write the per-line label table that `train --labels` would use (check it first)."""
    from nkpredict.data.labels import direction_source, label_table, written_table
    from nkpredict.data.public import label_format, read_labels, viability_columns
    from nkpredict.io import write_table

    configure_logging(quiet)
    if resistant_when is not None and threshold is None and quantile is None:
        raise typer.BadParameter("--resistant-when needs --threshold or --quantile")
    layout = label_format(labels, labels_format)
    default_label, default_id = labels_defaults(labels, labels_format, auc)
    table = read_labels(labels, id_column or default_id or "sample_id", layout, auc)
    definition = None
    if threshold is not None or quantile is not None:
        definition = label_definition(
            label_column or default_label, "classification", threshold, quantile, resistant_when
        )
    table, resolved = label_table(table, definition)
    write_table(written_table(table), out)
    rows: list[tuple[str, object]] = [
        ("layout", layout),
        ("lines", len(table)),
        (
            "E:T ratios",
            ", ".join(c.removeprefix("viability_et_") for c in viability_columns(table).values())
            or "-",
        ),
    ]
    if default_label is not None:
        rows.append(("readout", default_label))
    if "lineage" in table and table["lineage"].notna().any():
        rows.append(("lineages", table["lineage"].nunique()))
    if resolved is not None:
        calls = table["call"].value_counts()
        rows += [
            ("call", resolved.describe()),
            ("resistant when", f"{resolved.resistant_when} ({direction_source(resolved)})"),
            ("resistant / sensitive", f"{calls.get('resistant', 0)} / {calls.get('sensitive', 0)}"),
        ]
    rows.append(("written", out))
    print_table(f"Labels from {labels.name}", rows)
