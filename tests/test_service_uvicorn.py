"""The service in a real uvicorn process: start-up, HTTP answers, reloads under load, shutdown.

The main server runs through ``service.server.serve`` (the ``nkpredict serve`` path); the
failed start-up runs ``python -m uvicorn --factory service.app:create_app``.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import numpy as np
import pandas as pd
import pytest

from nkpredict.model import NKResistanceModel

if TYPE_CHECKING:
    from nkpredict.simulate import Cohort

REPO = Path(__file__).resolve().parents[1]
ADMIN_KEY = "uvicorn-admin-key"
START_TIMEOUT = 60.0


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Server:
    process: subprocess.Popen[bytes]
    url: str
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace")


def _launch(command: list[str], port: int, log: Path, env: dict[str, str]) -> Server:
    environment = {key: value for key, value in os.environ.items() if not key.startswith("NKP_")}
    environment.update({"NKP_MODEL_THREADS": "1", **env})
    with log.open("wb") as sink:
        process = subprocess.Popen(command, cwd=REPO, env=environment, stdout=sink, stderr=sink)
    return Server(process, f"http://127.0.0.1:{port}", log)


def start_uvicorn(model_uri: str, log: Path, **env: str) -> Server:
    """``python -m uvicorn --factory service.app:create_app`` on a free loopback port."""
    port = free_port()
    command = [
        sys.executable,
        "-m",
        "uvicorn",
        "service.app:create_app",
        "--factory",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--lifespan",
        "on",
        "--no-access-log",
    ]
    return _launch(command, port, log, {"NKP_MODEL_URI": model_uri, **env})


def start_serve(model_uri: str, log: Path, **env: str) -> Server:
    """``service.server.serve`` (what ``nkpredict serve`` runs) on a free loopback port."""
    port = free_port()
    code = (
        "import sys; from service.server import serve; "
        "serve(sys.argv[1], '127.0.0.1', int(sys.argv[2]), 1, log_level='warning')"
    )
    return _launch([sys.executable, "-c", code, model_uri, str(port)], port, log, env)


def wait_ready(server: Server) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            pytest.fail(f"uvicorn exited ({server.process.returncode}):\n{server.output()}")
        try:
            if httpx.get(f"{server.url}/ready", timeout=1.0).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    server.process.kill()
    pytest.fail(f"uvicorn not ready after {START_TIMEOUT} s:\n{server.output()}")


def stop(server: Server) -> int:
    if server.process.poll() is None:
        server.process.send_signal(signal.SIGINT)
        try:
            server.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.process.kill()
            server.process.wait()
            pytest.fail(f"uvicorn did not stop on SIGINT:\n{server.output()}")
    return int(server.process.returncode)


@pytest.fixture(scope="module")
def server(service_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    log = tmp_path_factory.mktemp("uvicorn") / "server.log"
    running = start_serve(
        str(service_model_dir), log, NKP_ADMIN_API_KEY=ADMIN_KEY, NKP_MAX_BODY_BYTES="1000000"
    )
    try:
        wait_ready(running)
        yield running
    finally:
        code = stop(running)
    assert code == 0, running.output()
    assert "Traceback" not in running.output(), running.output()


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
