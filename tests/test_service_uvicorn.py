"""The service in a real uvicorn process: start-up, HTTP answers, reloads under load, shutdown.

The main server runs through ``service.server.serve`` (the ``nkpredict serve`` path); the
failed start-up runs ``python -m uvicorn --factory service.app:create_app``.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import numpy as np
import pandas as pd
import pytest
from http_servers import (
    START_TIMEOUT,
    Server,
    free_port,
    launch,
    serving,
    start_uvicorn,
    stop,
    wait_ready,
)

from nkpredict.model.fitted import NKResistanceModel

pytestmark = pytest.mark.integration  # real uvicorn processes

if TYPE_CHECKING:
    from nkpredict.simulate.cohort import Cohort

ADMIN_KEY = "uvicorn-admin-key"


@pytest.fixture(scope="module")
def server(service_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    log = tmp_path_factory.mktemp("uvicorn") / "server.log"
    with serving(
        str(service_model_dir), log, NKP_ADMIN_API_KEY=ADMIN_KEY, NKP_MAX_BODY_BYTES="1000000"
    ) as running:
        yield running


def body_of(frame: pd.DataFrame) -> dict[str, Any]:
    return {"samples": {str(sid): row.to_dict() for sid, row in frame.iterrows()}}


def expected_probabilities(model_dir: Path, frame: pd.DataFrame) -> np.ndarray:
    model = NKResistanceModel.load(model_dir)
    return model.predict_table(model.prepare(frame))["probability"].to_numpy()


def test_real_http_answers_equal_in_process_predictions(
    server: Server, service_cohort: Cohort, service_model_dir: Path
) -> None:
    frame = service_cohort.counts.iloc[:10]
    with httpx.Client(base_url=server.url, timeout=30) as client:
        assert client.get("/health").json() == {"status": "ok"}
        response = client.post("/v1/predict", json=body_of(frame))
        assert response.status_code == 200, response.text
        got = [p["probability"] for p in response.json()["predictions"]]
        np.testing.assert_allclose(got, expected_probabilities(service_model_dir, frame))
        upload = client.post(
            "/v1/predict/file", files={"file": ("b.csv", frame.to_csv().encode(), "text/csv")}
        )
        assert [p["probability"] for p in upload.json()["predictions"]] == got
        explained = client.post("/v1/explain", json=body_of(frame.iloc[:2]))
        assert explained.status_code == 200
        bad = client.post("/v1/predict", content=b'{"samples": {"a": {"MICA": NaN}}}')
        assert bad.status_code == 422 and bad.json()["error"]["code"] == "non_finite_value"
        assert "nkpredict_http_requests_total" in client.get("/metrics").text
        too_big = client.post("/v1/predict", content=b" " * 2_000_000)
        assert too_big.status_code == 413
        assert too_big.json()["error"]["code"] == "body_too_large"
        assert client.get("/ready").status_code == 200


def test_no_more_body_than_declared_reaches_the_app(server: Server) -> None:
    """Bytes past ``Content-Length`` are the next request to the server, never body, so the
    size limit can trust a declared length: here they hold a second request, answered on
    its own."""
    host, port = server.url.removeprefix("http://").split(":")
    declared = b'{"samples": {}}'
    follow_up = b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    request = (
        b"POST /v1/predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        + f"Content-Length: {len(declared)}\r\n\r\n".encode()
        + declared
        + follow_up
    )
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        sock.sendall(request)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 422 Unprocessable Entity"), answer[:300]
    assert b'"code":"empty_samples"' in answer
    assert answer.count(b"HTTP/1.1 200 OK") == 1 and answer.endswith(b'{"status":"ok"}')


def test_a_large_sparse_request_is_streamed_whole(server: Server, service_model_dir: Path) -> None:
    """2,500 samples of one model gene each (min_coverage 0): more than one chunk of
    ``NKP_ANSWER_CHUNK_SAMPLES``, answered 200 with every sample over a real socket."""
    genes = list(NKResistanceModel.load(service_model_dir).feature_builder.genes_in_)
    samples = {f"S{i}": {genes[i % len(genes)]: 1 + i % 97} for i in range(2_500)}
    with httpx.Client(base_url=server.url, timeout=60) as client:
        response = client.post("/v1/predict", json={"samples": samples, "min_coverage": 0})
        assert response.status_code == 200, response.text[:300]
        assert response.headers.get("transfer-encoding") == "chunked"
        answer = response.json()
        assert answer["n_samples"] == 2_500
        assert [p["sample_id"] for p in answer["predictions"]] == list(samples)
        assert answer["harmonization"]["n_missing_model_genes"] == 0
        assert client.get("/health").json() == {"status": "ok"}


def test_concurrent_requests_during_reloads_never_fail(
    server: Server, service_cohort: Cohort, service_model_dir: Path, service_model_dir_b: Path
) -> None:
    frame = service_cohort.counts.iloc[:3]
    body = body_of(frame)
    expected = {
        str(service_model_dir): expected_probabilities(service_model_dir, frame),
        str(service_model_dir_b): expected_probabilities(service_model_dir_b, frame),
    }

    def worker(_: int) -> list[tuple[int, str, list[float]]]:
        answers = []
        with httpx.Client(base_url=server.url, timeout=30) as client:
            for _ in range(25):
                response = client.post("/v1/predict", json=body)
                payload = response.json() if response.status_code == 200 else {}
                answers.append(
                    (
                        response.status_code,
                        payload.get("model", {}).get("uri", ""),
                        [p["probability"] for p in payload.get("predictions", [])],
                    )
                )
        return answers

    reloads = []
    with ThreadPoolExecutor(max_workers=8) as pool:
        futures = [pool.submit(worker, i) for i in range(8)]
        with httpx.Client(base_url=server.url, timeout=60) as admin:
            while len(reloads) < 3 or not all(f.done() for f in futures):
                target = service_model_dir_b if len(reloads) % 2 == 0 else service_model_dir
                reloads.append(
                    admin.post(
                        "/v1/admin/reload",
                        json={"model_uri": str(target)},
                        headers={"X-API-Key": ADMIN_KEY},
                    )
                )
        answers = [answer for future in futures for answer in future.result()]

    assert {r.status_code for r in reloads} == {200}, [r.text for r in reloads]
    assert len(answers) == 8 * 25
    failures = [a for a in answers if a[0] != 200]
    assert failures == []
    assert {uri for _, uri, _ in answers} == set(expected)  # both models answered
    for _, uri, probabilities in answers:  # each answer is wholly one model's
        np.testing.assert_allclose(probabilities, expected[uri])


def test_missing_model_makes_uvicorn_exit_non_zero(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-model"
    server = start_uvicorn(str(missing), tmp_path / "failed.log")
    try:
        code = server.process.wait(timeout=START_TIMEOUT)
    except subprocess.TimeoutExpired:
        server.process.kill()
        pytest.fail(f"uvicorn kept running without a model:\n{server.output()}")
    output = server.output()
    assert code != 0, output
    assert "cannot start the service" in output
    assert str(missing) in output


def test_several_workers_answer_without_nagle_stalls(
    service_model_dir: Path, tmp_path: Path
) -> None:
    """With workers > 1 uvicorn shares a socket on which asyncio leaves Nagle's algorithm on;
    ``serve`` switches it off. Otherwise every answer waits ~40 ms for a delayed ACK."""
    log = tmp_path / "workers.log"
    port = free_port()
    code = (
        "import sys; from service.server import serve; "
        "serve(sys.argv[1], '127.0.0.1', int(sys.argv[2]), 2, log_level='warning')"
    )
    server = launch([sys.executable, "-c", code, str(service_model_dir), str(port)], port, log, {})
    try:
        wait_ready(server)
        with httpx.Client(base_url=server.url, timeout=30) as client:
            body = {"samples": {"S1": {"MICA": 5.0, "HLA-E": 9.0}}, "min_coverage": 0}
            assert client.post("/v1/predict", json=body).status_code == 200
            times = []
            for _ in range(15):
                started = time.perf_counter()
                assert client.post("/v1/predict", json=body).status_code == 200
                times.append(time.perf_counter() - started)
        assert sorted(times)[len(times) // 2] < 0.03, times  # 40+ ms each with the stall
    finally:
        assert stop(server) == 0, server.output()
