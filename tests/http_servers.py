"""Real server processes for the tests: our service under uvicorn, and ``mlflow server``.

Shared by ``test_service_uvicorn.py``, ``test_faults.py``, ``test_load.py`` and
``test_fuzz.py`` (imported as a plain module: pytest puts ``tests/`` on ``sys.path``).
Every process starts in its own process group so that stopping it also stops its workers.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

REPO = Path(__file__).resolve().parents[1]
START_TIMEOUT = 90.0


def free_port() -> int:
    """A loopback TCP port with nothing listening on it right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Server:
    """A started process, the URL it serves and the file its output goes to."""

    process: subprocess.Popen[bytes]
    url: str
    log: Path

    def output(self) -> str:
        """Everything the process wrote so far."""
        return self.log.read_text(errors="replace")


def launch(command: list[str], port: int, log: Path, env: dict[str, str]) -> Server:
    """Start ``command`` without the caller's ``NKP_*`` variables, plus ``env``."""
    environment = {key: value for key, value in os.environ.items() if not key.startswith("NKP_")}
    environment.update({"NKP_MODEL_THREADS": "1", **env})
    with log.open("wb") as sink:
        process = subprocess.Popen(
            command,
            cwd=REPO,
            env=environment,
            stdout=sink,
            stderr=sink,
            start_new_session=True,
        )
    return Server(process, f"http://127.0.0.1:{port}", log)


def start_uvicorn(model_uri: str, log: Path, **env: str) -> Server:
    """``python -m uvicorn --factory service.app:create_app`` on a free loopback port."""
    port = free_port()
    command = [
        sys.executable, "-m", "uvicorn", "service.app:create_app", "--factory",
        "--host", "127.0.0.1", "--port", str(port), "--lifespan", "on", "--no-access-log",
    ]  # fmt: skip
    return launch(command, port, log, {"NKP_MODEL_URI": model_uri, **env})


def start_serve(model_uri: str, log: Path, **env: str) -> Server:
    """``service.server.serve`` (what ``nkpredict serve`` runs) on a free loopback port."""
    port = free_port()
    code = (
        "import sys; from service.server import serve; "
        "serve(sys.argv[1], '127.0.0.1', int(sys.argv[2]), 1, log_level='warning')"
    )
    return launch([sys.executable, "-c", code, model_uri, str(port)], port, log, env)


def start_mlflow_server(workdir: Path, log: Path) -> Server:
    """A real ``mlflow server`` (one worker) with a SQLite store and local artifacts."""
    port = free_port()
    command = [
        sys.executable, "-m", "mlflow", "server",
        "--backend-store-uri", f"sqlite:///{workdir / 'mlflow.db'}",
        "--default-artifact-root", (workdir / "artifacts").resolve().as_uri(),
        "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
    ]  # fmt: skip
    # No job executor (huey consumers): nothing here schedules jobs, and it costs CPU.
    return launch(command, port, log, {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"})


def wait_ready(server: Server, path: str = "/ready", timeout: float = START_TIMEOUT) -> None:
    """Poll ``path`` until it answers 200; fail the test if the process dies or times out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            pytest.fail(f"server exited ({server.process.returncode}):\n{server.output()}")
        try:
            if httpx.get(f"{server.url}{path}", timeout=1.0).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    stop(server)
    pytest.fail(f"server not ready after {timeout} s:\n{server.output()}")


def stop(server: Server, timeout: float = 20.0) -> int:
    """SIGINT the process group; SIGKILL it (and fail) if it does not stop in time."""
    if server.process.poll() is None:
        os.killpg(server.process.pid, signal.SIGINT)
        try:
            server.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(server.process.pid, signal.SIGKILL)
            server.process.wait()
            pytest.fail(f"server did not stop on SIGINT:\n{server.output()}")
    return int(server.process.returncode)


def rss_mib(pid: int) -> float:
    """Resident memory of process ``pid`` in MiB (Linux ``/proc``)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS line for process {pid}")


@contextmanager
def serving(model_uri: str, log: Path, **env: str) -> Iterator[Server]:
    """A ready ``nkpredict serve`` process; on exit it must stop cleanly, with no traceback."""
    running = start_serve(model_uri, log, **env)
    try:
        wait_ready(running)
        yield running
    finally:
        code = stop(running)
    assert code == 0, running.output()
    assert "Traceback" not in running.output(), running.output()
