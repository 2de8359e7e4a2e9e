"""Tests for the HTML report: content, self-containment, and a real headless Chromium load."""

from __future__ import annotations

import base64
import io
import json
import re
import shutil
from pathlib import Path

import pytest
from browser import DevTools, chromium_binary, console_errors
from PIL import Image

from nkpredict.model.fitted import NKResistanceModel
from nkpredict.report.html import build_report, write_report
from nkpredict.simulate.cohort import Cohort, simulate_cohort
from nkpredict.simulate.config import SimulationConfig

pytestmark = pytest.mark.integration  # whole reports (explanations, figures, Chromium)

SECTION_IDS = (
    "model-card",
    "global-importance",
    "beeswarm",
    "dependence",
    "calibration",
    "samples",
)
MAX_SAMPLES = 12
TITLE = "<script>alert('x')</script> cohort & co"
METRICS = {
    "cv_roc_auc": 0.83,
    "cv_roc_auc_ci_low": 0.79,
    "cv_roc_auc_ci_high": 0.87,
    "cv_roc_auc_fold_sd": 0.03,
    "cv_brier": 0.16,
    "cv_brier_ci_low": 0.14,
    "cv_brier_ci_high": 0.18,
    "baseline_linear_cv_roc_auc": 0.80,
    "baseline_linear_cv_roc_auc_ci_low": 0.75,
    "baseline_linear_cv_roc_auc_ci_high": 0.85,
    "oracle_roc_auc": 0.91,
    "oracle_brier": 0.12,
    "cv_within_lineage_roc_auc": 0.71,
    "cv_within_lineage_roc_auc_ci_low": 0.62,
    "cv_within_lineage_roc_auc_ci_high": 0.78,
    "lolo_roc_auc": 0.66,
    "lolo_roc_auc_ci_low": 0.58,
    "lolo_roc_auc_ci_high": 0.74,
    "cv_roc_auc_minus_best_baseline": 0.03,
    "cv_roc_auc_minus_best_baseline_ci_low": -0.01,
    "cv_roc_auc_minus_best_baseline_ci_high": 0.07,
}
DATA = {"data_sha256": "0f1e2d3c4b5a", "n_samples": 300, "n_genes": 600}
PNG_URI = re.compile(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"')
VIEWPORT = {"width": 1280, "height": 1600, "deviceScaleFactor": 1, "mobile": False}


@pytest.fixture(scope="module")
def cohort() -> Cohort:
    return simulate_cohort(SimulationConfig(n_samples=300, n_genes=600, seed=5))


@pytest.fixture(scope="module")
def model(cohort: Cohort) -> NKResistanceModel:
    fitted = NKResistanceModel(booster={"n_estimators": 150}).fit(
        cohort.counts, cohort.labels["resistant"]
    )
    fitted.metadata_ = {
        "metrics": METRICS,
        "data": DATA,
        "model_name": "nk-demo",
        "best_baseline": "linear",
    }
    return fitted


@pytest.fixture(scope="module")
def html(model: NKResistanceModel, cohort: Cohort) -> str:
    prepared = model.prepare(cohort.counts)
    return build_report(
        model,
        prepared,
        labels=cohort.labels,
        label_column="resistant",
        max_samples=MAX_SAMPLES,
        title=TITLE,
    )


@pytest.fixture(scope="module")
def report_file(html: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_report(html, tmp_path_factory.mktemp("report") / "report.html")


def section(html: str, section_id: str) -> str:
    match = re.search(rf'<section id="{section_id}">(.*?)</section>', html, re.DOTALL)
    assert match, f"no section {section_id}"
    return match.group(1)


# --------------------------------------------------------------------------- content


def test_every_section_is_present_with_embedded_images(html: str) -> None:
    for section_id in SECTION_IDS:
        assert html.count(f'id="{section_id}"') == 1, section_id
    images = PNG_URI.findall(html)
    assert len(images) >= 6  # 3 importance plots, beeswarm, dependence, calibration
    for encoded in images:
        picture = Image.open(io.BytesIO(base64.b64decode(encoded)))
        assert picture.format == "PNG" and min(picture.size) > 100
    for section_id in ("global-importance", "beeswarm", "dependence", "calibration"):
        assert PNG_URI.search(section(html, section_id)), section_id


def test_report_loads_nothing_from_outside(html: str) -> None:
    assert "http://" not in html and "https://" not in html
    assert "@import" not in html and "url(" not in html
    for attribute in re.findall(r'(?:src|href)="([^"]*)"', html):
        assert attribute.startswith(("data:", "#")), attribute
    assert "default-src 'none'" in html  # the page may not fetch anything either


def test_user_text_is_escaped(html: str) -> None:
    assert "<script>alert('x')</script>" not in html
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; cohort &amp; co" in html


def test_model_card(html: str, model: NKResistanceModel) -> None:
    card = section(html, "model-card")
    assert model.label_definition_.describe() in card
    assert model.feature_builder.catalog_version_ in card
    assert "nk-demo" in card and DATA["data_sha256"] in card
    assert "0.830 [0.790, 0.870]" in card  # model, with its interval
    assert "0.800 [0.750, 0.850]" in card  # a baseline
    assert "Model vs best achievable roc_auc: 0.830 vs 0.910 (gap 0.080)" in card
    assert "Model vs best achievable brier: 0.160 vs 0.120 (gap 0.040)" in card


def test_model_card_headline_puts_within_lineage_and_lolo_next_to_pooled(html: str) -> None:
    card = section(html, "model-card")
    headline = card[card.index('id="evaluation-headline"') : card.index('id="evaluation-table"')]
    for name, shown in (
        ("cv_roc_auc", "[0.790, 0.870]"),
        ("cv_within_lineage_roc_auc", "[0.620, 0.780]"),
        ("lolo_roc_auc", "[0.580, 0.740]"),
        ("cv_roc_auc_minus_best_baseline", "[-0.010, 0.070]"),
    ):
        assert name in headline and shown in headline, name
    assert headline.index("cv_roc_auc<") < headline.index("cv_within_lineage_roc_auc")
    assert "best baseline (linear)" in card


def test_global_importance_names_axes_in_words(html: str) -> None:
    part = section(html, "global-importance")
    assert "NKp30 / B7-H6" in part and "KIR / HLA class I" in part
    assert "higher -&gt; more resistant" in part and "higher -&gt; more sensitive" in part


def test_samples_section_shows_the_most_resistant_predictions(
    html: str, model: NKResistanceModel, cohort: Cohort
) -> None:
    table = model.predict_table(model.prepare(cohort.counts))
    resistant = table[table["call"] == "resistant"].sort_values("probability", ascending=False)
    expected = resistant["sample_id"].head(MAX_SAMPLES).tolist()
    part = section(html, "samples")
    shown = re.findall(r'<div class="sample" id="sample-([^"]+)"', part)
    assert shown == expected
    cards = part.split('<div class="sample"')[1:]
    for card in cards:
        assert "base value" in card and "model output" in card
        assert card.count('class="wf-bar ') >= 5
        assert re.search(r"axis [+-]\d\.\d\d log-odds toward resistant", card)


def test_calibration_needs_labels(model: NKResistanceModel, cohort: Cohort, html: str) -> None:
    labelled = section(html, "calibration")
    n_resistant = int(cohort.labels["resistant"].sum())
    assert f"300 labelled samples ({n_resistant} resistant)" in labelled and "roc_auc" in labelled
    bare = build_report(model, model.prepare(cohort.counts.iloc[:30]), max_samples=1)
    part = section(bare, "calibration")
    assert "No labels given" in part and "<img" not in part
    assert len(re.findall(r'<div class="sample" ', bare)) <= 1
    wrong = build_report(
        model,
        model.prepare(cohort.counts.iloc[:30]),
        labels=cohort.labels,
        label_column="no_such_column",
        max_samples=0,
    )
    assert "no column" in section(wrong, "calibration")


def test_write_report_is_atomic(html: str, report_file: Path) -> None:
    assert report_file.read_text(encoding="utf-8") == html
    assert [p.name for p in report_file.parent.iterdir()] == ["report.html"]


# --------------------------------------------------------------------------- browser


PROBE = """
(async () => {
  await Promise.all(Array.from(document.images).map((img) => img.decode().catch(() => null)));
  const size = (id) => {
    const element = document.getElementById(id);
    if (!element) { return null; }
    const box = element.getBoundingClientRect();
    return [box.width, box.height];
  };
  const filter = document.getElementById("sample-filter");
  const cards = Array.from(document.querySelectorAll(".sample"));
  filter.value = cards[0].dataset.sample;
  filter.dispatchEvent(new Event("input"));
  const visible = cards.filter((card) => !card.hidden).length;
  filter.value = "";
  filter.dispatchEvent(new Event("input"));
  return {
    title: document.title,
    sections: Object.fromEntries(IDS.map((id) => [id, size(id)])),
    images: Array.from(document.images).map((img) => [img.naturalWidth, img.naturalHeight]),
    cards: cards.length,
    filtered: visible,
    unfiltered: cards.filter((card) => !card.hidden).length,
  };
})()
"""


def test_report_renders_in_headless_chromium(report_file: Path, html: str, tmp_path: Path) -> None:
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
        browser.send("Emulation.setDeviceMetricsOverride", VIEWPORT, session)
        browser.send("Page.navigate", {"url": report_file.as_uri()}, session)
        browser.wait_for("Page.loadEventFired")
        probe = PROBE.replace("IDS", json.dumps(list(SECTION_IDS)))
        state = browser.send(
            "Runtime.evaluate",
            {"expression": probe, "awaitPromise": True, "returnByValue": True},
            session,
        )["result"]["value"]
        shot = browser.send("Page.captureScreenshot", {"format": "png"}, session)
    finally:
        browser.close()

    assert state["title"] == TITLE
    for section_id, size in state["sections"].items():
        assert size is not None and size[0] > 0 and size[1] > 0, section_id
    assert len(state["images"]) == len(PNG_URI.findall(html))
    assert all(width > 100 and height > 100 for width, height in state["images"])
    assert state["cards"] == MAX_SAMPLES
    assert (state["filtered"], state["unfiltered"]) == (1, MAX_SAMPLES)  # the script works
    assert console_errors(browser.events) == []
    requested = [
        e["params"]["request"]["url"]
        for e in browser.events
        if e.get("method") == "Network.requestWillBeSent"
    ]
    assert requested and all(url.startswith(("file:", "data:")) for url in requested), requested

    screenshot = tmp_path / "report.png"
    screenshot.write_bytes(base64.b64decode(shot["data"]))
    picture = Image.open(screenshot)
    assert picture.size == (VIEWPORT["width"], VIEWPORT["height"])
    assert screenshot.stat().st_size > 20_000
    assert len(picture.convert("RGB").getcolors(maxcolors=1 << 16) or range(1 << 16)) > 50
