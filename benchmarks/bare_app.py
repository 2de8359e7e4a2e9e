"""The ceiling of the HTTP stack: a bare FastAPI endpoint that reads the body, returns a constant.

Served by the same uvicorn as nkpredict (``uvicorn benchmarks.bare_app:app``), it measures what
the server, the event loop, h11 and the loopback cost without any model work, so
``benchmarks/service_load.py`` can report the service's throughput as a fraction of it.
"""

from __future__ import annotations

from fastapi import FastAPI, Request, Response

app = FastAPI(title="bare")

ANSWER = b'{"predictions":[{"sample_id":"S0","probability":0.5,"call":"sensitive"}]}'


@app.post("/predict")
async def predict(request: Request) -> Response:
    """Read the body (like every real endpoint must) and answer a constant."""
    await request.body()
    return Response(content=ANSWER, media_type="application/json")


@app.get("/health")
async def health() -> Response:
    """Readiness probe for the benchmark driver."""
    return Response(content=b'{"status":"ok"}', media_type="application/json")
