"""The ceilings of the HTTP stack: bare FastAPI endpoints that read (and parse) the body.

Served by the same uvicorn as nkpredict (``uvicorn benchmarks.bare_app:app``), ``/predict``
measures what the server, the event loop, h11 and the loopback cost without any model work
(it reads the body and answers a constant), and ``/parse`` adds parsing the body with orjson
(what any JSON endpoint must do), so ``benchmarks/service_load.py`` can report the service's
throughput as a fraction of each.
``python -m benchmarks.bare_app --port P --workers N`` serves it with several workers exactly
as ``nkpredict serve --workers N`` serves the model (:func:`service.server.run_workers`).
"""

from __future__ import annotations

import argparse

import orjson
from fastapi import FastAPI, Request, Response

app = FastAPI(title="bare")

ANSWER = b'{"predictions":[{"sample_id":"S0","probability":0.5,"call":"sensitive"}]}'


@app.post("/predict")
async def predict(request: Request) -> Response:
    """Read the body (like every real endpoint must) and answer a constant."""
    await request.body()
    return Response(content=ANSWER, media_type="application/json")


@app.post("/parse")
async def parse(request: Request) -> Response:
    """Read the body, parse it with orjson, answer a constant (the JSON-endpoint ceiling)."""
    orjson.loads(await request.body())
    return Response(content=ANSWER, media_type="application/json")


@app.get("/health")
async def health() -> Response:
    """Readiness probe for the benchmark driver."""
    return Response(content=b'{"status":"ok"}', media_type="application/json")


def main() -> None:
    """Serve the bare app with ``--workers`` worker processes on ``--port``."""
    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    from service.server import run_workers  # here: the served app itself imports nothing more

    run_workers(
        "127.0.0.1",
        args.port,
        args.workers,
        "warning",
        app="benchmarks.bare_app:app",
        factory=False,
    )


if __name__ == "__main__":
    main()
