"""The ``nkpredict`` command line: parses options, calls the library, prints results.

``main`` is the console script (``nkpredict = "training.cli:main"``: ``app`` with SIGTERM
ending a command cleanly); ``python -m training.cli`` runs it too. The commands live by group:

* :mod:`training.cli.data`: ``simulate``, ``features``;
* :mod:`training.cli.labels`: ``labels`` (the per-line label table ``train`` would use);
* :mod:`training.cli.train`: ``train``, ``evaluate``, ``models`` (and the label policy);
* :mod:`training.cli.score`: ``predict``, ``explain``, ``report``;
* :mod:`training.cli.whatif`: ``whatif`` (expression counterfactuals of a model);
* :mod:`training.cli.serve`: ``serve`` (the only place that imports :mod:`service`).

Shared option types are in :mod:`training.cli.options`, printing, errors and progress in
:mod:`training.cli.output`. Every library error becomes a one-line message on stderr and exit
status 1; bad options exit with status 2 (Typer's usage errors).
"""

from __future__ import annotations

import signal
import sys
from types import FrameType
from typing import Annotated

import typer

from nkpredict import __version__
from training.cli import data, labels, score, serve, train, whatif
from training.cli.output import console

__all__ = ["TERMINATED_STATUS", "app", "main"]

app = typer.Typer(
    name="nkpredict",
    help="Predict and explain NK-cell resistance of blood-cancer samples from expression.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _print_version(value: bool) -> None:
    if value:
        console.print(f"nkpredict {__version__}", highlight=False)
        raise typer.Exit()


TERMINATED_STATUS = 128 + signal.SIGTERM
"""Exit status of a command ended by SIGTERM (the shell's convention)."""


def _terminated(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(TERMINATED_STATUS)


def _end_cleanly_on_sigterm() -> None:
    """Make SIGTERM (``kill``, a scheduler's time limit) end a command as Ctrl-C does:
    through every ``finally`` and context manager, so that worker processes stop and
    temporary files go (a training job's memory-mapped matrix among them). Python's default
    ends the process on the spot. ``serve`` replaces it with uvicorn's graceful shutdown."""
    if sys.platform != "win32":
        signal.signal(signal.SIGTERM, _terminated)


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version",
            callback=_print_version,
            is_eager=True,
            help="Print the version and exit.",
        ),
    ] = False,
) -> None:
    """Predict and explain NK-cell resistance of blood-cancer samples from expression."""


for command in (
    data.simulate,
    data.features,
    labels.labels,
    train.train,
    train.evaluate,
    score.predict,
    train.models,
    score.explain,
    score.report,
    whatif.whatif,
    serve.serve,
):
    app.command()(command)


def main() -> None:
    """Run the command line (the ``nkpredict`` console script and ``python -m training.cli``),
    SIGTERM ending it cleanly (:func:`_end_cleanly_on_sigterm`)."""
    _end_cleanly_on_sigterm()
    app()
