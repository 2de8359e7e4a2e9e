"""Hostile traffic on real sockets to a real ``nkpredict serve`` (issue 15, items 1 and 10).

One server process for the module, with small limits so that every case is quick: a body
limit of 50 kB, a header timeout of 1 s, a body timeout of 1 s and 40 connections.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from http_servers import Server, serving

pytestmark = pytest.mark.integration  # a real uvicorn process

MAX_BODY = 50_000
TIMEOUT_S = 1.0
MAX_CONNECTIONS = 40


@pytest.fixture(scope="module")
def server(service_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    log = tmp_path_factory.mktemp("hostile-http") / "serve.log"
    env = {
        "NKP_MAX_BODY_BYTES": str(MAX_BODY),
        "NKP_HEADER_TIMEOUT": str(TIMEOUT_S),
        "NKP_BODY_TIMEOUT": str(TIMEOUT_S),
        "NKP_TIMEOUT_KEEP_ALIVE": "2",
        "NKP_MAX_CONNECTIONS": str(MAX_CONNECTIONS),
    }
    with serving(str(service_model_dir), log, **env) as running:
        yield running


def _address(server: Server) -> tuple[str, int]:
    host, port = server.url.removeprefix("http://").split(":")
    return host, int(port)


def _connect(server: Server, timeout: float = 10.0) -> socket.socket:
    sock = socket.create_connection(_address(server), timeout=timeout)
    sock.settimeout(timeout)
    return sock


def _read_all(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection (or the timeout)."""
    chunks = []
    try:
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    except (TimeoutError, ConnectionResetError):
        pass
    return b"".join(chunks)


def _responses(raw: bytes) -> list[tuple[int, dict[str, object]]]:
    """(status, JSON body) of each HTTP response in ``raw`` (bodies with Content-Length)."""
    found = []
    while raw.startswith(b"HTTP/1.1 "):
        head, _, rest = raw.partition(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1])
        headers = dict(line.split(b": ", 1) for line in head.split(b"\r\n")[1:] if b": " in line)
        length = int(headers.get(b"content-length", b"0"))
        body, raw = rest[:length], rest[length:]
        found.append((status, json.loads(body) if body else {}))
    return found


def _health_ok(server: Server) -> bool:
    with _connect(server) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        return _read_all(sock).startswith(b"HTTP/1.1 200")


def test_content_length_with_chunked_body_is_refused_and_the_pipeline_ends(
    server: Server,
) -> None:
    """Content-Length: 10 plus a chunked body four times the limit, then a pipelined request:
    one 400, nothing parsed, the connection closed (no second answer)."""
    chunk = b"x" * 100_000
    body = b"".join(b"%x\r\n%s\r\n" % (len(chunk), chunk) for _ in range(2)) + b"0\r\n\r\n"
    request = (
        b"POST /v1/predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: 10\r\nTransfer-Encoding: chunked\r\n\r\n" + body
    )
    pipelined = b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n"
    with _connect(server) as sock:
        sock.sendall(request + pipelined)
        answers = _responses(_read_all(sock))
    assert [status for status, _ in answers] == [400]
    assert answers[0][1]["error"]["code"] == "conflicting_length"  # type: ignore[index]


def test_body_limit_holds_on_the_bytes_received(server: Server) -> None:
    """A chunked body (no length declared) past the limit is cut with 413, not parsed."""
    chunk = b"{" + b" " * 30_000
    body = b"".join(b"%x\r\n%s\r\n" % (len(chunk), chunk) for _ in range(3)) + b"0\r\n\r\n"
    request = (
        b"POST /v1/predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n" + body
    )
    with _connect(server) as sock:
        sock.sendall(request)
        answers = _responses(_read_all(sock))
    assert answers[0][0] == 413
    assert answers[0][1]["error"]["code"] == "body_too_large"  # type: ignore[index]


def test_slowloris_partial_header_gets_408_and_is_closed(server: Server) -> None:
    """Half a request head, one more byte now and then: closed within the header timeout
    (a byte every 0.3 s does not extend it)."""
    with _connect(server) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n")
        started = time.monotonic()
        try:
            for _ in range(20):
                sock.sendall(b"X")
                time.sleep(0.3)
        except (BrokenPipeError, ConnectionResetError):
            pass
        raw = _read_all(sock)
    assert time.monotonic() - started < 6 * TIMEOUT_S
    answers = _responses(raw)
    assert [status for status, _ in answers] == [408]
    assert answers[0][1]["error"]["code"] == "request_timeout"  # type: ignore[index]


def test_a_stalled_body_gets_408_and_is_closed(server: Server) -> None:
    with _connect(server) as sock:
        sock.sendall(
            b"POST /v1/predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b'Content-Length: 1000\r\n\r\n{"samples":'
        )
        started = time.monotonic()
        raw = _read_all(sock)
    assert time.monotonic() - started < 5 * TIMEOUT_S
    assert raw.startswith(b"HTTP/1.1 408")


def test_two_hundred_idle_sockets(server: Server) -> None:
    """200 connections that send nothing: beyond the limit each gets 503 too_many_connections
    at once; the others are closed after the header timeout; the service answers after."""
    sockets = []
    try:
        for _ in range(200):
            sockets.append(_connect(server, timeout=5 * TIMEOUT_S))
        started = time.monotonic()
        refused = accepted_then_closed = 0
        for sock in sockets:
            raw = _read_all(sock)
            if raw.startswith(b"HTTP/1.1 503"):
                assert _responses(raw)[0][1]["error"]["code"] == "too_many_connections"  # type: ignore[index]
                refused += 1
            elif raw == b"":
                accepted_then_closed += 1
        elapsed = time.monotonic() - started
    finally:
        for sock in sockets:
            sock.close()
    assert refused >= 200 - MAX_CONNECTIONS - 5  # a few may have been closed already
    assert accepted_then_closed + refused == 200
    assert elapsed < 10 * TIMEOUT_S
    assert _health_ok(server)


def test_an_idle_keep_alive_connection_is_closed(server: Server) -> None:
    with _connect(server) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        started = time.monotonic()
        raw = _read_all(sock)
    assert raw.startswith(b"HTTP/1.1 200")
    assert time.monotonic() - started < 5 * TIMEOUT_S
