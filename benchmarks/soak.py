"""Soak test: minutes of sustained concurrent requests, zero failures, stable memory.

Serves the benchmark model (``benchmarks/bench_model.py``) with ``nkpredict serve`` from its
MLflow registry and drives it with wrk (8 connections) for ``--minutes`` with a mix of
requests: single-sample predictions, single-sample explanations and 100-sample batches
(3:1:1). The server's resident memory is sampled every few seconds; after a warm-up the
growth and its trend (least-squares slope) are reported. At the end the service's own
Prometheus counters must show no 5xx answer.

Usage::

    python benchmarks/soak.py                 # 5 minutes
    python benchmarks/soak.py --minutes 1

Prints a markdown table for BENCHMARKS.md; exits 1 on any failed request or if memory grew
more than ``--max-growth-mib``.
"""

from __future__ import annotations

import argparse
import re
import statistics
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_model
from harness import (
    free_port,
    python_command,
    require_wrk,
    rss_mib,
    run_wrk,
    start_server,
    stop_server,
)

SAMPLE_EVERY_S = 5.0
WARM_UP_S = 30.0


def sample_memory(pid: int, stop: threading.Event, out: list[tuple[float, float]]) -> None:
    """Append (seconds since start, RSS MiB) every :data:`SAMPLE_EVERY_S` until ``stop``."""
    started = time.monotonic()
    while not stop.is_set():
        out.append((time.monotonic() - started, rss_mib(pid)))
        stop.wait(SAMPLE_EVERY_S)


def slope_mib_per_min(points: list[tuple[float, float]]) -> float:
    """Least-squares slope of RSS over time, MiB per minute."""
    if len(points) < 3:
        return 0.0
    fit = statistics.linear_regression([t for t, _ in points], [m for _, m in points])
    return fit.slope * 60


def server_errors(url: str) -> int:
    """Answers with a 5xx status counted by the service's own metrics."""
    with urllib.request.urlopen(url + "/metrics", timeout=10) as answer:
        text = answer.read().decode()
    pattern = re.compile(r'^nkpredict_http_requests_total\{[^}]*status="5\d\d"[^}]*\} (\S+)$')
    return int(sum(float(m.group(1)) for m in map(pattern.match, text.splitlines()) if m))


def main() -> None:
    """Run the soak and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=5.0)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--max-growth-mib", type=float, default=50.0)
    args = parser.parse_args()
    require_wrk()
    with tempfile.TemporaryDirectory(prefix="nkp-soak-") as tmp:
        workdir = Path(tmp)
        model = bench_model.prepare(workdir)
        port = free_port()
        server = start_server(
            "nkpredict",
            python_command(
                "-m", "training.cli", "serve", "--model", model.model_uri,
                "--tracking-uri", model.tracking_uri, "--port", str(port),
                "--log-level", "warning",
            ),
            port,
            workdir,
            env={"NKP_MODEL_THREADS": "1"},
            ready_path="/ready",
        )  # fmt: skip
        single, batch = model.bodies["predict_1"], model.bodies["predict_100"]
        mix = [
            ("/v1/predict", single),
            ("/v1/predict", single),
            ("/v1/predict", single),
            ("/v1/explain", single),
            ("/v1/predict", batch),
        ]
        memory: list[tuple[float, float]] = []
        stop = threading.Event()
        sampler = threading.Thread(
            target=sample_memory, args=(server.pid(), stop, memory), daemon=True
        )
        try:
            rss_idle = rss_mib(server.pid())
            sampler.start()
            result = run_wrk(
                server.url,
                rotate=mix,
                connections=args.connections,
                seconds=args.minutes * 60,
            )
            stop.set()
            sampler.join()
            errors_5xx = server_errors(server.url)
        finally:
            stop.set()
            code = stop_server(server)
    steady = [(t, m) for t, m in memory if t >= WARM_UP_S] or memory
    growth = steady[-1][1] - steady[0][1]
    peak = max(m for _, m in memory)
    rows = [
        ("duration", f"{result.seconds / 60:.1f} min, {args.connections} connections"),
        ("mix", "3 x predict (1 sample), 1 x explain (1 sample), 1 x predict (100 samples)"),
        ("requests", f"{result.requests:,} ({result.rps:,.0f} req/s)"),
        ("failed requests", f"{result.failures} (socket errors + non-2xx); 5xx in metrics: "
         f"{errors_5xx}"),
        ("latency p50 / p99 / max", f"{result.p50_ms:.1f} / {result.p99_ms:.1f} / "
         f"{result.max_ms:.1f} ms"),
        ("RSS idle / after warm-up / end / peak", f"{rss_idle:.0f} / {steady[0][1]:.0f} / "
         f"{steady[-1][1]:.0f} / {peak:.0f} MiB"),
        ("RSS growth after warm-up", f"{growth:+.1f} MiB (trend {slope_mib_per_min(steady):+.2f}"
         " MiB/min)"),
        ("server exit status", str(code)),
    ]  # fmt: skip
    print("| soak | |\n|---|---|")
    for name, value in rows:
        print(f"| {name} | {value} |")
    failed = result.failures or errors_5xx or growth > args.max_growth_mib or code != 0
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
