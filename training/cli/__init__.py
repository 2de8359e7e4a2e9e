"""The ``nkpredict`` command line: parses options, calls the library, prints results.

``app`` is the console script (``nkpredict = "training.cli:app"``); ``python -m training.cli``
runs it too. The commands live by group:

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

from typing import Annotated

import typer

from nkpredict import __version__
from training.cli import data, labels, score, serve, train, whatif
from training.cli.output import console

__all__ = ["app", "main"]

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


def main() -> None:  # pragma: no cover - console entry used by `python -m training.cli`
    """Run the command line."""
    app()
