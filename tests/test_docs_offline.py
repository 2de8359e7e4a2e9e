"""``/docs`` renders Swagger UI in headless Chromium with nothing fetched beyond 127.0.0.1.

A real uvicorn serves the service; Chromium opens ``/docs`` and the test waits until Swagger
UI has drawn the operation list from ``/openapi.json``. Every request the page made must go
to the service itself: the assets come from the installed ``fastapi-offline`` package, not a
CDN (the page used to stay blank without internet).
"""

from __future__ import annotations

import base64
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from browser import DevTools, chromium_binary, console_errors
from http_servers import Server, start_uvicorn, stop, wait_ready

pytestmark = pytest.mark.integration  # a real uvicorn and a real Chromium

# Polls until Swagger UI drew its operations (or 20 s pass); returns what the page shows.
PROBE = """
(async () => {
  for (let i = 0; i < 200; i++) {
    if (document.querySelectorAll(".opblock").length > 0) { break; }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  const title = document.querySelector(".information-container .title");
  return {
    operations: Array.from(document.querySelectorAll(".opblock-summary-path")).map(
      (element) => element.getAttribute("data-path") || element.textContent.trim()),
    title: title ? title.textContent : null,
    ui: typeof window.SwaggerUIBundle,
  };
})()
"""


@pytest.fixture
def server(service_model_dir: Path, tmp_path: Path) -> Iterator[Server]:
    running = start_uvicorn(str(service_model_dir), tmp_path / "uvicorn.log", NKP_API_KEY="k")
    try:
        wait_ready(running)
        yield running
    finally:
        stop(running)


def test_docs_render_offline_in_headless_chromium(server: Server, tmp_path: Path) -> None:
    binary = chromium_binary()
    if binary is None:
        pytest.skip("no Chromium binary on PATH (install Debian's `chromium` to run this test)")
    if shutil.which("bash") is None:
        pytest.skip("bash is needed to hand the DevTools pipe to Chromium")
    browser = DevTools(binary, tmp_path / "profile", tmp_path / "chromium.log")
    try:
        target = browser.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = browser.send("Target.attachToTarget", {"targetId": target, "flatten": True})[
            "sessionId"
        ]
        for domain in ("Page", "Runtime", "Log", "Network"):
            browser.send(f"{domain}.enable", session=session)
        browser.send("Page.navigate", {"url": f"{server.url}/docs"}, session)
        browser.wait_for("Page.loadEventFired")
        state = browser.send(
            "Runtime.evaluate",
            {"expression": PROBE, "awaitPromise": True, "returnByValue": True},
            session,
            timeout=60.0,
        )["result"]["value"]
        shot = browser.send("Page.captureScreenshot", {"format": "png"}, session)
    finally:
        browser.close()

    assert state["ui"] == "function", state  # the bundle's script ran
    assert state["title"] and "nkpredict" in state["title"], state
    assert {"/v1/predict", "/v1/explain", "/health"} <= set(state["operations"]), state
    assert console_errors(browser.events) == []
    requested = [
        e["params"]["request"]["url"]
        for e in browser.events
        if e.get("method") == "Network.requestWillBeSent"
    ]
    assert f"{server.url}/openapi.json" in requested, requested
    assert any(url.endswith("/docs/assets/swagger-ui-bundle.js") for url in requested), requested
    assert all(url.startswith((f"{server.url}/", "data:")) for url in requested), requested
    (tmp_path / "docs.png").write_bytes(base64.b64decode(shot["data"]))
    assert (tmp_path / "docs.png").stat().st_size > 10_000
