"""Shared pieces of the HTTP benchmarks: server processes, wrk runs, memory readings.

Used by ``service_load.py`` (throughput and latency side by side), ``soak.py`` (sustained load
and memory) and ``fuzz_service.py``; not part of the installed package.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
WRK_SCRIPT = Path(__file__).resolve().parent / "wrk" / "post.lua"
START_TIMEOUT_S = 180.0


def free_port() -> int:
    """A TCP port on the loopback interface that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Server:
    """A server process started in its own process group (so it is stopped with its workers)."""

    name: str
    process: subprocess.Popen[bytes]
    url: str
    log: Path

    def output(self) -> str:
        """Everything the server wrote so far."""
        return self.log.read_text(errors="replace")

    def pid(self) -> int:
        """Process id of the server (the uvicorn process for our service)."""
        return int(self.process.pid)


def start_server(
    name: str,
    command: Sequence[str],
    port: int,
    log_dir: Path,
    env: Mapping[str, str] | None = None,
    ready_path: str = "/health",
) -> Server:
    """Start ``command`` (listening on ``port``) and wait until ``ready_path`` answers 200."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith("NKP_")}
    environment.update(env or {})
    log = log_dir / f"{name}.log"
    with log.open("wb") as sink:
        process = subprocess.Popen(
            list(command),
            cwd=REPO,
            env=environment,
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    server = Server(name, process, f"http://127.0.0.1:{port}", log)
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{name} exited ({process.returncode}):\n{server.output()}")
        try:
            with urllib.request.urlopen(server.url + ready_path, timeout=2) as answer:
                if answer.status == 200:
                    return server
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.2)
    stop_server(server)
    raise RuntimeError(f"{name} not ready after {START_TIMEOUT_S:.0f} s:\n{server.output()}")


def stop_server(server: Server, timeout: float = 20.0) -> int:
    """SIGINT the server's process group, SIGKILL it if it does not stop; the exit status."""
    if server.process.poll() is None:
        try:
            os.killpg(server.process.pid, signal.SIGINT)
            server.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(server.process.pid, signal.SIGKILL)
            server.process.wait()
        except ProcessLookupError:
            pass
    return int(server.process.returncode)


def python_command(*args: str) -> list[str]:
    """``python ARGS...`` with this interpreter."""
    return [sys.executable, *args]


def post_json(url: str, body: bytes, headers: Mapping[str, str] | None = None) -> tuple[int, bytes]:
    """One POST with a JSON body; the status and the answer."""
    request = urllib.request.Request(
        url, data=body, headers={"Content-Type": "application/json", **(headers or {})}
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as answer:
            return int(answer.status), answer.read()
    except urllib.error.HTTPError as exc:
        return int(exc.code), exc.read()


@dataclass(frozen=True)
class WrkResult:
    """What one wrk run measured (latencies in milliseconds)."""

    requests: int
    seconds: float
    socket_errors: int
    non2xx: int
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float

    @property
    def rps(self) -> float:
        """Requests per second."""
        return self.requests / self.seconds if self.seconds else 0.0

    @property
    def failures(self) -> int:
        """Socket errors plus answers that were not 2xx."""
        return self.socket_errors + self.non2xx


def require_wrk() -> str:
    """Path of the ``wrk`` binary, or exit with how to install it."""
    path = shutil.which("wrk")
    if path is None:
        sys.exit("wrk is not installed: apt-get install -y wrk (Debian/Ubuntu)")
    return path


def run_wrk(
    url: str,
    body_file: Path | None = None,
    *,
    rotate: Sequence[tuple[str, Path]] = (),
    connections: int = 8,
    threads: int = 1,
    seconds: float = 10.0,
    api_key: str | None = None,
) -> WrkResult:
    """Drive ``url`` with wrk (POST ``body_file``, or rotate over ``(path, file)`` pairs)."""
    env = dict(os.environ)
    if rotate:
        env["BODY_FILES"] = ",".join(f"{path}={file}" for path, file in rotate)
    elif body_file is not None:
        env["BODY_FILE"] = str(body_file)
    if api_key:
        env["API_KEY"] = api_key
    command = [
        require_wrk(),
        f"-t{threads}",
        f"-c{connections}",
        f"-d{max(1, round(seconds))}s",
        "--timeout",
        "30s",
        "-s",
        str(WRK_SCRIPT),
        url,
    ]
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
    line = next((x for x in done.stdout.splitlines() if x.startswith("WRK_RESULT ")), None)
    if line is None:
        raise RuntimeError(f"no result from wrk:\n{done.stdout}\n{done.stderr}")
    data = json.loads(line.removeprefix("WRK_RESULT "))
    return WrkResult(
        requests=int(data["requests"]),
        seconds=data["duration_us"] / 1e6,
        socket_errors=int(data["socket_errors"]),
        non2xx=int(data["non2xx"]),
        p50_ms=data["p50_us"] / 1e3,
        p90_ms=data["p90_us"] / 1e3,
        p99_ms=data["p99_us"] / 1e3,
        max_ms=data["max_us"] / 1e3,
    )


def rss_mib(pid: int) -> float:
    """Resident memory of process ``pid`` in MiB (Linux ``/proc``)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for process {pid}")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time used so far by process ``pid`` and every process of its group.

    Servers are started in their own process group, so this includes their workers (the
    uvicorn process that ``mlflow models serve`` starts, for instance). Linux ``/proc``.
    """
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # the process ended meanwhile
        if int(fields[2]) == pid or int(stat.parent.name) == pid:  # fields[2]: process group
            total += (int(fields[11]) + int(fields[12])) / ticks
    return total
