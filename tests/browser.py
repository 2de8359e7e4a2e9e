"""Headless Chromium for the tests: a minimal DevTools client over a pipe, and its checks.

Shared by ``test_report.py`` (the HTML report) and ``test_docs_offline.py`` (``/docs``);
imported as a plain module (pytest puts ``tests/`` on ``sys.path``).
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
    "--remote-debugging-pipe",
)


class DevTools:
    """A minimal Chrome DevTools Protocol client over ``--remote-debugging-pipe``.

    The browser reads NUL-terminated JSON commands from its fd 3 and writes responses and
    events to its fd 4; no websocket library is needed.
    """

    def __init__(self, binary: str, profile: Path, log: Path) -> None:
        command_read, self._commands = os.pipe()
        self._replies, reply_write = os.pipe()
        script = f'exec "$0" "$@" 3<&{command_read} 4>&{reply_write}'
        args = [binary, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "about:blank"]
        with log.open("wb") as sink:
            self.process = subprocess.Popen(
                ["bash", "-c", script, *args],
                pass_fds=(command_read, reply_write),
                stdin=subprocess.DEVNULL,
                stdout=sink,
                stderr=subprocess.STDOUT,
            )
        os.close(command_read)
        os.close(reply_write)
        self._buffer = b""
        self._last_id = 0
        self.events: list[dict[str, Any]] = []

    def _read_message(self, deadline: float) -> dict[str, Any]:
        while b"\0" not in self._buffer:
            remaining = deadline - time.monotonic()
            ready, _, _ = select.select([self._replies], [], [], max(remaining, 0))
            if not ready:
                raise TimeoutError("no answer from Chromium")
            chunk = os.read(self._replies, 1 << 16)
            if not chunk:
                raise RuntimeError("Chromium closed the DevTools pipe")
            self._buffer += chunk
        message, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(message)

    def send(
        self,
        method: str,
        params: dict[str, Any] | None = None,
        session: str | None = None,
        timeout: float = 30.0,
    ) -> dict[str, Any]:
        self._last_id += 1
        message: dict[str, Any] = {"id": self._last_id, "method": method, "params": params or {}}
        if session is not None:
            message["sessionId"] = session
        os.write(self._commands, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while True:
            reply = self._read_message(deadline)
            if reply.get("id") != self._last_id:
                self.events.append(reply)
                continue
            if "error" in reply:
                raise RuntimeError(f"{method} failed: {reply['error']}")
            return reply.get("result", {})

    def wait_for(self, event: str, timeout: float = 30.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        seen = 0
        while True:
            for message in self.events[seen:]:
                if message.get("method") == event:
                    return message
            seen = len(self.events)
            self.events.append(self._read_message(deadline))

    def close(self) -> None:
        with contextlib.suppress(RuntimeError, TimeoutError, OSError):
            self.send("Browser.close", timeout=5.0)
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        os.close(self._commands)
        os.close(self._replies)


def chromium_binary() -> str | None:
    return next((path for name in CHROMIUM_NAMES if (path := shutil.which(name))), None)


def console_errors(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Uncaught exceptions, console.error/assert calls and browser error log entries."""
    errors = []
    for event in events:
        method, params = event.get("method"), event.get("params", {})
        thrown = method == "Runtime.exceptionThrown"
        logged = method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert")
        if thrown or logged:
            errors.append(params)
        elif method == "Log.entryAdded" and params["entry"]["level"] == "error":
            errors.append(params["entry"])
    return errors
