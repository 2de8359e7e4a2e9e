"""A short soak: sustained concurrent requests against a real uvicorn process.

Eight client threads send a mix of requests (single-sample and 20-sample predictions,
explanations, CSV uploads, probes) for :data:`DURATION_S` seconds. Every answer must be a
200 with the expected body, the service's own metrics must count no 5xx, and the server's
resident memory may not grow by more than :data:`MAX_GROWTH_MIB` after the warm-up.
``benchmarks/soak.py`` runs the same idea for 5 minutes with wrk.
"""

from __future__ import annotations

import re
import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from http_servers import Server, rss_mib, serving

pytestmark = pytest.mark.integration  # a real uvicorn process under load

if TYPE_CHECKING:
    from nkpredict.simulate.cohort import Cohort

DURATION_S = 15.0
WARM_UP_S = 4.0
CLIENTS = 8
FIVE_XX = r'nkpredict_http_requests_total\{[^}]*status="5\d\d"[^}]*\} (\S+)'
MAX_GROWTH_MIB = 30.0
"""Bound on RSS growth from the end of the warm-up to the end (the 5-minute soak in
BENCHMARKS.md stays within a few MiB; this leaves room for allocator noise)."""


@pytest.fixture(scope="module")
def server(service_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    log = tmp_path_factory.mktemp("load") / "server.log"
    with serving(str(service_model_dir), log) as running:
        yield running


def _requests(cohort: Cohort) -> list[tuple[str, dict[str, Any]]]:
    counts = cohort.counts
    one = {"samples": {"S1": counts.iloc[0].to_dict()}}
    twenty = {"samples": {str(s): row.to_dict() for s, row in counts.iloc[:20].iterrows()}}
    upload = counts.iloc[20:30].to_csv().encode()
    return [
        ("/v1/predict", {"json": one}),
        ("/v1/predict", {"json": one}),
        ("/v1/predict", {"json": twenty}),
        ("/v1/explain", {"json": one}),
        ("/v1/predict/file", {"files": {"file": ("batch.csv", upload, "text/csv")}}),
        ("/health", {}),
    ]


def _expected_samples(path: str, kwargs: dict[str, Any]) -> int | None:
    if "json" in kwargs:
        return len(kwargs["json"]["samples"])
    return 10 if path.endswith("/file") else None


def _client(url: str, requests: list[tuple[str, dict[str, Any]]], until: float) -> Counter[str]:
    outcomes: Counter[str] = Counter()
    with httpx.Client(base_url=url, timeout=30) as client:
        i = 0
        while time.monotonic() < until:
            path, kwargs = requests[i % len(requests)]
            i += 1
            try:
                answer = client.post(path, **kwargs) if kwargs else client.get(path)
            except httpx.TransportError as exc:
                outcomes[f"transport error {type(exc).__name__}"] += 1
                continue
            expected = _expected_samples(path, kwargs)
            if answer.status_code != 200:
                outcomes[f"{path} {answer.status_code}"] += 1
            elif expected is not None and answer.json()["n_samples"] != expected:
                outcomes[f"{path} wrong body"] += 1
            else:
                outcomes["ok"] += 1
    return outcomes


def test_sustained_load_without_failures_or_memory_growth(
    server: Server, service_cohort: Cohort
) -> None:
    requests = _requests(service_cohort)
    pid = server.process.pid
    memory: list[tuple[float, float]] = []
    done = threading.Event()

    def sample() -> None:
        started = time.monotonic()
        while not done.wait(0.5):
            memory.append((time.monotonic() - started, rss_mib(pid)))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    until = time.monotonic() + DURATION_S
    with ThreadPoolExecutor(max_workers=CLIENTS) as pool:
        futures = [pool.submit(_client, server.url, requests, until) for _ in range(CLIENTS)]
        outcomes = sum((f.result() for f in futures), Counter())
    done.set()
    sampler.join()

    assert set(outcomes) == {"ok"}, outcomes
    assert outcomes["ok"] > 100  # the load really was sustained
    metrics = httpx.get(f"{server.url}/metrics").text
    assert re.findall(FIVE_XX, metrics) == []
    steady = [rss for t, rss in memory if t >= WARM_UP_S]
    assert len(steady) >= 5
    assert steady[-1] - steady[0] < MAX_GROWTH_MIB, memory
