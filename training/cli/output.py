"""What the ``nkpredict`` commands print: logging set-up, errors, tables and progress bars.

Library errors become a one-line message on stderr and exit status 1; Ctrl-C exits with 130.
Progress goes to stderr and is off under ``--quiet``, in CI and off a terminal.
"""

from __future__ import annotations

import functools
import logging
import os
import shlex
import shutil
import sys
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, ParamSpec, TypeVar

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

from nkpredict.exceptions import NKPredictError

__all__ = [
    "cell",
    "configure_logging",
    "console",
    "err_console",
    "mlflow_ui_command",
    "print_table",
    "progress_reporter",
    "reports_errors",
    "row_progress",
]

console = Console()
"""Results (stdout)."""
err_console = Console(stderr=True)
"""Logs, progress and errors (stderr)."""

P = ParamSpec("P")
R = TypeVar("R")


def configure_logging(quiet: bool) -> None:
    """Send library logs to stderr through rich (warnings by default, errors when quiet)."""
    level = logging.ERROR if quiet else logging.WARNING
    handler = RichHandler(console=err_console, show_path=False, show_time=False)
    logging.basicConfig(level=level, handlers=[handler], format="%(message)s", force=True)
    logging.getLogger("mlflow").setLevel(max(level, logging.WARNING))
    logging.getLogger("distributed").setLevel(max(level, logging.WARNING))
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    _mlflow_events(shown=not quiet)
    if quiet:  # MLflow's own chatter: its Python warnings and its logger's warnings
        warnings.filterwarnings("ignore", module=r"mlflow(\..*)?$")
        warnings.filterwarnings("ignore", category=FutureWarning, message=r".*[Mm][Ll]flow.*")
        logging.getLogger("mlflow").setLevel(logging.ERROR)
        logging.getLogger("alembic").setLevel(logging.ERROR)


def _mlflow_events(shown: bool) -> None:
    """Show or silence the events MLflow prints straight to stderr past any logger level
    ("Successfully registered model ...", "Created version ..."). Its own logger writes to the
    same stream, so a quiet command also drops errors MLflow only logs (ours, and every error
    that stops a command, are still printed). MLflow is imported to silence them only: a
    command that never imports it has nothing to silence."""
    if not shown:
        from mlflow.utils.logging_utils import disable_logging

        disable_logging()
    elif "mlflow.utils.logging_utils" in sys.modules:
        sys.modules["mlflow.utils.logging_utils"].enable_logging()


def mlflow_ui_command(tracking_uri: str) -> str | None:
    """A command that opens the MLflow UI on ``tracking_uri``, runnable from any directory.

    Local stores get an absolute URI (a relative ``sqlite:///mlruns/mlflow.db`` only works
    from the directory it was made in) and the ``mlflow`` executable of this environment;
    a tracking server already has a UI at its own address (``None`` is returned).
    """
    if tracking_uri.startswith(("http://", "https://", "databricks")):
        return None
    if tracking_uri.startswith("sqlite:///"):
        path = tracking_uri.removeprefix("sqlite:///")
        uri = f"sqlite:///{os.path.abspath(path)}" if not path.startswith("/") else tracking_uri
    else:
        uri = os.path.abspath(tracking_uri.removeprefix("file://"))
    beside = os.path.join(os.path.dirname(sys.executable), "mlflow")
    executable = beside if os.access(beside, os.X_OK) else shutil.which("mlflow") or "mlflow"
    return f"{shlex.quote(executable)} ui --backend-store-uri {shlex.quote(uri)}"


def _error(message: str) -> None:
    err_console.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)


def reports_errors(command: Callable[P, R]) -> Callable[P, R]:
    """Turn library errors raised by ``command`` into a one-line message and exit status 1."""

    @functools.wraps(command)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return command(*args, **kwargs)
        except NKPredictError as exc:
            _error(str(exc))
            raise typer.Exit(code=1) from None
        except OSError as exc:  # disk full, permissions: outputs are atomic, nothing partial
            where = f" ({exc.filename})" if exc.filename else ""
            _error(f"{exc.strerror or exc}{where}")
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


def cell(value: Any) -> str:
    """A table cell: floats with 3 decimals (NaN empty), anything else as text."""
    if isinstance(value, float):
        return "" if np.isnan(value) else f"{value:.3f}"
    return str(value)


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
