"""Option types shared by the ``nkpredict`` commands, each defined and validated once.

The choices come from :mod:`nkpredict.vocabulary`; Typer checks a value when it parses the
command line, so a bad value fails once, as a usage error (exit status 2), before any work,
and the commands receive the vocabulary's ``Literal`` types (no re-checks further in).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import typer

from nkpredict.settings import DEFAULT_MIN_COVERAGE
from nkpredict.vocabulary import (
    AUC_METHODS,
    DIRECTIONS,
    ENGINES,
    EXPLAIN_METHODS,
    LABEL_FORMATS,
    SCALE_CHOICES,
    TASKS,
    AucMethod,
    Direction,
    Engine,
    ExplainMethod,
    LabelFormat,
    ScaleChoice,
    Task,
)

__all__ = [
    "AucOption",
    "ChunkSizeOption",
    "DirectionOption",
    "EngineOption",
    "ExpressionOption",
    "LabelsFormatOption",
    "MethodOption",
    "MinCoverageOption",
    "ModelOption",
    "Quiet",
    "ScaleOption",
    "SchedulerOption",
    "TaskOption",
    "Tracking",
    "check_scheduler",
    "choice",
    "choice_option",
    "one_of",
]


def one_of(values: tuple[str, ...]) -> str:
    """``values`` in words: ``"auto, counts, tpm or log"``."""
    return values[0] if len(values) == 1 else f"{', '.join(values[:-1])} or {values[-1]}"


def choice(values: tuple[str, ...]) -> Callable[[str], str]:
    """A Typer ``parser`` accepting exactly ``values`` (a usage error names them otherwise).

    Parameters
    ----------
    values : tuple of str
        The option's values, e.g. :data:`nkpredict.vocabulary.SCALE_CHOICES`.
    """

    def parse(value: str) -> str:
        if value in values:
            return value
        raise typer.BadParameter(f"{value!r} is not {one_of(values)}")

    return parse


def choice_option(values: tuple[str, ...], help: str, *names: str) -> typer.models.OptionInfo:
    """A Typer option accepting exactly ``values``, shown as ``[a|b|c]`` in ``--help``."""
    return typer.Option(*names, parser=choice(values), metavar=f"[{'|'.join(values)}]", help=help)


Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="Only print errors and results.")]
Tracking = Annotated[
    str | None,
    typer.Option(help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI or local SQLite)."),
]
ModelOption = Annotated[
    str, typer.Option("--model", help="Model directory or MLflow URI (models:/NAME@ALIAS).")
]
ExpressionOption = Annotated[Path, typer.Option(help="Expression matrix (CSV/TSV/Parquet/h5ad).")]
ScaleOption = Annotated[
    ScaleChoice,
    choice_option(
        SCALE_CHOICES,
        f"Input scale: {one_of(SCALE_CHOICES)} (auto detects it from the values).",
    ),
]
EngineOption = Annotated[
    Engine,
    choice_option(
        ENGINES,
        "Where to run: local (this process) or dask (a Dask cluster).",
    ),
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
MinCoverageOption = Annotated[
    float,
    typer.Option(
        min=0.0,
        max=1.0,
        help="Reject samples covering fewer of the model's genes (default "
        f"{DEFAULT_MIN_COVERAGE:g}, as in the service and streaming: below it a prediction "
        "leans on imputed medians; 0 scores every sample).",
    ),
]
TaskOption = Annotated[
    Task,
    choice_option(TASKS, f"{one_of(TASKS)}."),
]
DirectionOption = Annotated[
    Direction | None,
    choice_option(
        DIRECTIONS,
        f"{one_of(DIRECTIONS)} the cut-off is resistant; needed for readouts without a "
        "documented direction (auc_norm, AUC_normalized, pctviability, viability_et_*, "
        "Percent_viability_*: above; killing_auc: below).",
    ),
]
AucOption = Annotated[
    AucMethod | None,
    choice_option(
        AUC_METHODS,
        "AUC of the viabilities: dufva2023 (the paper's auc_norm, high = resistant; the "
        "default for the paper's tables) or log2-killing (killing_auc, high = killed).",
    ),
]
LabelsFormatOption = Annotated[
    LabelFormat,
    choice_option(LABEL_FORMATS, "Layout of the labels file (auto detects it from the header)."),
]
MethodOption = Annotated[
    ExplainMethod,
    choice_option(
        EXPLAIN_METHODS,
        "TreeSHAP implementation: auto (= compiled), compiled (numpy tables checked "
        "against XGBoost; XGBoost's own when a model cannot be compiled), native (XGBoost), "
        "shap (shap.TreeExplainer).",
    ),
]


def check_scheduler(engine: Engine, scheduler: str | None) -> None:
    """``--scheduler`` only goes with ``--engine dask`` (a usage error otherwise)."""
    if scheduler and engine != "dask":
        raise typer.BadParameter("--scheduler needs --engine dask")
