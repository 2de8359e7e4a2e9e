"""Tests for the HTML report: content, self-containment, and a real headless Chromium load."""

from __future__ import annotations

import base64
import io
import json
import re
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from browser import DevTools, chromium_binary, console_errors
from PIL import Image
from sklearn.metrics import roc_auc_score

from nkpredict.evaluate.baselines import baseline_estimators
from nkpredict.evaluate.cv import (
    MODEL_NAME,
    CVResult,
    cross_validate,
    group_table,
    leave_one_group_out_result,
)
from nkpredict.evaluate.folds import CVConfig, make_folds
from nkpredict.model.fitted import NKResistanceModel
from nkpredict.report import colours
from nkpredict.report.html import build_report, importance_figure, model_card, write_report
from nkpredict.report.names import CALIBRATION_LABELS, metric_label
from nkpredict.report.plots import classification_figure
from nkpredict.report.uncertainty import uncertain_range
from nkpredict.simulate.cohort import Cohort, simulate_cohort
from nkpredict.simulate.config import SimulationConfig
from nkpredict.uncertainty.conformal import ConformalPredictor

pytestmark = pytest.mark.integration  # whole reports (explanations, figures, Chromium)

SECTION_IDS = (
    "how-to-read",
    "model-card",
    "performance",
    "calibration",
    "uncertainty",
    "domain",
    "global-importance",
    "beeswarm",
    "dependence",
    "samples",
    "whatif",
    "methods",
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
    "baseline_lineage_cv_roc_auc": 0.69,
    "baseline_lineage_cv_roc_auc_ci_low": 0.63,
    "baseline_lineage_cv_roc_auc_ci_high": 0.75,
    "baseline_lineage_cv_within_lineage_roc_auc": 0.52,
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


BOOSTER = {"n_estimators": 60, "n_jobs": 1}


@pytest.fixture(scope="module")
def cohort() -> Cohort:
    return simulate_cohort(SimulationConfig(n_samples=300, n_genes=600, seed=5))


@pytest.fixture(scope="module")
def cv_result(cohort: Cohort) -> CVResult:
    """A real 3-fold cross-validation of the model's configuration and two baselines."""
    model = NKResistanceModel(booster=BOOSTER)
    matrix = model.prepare(cohort.counts).matrix
    y, lineages = cohort.labels["resistant"], cohort.labels["lineage"]
    folds = make_folds(y, None, CVConfig(n_splits=3, n_repeats=1), "classification")
    baselines = baseline_estimators("classification", lineages=lineages)
    estimators = {MODEL_NAME: model.core, "linear": baselines["linear"]}
    estimators["lineage"] = baselines["lineage"]
    return cross_validate(estimators, matrix, y, folds, "classification")


@pytest.fixture(scope="module")
def lolo_records(cohort: Cohort) -> list[dict[str, Any]]:
    model = NKResistanceModel(booster=BOOSTER)
    matrix = model.prepare(cohort.counts).matrix
    lineages = cohort.labels["lineage"]
    held_out = leave_one_group_out_result(
        model.core, matrix, cohort.labels["resistant"], lineages, "classification"
    )
    return group_table(held_out, lineages).to_dict(orient="records")


@pytest.fixture(scope="module")
def model(
    cohort: Cohort, cv_result: CVResult, lolo_records: list[dict[str, Any]]
) -> NKResistanceModel:
    lineages = cohort.labels["lineage"]
    fitted = NKResistanceModel(booster=BOOSTER).fit(
        cohort.counts, cohort.labels["resistant"], lineages=lineages
    )
    rows = cv_result.predictions[cv_result.predictions["estimator"] == MODEL_NAME]
    fitted.fit_uncertainty(
        rows["y_pred"].to_numpy(),
        rows["y_true"].to_numpy(),
        lineages.reindex(rows["sample_id"]).to_numpy(),
        samples=rows["sample_id"].to_numpy(),
    )
    fitted.metadata_ = {
        "metrics": METRICS,
        "data": DATA,
        "model_name": "nk-demo",
        "model_version": "7",
        "best_baseline": "linear",
        "cv": {"n_splits": 3, "n_repeats": 1},
        "leave_one_lineage_out": lolo_records,
    }
    return fitted


@pytest.fixture(scope="module")
def html(model: NKResistanceModel, cohort: Cohort) -> str:
    """A report on given samples (no cross-validation result)."""
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
def training_html(model: NKResistanceModel, cohort: Cohort, cv_result: CVResult) -> str:
    """The training report: curves out of fold, per-lineage scores."""
    return build_report(
        model,
        model.prepare(cohort.counts),
        labels=cohort.labels,
        label_column="resistant",
        max_samples=MAX_SAMPLES,
        title=TITLE,
        cv_result=cv_result,
        lineages=cohort.labels["lineage"],
    )


@pytest.fixture(scope="module")
def report_file(training_html: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_report(training_html, tmp_path_factory.mktemp("report") / "report.html")


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


def visible_text(fragment: str) -> str:
    """The text a reader sees (tags and their attributes removed)."""
    return re.sub(r"<[^>]+>", " ", fragment)


def test_model_card(html: str, model: NKResistanceModel) -> None:
    card = section(html, "model-card")
    assert model.label_definition_.describe() in card
    assert model.feature_builder.catalog_version_ in card
    assert "nk-demo" in card and DATA["data_sha256"] in card
    assert re.search(r"<th>model version</th><td>7</td>", card)
    part = section(html, "performance")
    assert "0.830 [0.790, 0.870]" in part  # model, with its interval
    assert "0.800 [0.750, 0.850]" in part  # a baseline
    assert "Model vs best achievable ROC AUC: 0.830 vs 0.910 (gap 0.080)" in part
    assert "Model vs best achievable Brier score: 0.160 vs 0.120 (gap 0.040)" in part


def test_model_version_says_why_it_is_missing(model: NKResistanceModel) -> None:
    saved = dict(model.metadata_)
    try:
        model.metadata_ = {k: v for k, v in saved.items() if k != "model_version"}
        unknown = model_card(model)["identity"]["model version"]
        model.metadata_ = {k: v for k, v in model.metadata_.items() if k != "model_name"}
        bare = model_card(model)["identity"]["model version"]
    finally:
        model.metadata_ = saved
    assert (unknown, bare) == ("unknown", "not registered")
    assert model_card(model)["identity"]["model version"] == "7"


def test_performance_table_puts_lineage_views_and_baselines_in_one_table(html: str) -> None:
    part = section(html, "performance")
    table = part[part.index('id="performance-table"') : part.index("</table>")]
    rows = re.findall(r"<tr>(.*?)</tr>", table, re.DOTALL)
    labels = [visible_text(r).split("  ")[0].strip() for r in rows[1:]]
    assert labels[0] == "nkpredict"
    assert "baseline: lineage alone" in labels
    assert "best baseline: linear model on the NK features" in labels
    assert any(label.startswith("nkpredict minus best baseline") for label in labels)
    model_row = rows[1]
    for key, shown in (
        ("cv_roc_auc", "0.830 [0.790, 0.870]"),
        ("cv_within_lineage_roc_auc", "0.710 [0.620, 0.780]"),
        ("lolo_roc_auc", "0.660 [0.580, 0.740]"),
    ):
        assert re.search(rf'data-metric="{key}">{re.escape(shown)}<', model_row), key
    assert 'data-metric="baseline_lineage_cv_within_lineage_roc_auc">0.520<' in table
    assert 'data-metric="cv_roc_auc_minus_best_baseline">0.030 [-0.010, 0.070]<' in table
    assert "leave one lineage out" in table and "within lineage (cross-validated)" in table
    sentence = re.search(r'<p id="comparison"><strong>(.*?)</strong>', part).group(1)
    assert "not clearly different from its best baseline (linear model on the NK features)" in (
        sentence
    )
    assert "ROC AUC 0.830 against 0.800" in sentence


def test_metric_names_are_readable(html: str) -> None:
    text = visible_text(html)
    for key in ("cv_roc_auc", "lolo_roc_auc", "within_lineage", "baseline_linear", "roc_auc"):
        assert key not in text, key
    assert metric_label("cv_roc_auc") == "ROC AUC (cross-validated)"
    assert metric_label("lolo_roc_auc_ci_low") == (
        "ROC AUC, leave-one-lineage-out, lower end of the 95% interval"
    )
    assert metric_label("cv_roc_auc_minus_best_baseline", "linear") == (
        "ROC AUC: nkpredict minus best baseline (linear model on the NK features)"
    )
    assert metric_label("baseline_xgb_allgenes_cv_brier") == (
        "Brier score, baseline: XGBoost on all genes (cross-validated)"
    )


def test_lineage_table_has_within_and_held_out_scores(
    training_html: str, cv_result: CVResult, cohort: Cohort, lolo_records: list[dict[str, Any]]
) -> None:
    part = section(training_html, "performance")
    table = part[part.index('id="lineage-table"') :]
    table = table[: table.index("</table>")]
    within = group_table(cv_result, cohort.labels["lineage"]).set_index("group")["roc_auc"]
    held_out = {r["group"]: r["roc_auc"] for r in lolo_records}
    for lineage in cohort.labels["lineage"].unique():
        row = re.search(rf"<tr><td>{re.escape(lineage)}</td>(.*?)</tr>", table).group(1)
        cells = re.findall(r">([^<]*)</td>", row)
        assert cells[-2] == f"{within[lineage]:.3f}" and cells[-1] == f"{held_out[lineage]:.3f}"
    assert "all lineages (pooled)" in table


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


def test_curves_are_out_of_fold_in_the_training_report(
    training_html: str, html: str, cv_result: CVResult
) -> None:
    part = section(training_html, "calibration")
    assert "out of fold" in part and "not out of fold" not in part
    assert PNG_URI.search(part)
    pooled = cv_result.pooled(MODEL_NAME)
    auc = roc_auc_score(pooled["y_true"], pooled["y_pred"])
    assert re.search(rf"<td>ROC AUC</td><td class=\"num\">{auc:.3f}</td>", part)
    assert "training report: performance is out of fold" in training_html
    on_cohort = section(html, "calibration")
    assert "this cohort, not out of fold" in on_cohort and "external check" in on_cohort
    assert "report on given samples" in html


def test_calibration_needs_labels(model: NKResistanceModel, cohort: Cohort, html: str) -> None:
    labelled = section(html, "calibration")
    n_resistant = int(cohort.labels["resistant"].sum())
    assert f"300 labelled samples ({n_resistant} resistant)" in labelled
    assert "ROC AUC" in labelled and "calibrated probabilities" in labelled
    bare = build_report(model, model.prepare(cohort.counts.iloc[:30]), max_samples=1)
    part = section(bare, "calibration")
    assert "No labels given" in part and "<img" not in part
    assert len(re.findall(r'<div class="sample" ', bare)) <= 1
    assert "observed:" not in section(bare, "samples")
    wrong = build_report(
        model,
        model.prepare(cohort.counts.iloc[:30]),
        labels=cohort.labels,
        label_column="no_such_column",
        max_samples=0,
    )
    assert "no column" in section(wrong, "calibration")


def test_sample_cards_show_the_observed_label(html: str, cohort: Cohort) -> None:
    cards = section(html, "samples").split('<div class="sample"')[1:]
    assert cards
    for card in cards:
        sample = re.search(r'data-sample="([^"]+)"', card).group(1)
        truth = "resistant" if cohort.labels.loc[sample, "resistant"] == 1 else "sensitive"
        assert f'<span class="badge observed-{truth}">observed: {truth}</span>' in card
        assert "set: resistant" in card and "calibrated" in card


def test_uncertainty_section(
    training_html: str, html: str, model: NKResistanceModel, cohort: Cohort
) -> None:
    part = section(training_html, "uncertainty")
    described = model.uncertainty.describe()
    method = described["calibration"]["method"]
    assert CALIBRATION_LABELS[method].split(" (")[0] in part
    assert "(chosen)" in part and "level 0.90" in part
    for lineage, bin_ in described["mondrian_bins"].items():
        assert re.search(rf"<tr><td>{re.escape(lineage)}</td><td class=\"num\">{bin_['n']}<", part)
    table = model.predict_table(model.prepare(cohort.counts))
    n_uncertain = int((table["call"] == "uncertain").sum())
    assert f"{n_uncertain} of 300 calls ({n_uncertain / 300:.1%}) are uncertain" in part
    assert "both labels" in part  # what a set means
    assert "labelled samples of this report, the set holds" not in part  # in-sample: not shown
    assert "the set holds the observed label in" in section(html, "uncertainty")


def test_uncertain_range_matches_the_prediction_sets() -> None:
    rng = np.random.default_rng(3)
    grid = np.linspace(0.0, 1.0, 2001)
    for _ in range(40):
        n = int(rng.integers(5, 80))
        probability = rng.uniform(size=n)
        labels = (rng.uniform(size=n) < probability).astype(float)
        level = float(rng.uniform(0.5, 0.99))
        conformal = ConformalPredictor.fit("classification", probability, labels, level=level)
        for decision in (0.3, 0.5, 0.7):
            both = grid[[len(s) == 2 for s in conformal.sets(grid, None, decision)]]
            span = uncertain_range(conformal.thresholds[""], decision)
            if span is None:
                assert both.size == 0
            else:
                assert abs(both.min() - span[0]) < 1e-3 and abs(both.max() - span[1]) < 1e-3


def test_domain_section_counts_flagged_samples(model: NKResistanceModel, cohort: Cohort) -> None:
    raw = cohort.counts.iloc[:30].copy()
    rng = np.random.default_rng(0)
    for row in range(3):  # a profile whose genes are shuffled is unlike any training sample
        raw.iloc[row] = rng.permutation(raw.iloc[row].to_numpy())
    prepared = model.prepare(raw)
    table = model.predict_table(prepared)
    part = section(build_report(model, prepared, max_samples=0), "domain")
    n_out = int(table["out_of_domain"].sum())
    assert n_out >= 3
    assert f"{n_out} of 30 samples ({n_out / 30:.1%}) are out of domain" in part
    reasons = [r for value in table["domain_reasons"] for r in value.split(";") if r]
    for code in set(reasons):
        row = re.search(rf"<code>{code}</code></td><td class=\"num\">(\d+) ", part)
        assert row and int(row.group(1)) == reasons.count(code), code
    for shuffled in raw.index[:3]:
        assert f"<tr><td>{shuffled}</td>" in part
    described = model.domain.describe()
    assert f"{described['held_out_rate']:.1%} of held-out training samples" in part
    assert f"{100 * described['quantile']:.1f}th percentile" in part


def test_one_meaning_per_colour_and_legends(html: str, cv_result: CVResult) -> None:
    style = html[html.index("<style>") : html.index("</style>")]
    assert f"--resistant: {colours.RESISTANT}" in style and "--sensitive" in style
    nav = style[style.index("nav a") :].split("}")[0]
    assert "--sensitive" not in nav and "--resistant" not in nav
    pooled = cv_result.pooled(MODEL_NAME)
    curves = {"nkpredict": (pooled["y_true"].to_numpy(), pooled["y_pred"].to_numpy())}
    table = pd.DataFrame({"mean_predicted": [0.2, 0.8], "fraction_positive": [0.25, 0.7]})
    figure = classification_figure(curves, table)
    assert all(ax.get_legend() is not None for ax in figure.axes)
    line = figure.axes[0].get_lines()[0]
    assert line.get_color() == colours.INK
    importance = pd.DataFrame(
        {"label": ["a", "b"], "mean_abs_shap": [0.2, 0.1], "direction": ["mixed", "mixed"]}
    )
    assert importance_figure(importance, "t", "log-odds").axes[0].get_legend() is not None
    for section_id in ("how-to-read", "methods"):
        assert section(html, section_id).strip()
    guide = section(html, "how-to-read")
    assert "Colours mean one thing each" in guide


def test_write_report_is_atomic(training_html: str, report_file: Path) -> None:
    assert report_file.read_text(encoding="utf-8") == training_html
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
  const text = (id) => {
    const element = document.getElementById(id);
    return element ? element.innerText.trim() : "";
  };
  return {
    title: document.title,
    texts: Object.fromEntries(
      ["performance-table", "lineage-table", "uncertain-share", "domain-share"].map(
        (id) => [id, text(id)])),
    sections: Object.fromEntries(IDS.map((id) => [id, size(id)])),
    images: Array.from(document.images).map((img) => [img.naturalWidth, img.naturalHeight]),
    cards: cards.length,
    filtered: visible,
    unfiltered: cards.filter((card) => !card.hidden).length,
  };
})()
"""


def test_report_renders_in_headless_chromium(
    report_file: Path,
    training_html: str,
    tmp_path: Path,
    record_property: Callable[[str, object], None],
) -> None:
    """The training report in a real browser: every section laid out, the new tables shown,
    no console error, nothing fetched; a viewport and a full-page screenshot are kept
    (their paths are recorded as test properties)."""
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
        size = browser.send("Page.getLayoutMetrics", session=session)["cssContentSize"]
        clip = {"x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1}
        full = browser.send(
            "Page.captureScreenshot",
            {"format": "png", "clip": clip, "captureBeyondViewport": True},
            session,
            timeout=60.0,
        )
    finally:
        browser.close()

    assert state["title"] == TITLE
    for section_id, size in state["sections"].items():
        assert size is not None and size[0] > 0 and size[1] > 0, section_id
    assert len(state["images"]) == len(PNG_URI.findall(training_html))
    for element in ("performance-table", "lineage-table", "uncertain-share", "domain-share"):
        assert state["texts"][element], element
    assert "out of domain" in state["texts"]["domain-share"]
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
    whole = tmp_path / "report-full-page.png"
    whole.write_bytes(base64.b64decode(full["data"]))
    assert Image.open(whole).size[1] > 3 * VIEWPORT["height"]
    record_property("screenshot", str(screenshot))
    record_property("screenshot_full_page", str(whole))
