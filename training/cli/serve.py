"""``nkpredict serve``: the HTTP service under uvicorn.

The only module of :mod:`training` that reaches :mod:`service`, and only inside the command,
so the rest of the command line never imports the web stack.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Annotated

import typer

from training.cli.options import Tracking
from training.cli.output import configure_logging, err_console, reports_errors

__all__ = ["serve"]


def _curl_example(uri: str, host: str, port: int, tracking_uri: str | None) -> str:
    """A curl command that sends one realistic sample: the served model's genes at their
    training medians (log2(TPM+1)), under the default minimum coverage."""
    from nkpredict.exceptions import NKPredictError
    from nkpredict.io import write_json
    from training.cli.loading import open_model

    try:
        fitted, _ = open_model(uri, tracking_uri)
    except NKPredictError as exc:
        return f"(no example request: the model cannot be read here: {exc})"
    builder = fitted.feature_builder
    sample = {
        gene: round(float(value), 3)
        for gene, value in zip(builder.genes_in_, builder.median_, strict=True)
    }
    body = {"samples": {"EXAMPLE-1": sample}, "scale": "log"}
    path = Path(tempfile.gettempdir()) / f"nkpredict-example-{port}.json"
    write_json(path, body)
    return (
        f"try ({len(sample)} genes at their training medians, default min coverage):\n"
        f"  curl -s -X POST http://{host}:{port}/v1/predict -H 'Content-Type: application/json'"
        f" -d @{path}"
    )


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
    from service.config import ServiceSettings
    from service.server import serve as run_server

    settings = ServiceSettings()
    if tracking_uri:
        settings = settings.model_copy(update={"tracking_uri": tracking_uri})
        os.environ["NKP_TRACKING_URI"] = tracking_uri  # for the worker processes
    configure_logging(False)
    uri = model or settings.model_uri
    err_console.print(
        f"serving {uri} on http://{host}:{port}  (docs: http://{host}:{port}/docs)\n"
        + _curl_example(uri, host, port, tracking_uri),
        soft_wrap=True,
        highlight=False,
    )
    run_server(uri, host, port, workers, log_level=log_level, settings=settings)
