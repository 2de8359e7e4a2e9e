"""The direct routes' shorter stack (service.dispatch) answers as FastAPI's full stack does."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson
import pandas as pd
import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr
from service_settings import make_settings

from service.app import create_app
from service.dispatch import ServiceApp

if TYPE_CHECKING:
    from nkpredict.simulate.cohort import Cohort

Answer = tuple[int, list[tuple[str, str]], bytes]


def _clients(model_dir: Path, **overrides: Any) -> Iterator[tuple[TestClient, TestClient]]:
    """Two apps of the same settings: the direct dispatch on, and off (FastAPI's stack)."""
    fast = create_app(make_settings(model_dir, **overrides))
    full = create_app(make_settings(model_dir, **overrides))
    assert isinstance(full, ServiceApp)
    full.direct_dispatch_allowed = lambda: False  # type: ignore[method-assign]
    with (
        TestClient(fast, raise_server_exceptions=False) as a,
        TestClient(full, raise_server_exceptions=False) as b,
    ):
        yield a, b


def _answer(client: TestClient, path: str, body: bytes, headers: dict[str, str]) -> Answer:
    response = client.post(path, content=body, headers=headers)
    return response.status_code, sorted(response.headers.items()), response.content


def _counters(client: TestClient) -> list[str]:
    """The counted series of /metrics (latencies left out)."""
    text = client.get("/metrics").text
    return [
        line
        for line in text.splitlines()
        if line.startswith("nkpredict_") and ("_total" in line or "_count" in line)
    ]


def _body(counts: pd.DataFrame, n: int, **options: Any) -> bytes:
    samples = {str(s): row.to_dict() for s, row in counts.iloc[:n].iterrows()}
    return orjson.dumps({"samples": samples, **options})


JSON = {"content-type": "application/json"}


@pytest.fixture(scope="module")
def counts(service_cohort: Cohort) -> pd.DataFrame:
    return service_cohort.counts.iloc[:12]


def _same_answers(
    a: TestClient, b: TestClient, requests: list[tuple[str, bytes, dict[str, str]]]
) -> None:
    for path, body, headers in requests:
        assert _answer(a, path, body, headers) == _answer(b, path, body, headers), path
    assert _counters(a) == _counters(b)


def test_answers_and_errors_equal_the_full_stack(
    service_model_dir: Path, counts: pd.DataFrame
) -> None:
    requests = [
        ("/v1/predict", _body(counts, 1), JSON),
        ("/v1/predict", _body(counts, 12), JSON),
        ("/v1/explain", _body(counts, 2, top_n=3), JSON),
        ("/v1/whatif", _body(counts, 1), JSON),
        ("/v1/predict", b"{", JSON),
        ("/v1/explain", b"", JSON),
        ("/v1/predict", _body(counts, 1), {"content-type": "text/plain"}),
        ("/v1/predict", b'{"samples": {"a": {"FOO": "x"}}}', JSON),
        ("/v1/predict", b"{}" * 60_000, JSON),  # over the body limit below
    ]
    for a, b in _clients(service_model_dir, max_body_bytes=100_000, answer_chunk_samples=5):
        _same_answers(a, b, requests)


def test_keys_cors_and_internal_errors_equal_the_full_stack(
    service_model_dir: Path, counts: pd.DataFrame
) -> None:
    body = _body(counts, 1)
    keyed = [
        ("/v1/predict", body, JSON),
        ("/v1/explain", body, {**JSON, "X-API-Key": "wrong"}),
        ("/v1/predict", body, {**JSON, "X-API-Key": "s3cret"}),
    ]
    for a, b in _clients(service_model_dir, api_key=SecretStr("s3cret")):
        _same_answers(a, b, keyed)
    origin = {**JSON, "Origin": "http://a.example"}
    cors = [("/v1/predict", body, origin), ("/v1/explain", body, JSON)]
    for a, b in _clients(service_model_dir, cors_origins=["http://a.example"]):
        _same_answers(a, b, cors)
    for a, b in _clients(service_model_dir):
        for client in (a, b):
            broken: Callable[[], Any] = _raise
            client.app.state.holder.get = broken  # type: ignore[attr-defined]
        _same_answers(a, b, [("/v1/predict", body, JSON), ("/v1/explain", body, JSON)])


def _raise() -> Any:
    raise RuntimeError("a bug")


def test_the_leading_direct_routes_have_the_short_stack(service_model_dir: Path) -> None:
    app = create_app(make_settings(service_model_dir))
    assert isinstance(app, ServiceApp)
    with TestClient(app):
        assert app.direct_dispatch_allowed()
        assert set(app._direct_stacks) == {"/v1/predict", "/v1/explain", "/v1/whatif"}
