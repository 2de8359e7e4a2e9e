"""``nkpredict serve``: the HTTP service under uvicorn.

The only module of :mod:`training` that reaches :mod:`service`, and only inside the command,
so the rest of the command line never imports the web stack.
"""

from __future__ import annotations

import os
from typing import Annotated

import typer

from training.cli.options import Tracking
from training.cli.output import configure_logging, err_console, reports_errors

__all__ = ["serve"]


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
        f"try: curl -s -X POST http://{host}:{port}/v1/predict -H 'Content-Type: application/json'"
        ' -d \'{"samples": {"S1": {"NCR3LG1": 0.5, "HLA-E": 9.0, "MICA": 2.0}}, '
        '"scale": "log", "min_coverage": 0}\'',
        soft_wrap=True,
        highlight=False,
    )
    run_server(uri, host, port, workers, log_level=log_level, settings=settings)
