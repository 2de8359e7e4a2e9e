"""A self-contained HTML report of a fitted model and its explanations on one cohort.

The report is one file that opens offline: figures are PNGs drawn with matplotlib (Agg) and
embedded as ``data:`` URIs, the style sheet and the small script are inline, and a Content
Security Policy forbids the page from loading anything else. Colours have one meaning each
(:mod:`nkpredict.report.colours`); metrics are named in words (:mod:`nkpredict.report.names`).
Sections (stable element ids), in page order:

``how-to-read``
    What each section answers, what the colours mean, where the numbers come from.
``model-card``
    Model identity (registered name and version), training-data fingerprint, label definition
    and catalogue version.
``performance``
    One table of the primary metric: pooled, within-lineage and leave-one-lineage-out, the
    lineage-only and best baselines, the difference to the best baseline; per-lineage scores;
    every recorded metric with its 95% interval (:mod:`nkpredict.report.performance`).
``calibration``
    ROC, precision-recall and calibration curves: out of fold when the training run's
    cross-validation result is given, else on this cohort's labels, said as such.
``uncertainty``
    Calibration method and why, conformal level, per-lineage thresholds, uncertain calls in
    this cohort (:mod:`nkpredict.report.uncertainty`).
``domain``
    Samples out of the training domain, reasons counted, the checks' thresholds
    (:mod:`nkpredict.report.domain`).
``global-importance``
    Mean |SHAP| rankings at feature, axis and pathway level (tables and bar plots).
``beeswarm``
    Per-sample SHAP values of the most important features, coloured by feature value.
``dependence``
    Expression of the most important NK ligand genes against their SHAP values.
``samples``
    One waterfall per sample predicted resistant: base value, axis contributions, output,
    the observed label when labels are given, and its top measured genes in words (value,
    training percentile, push, probability with the gene at its training median).
``whatif``
    For the same samples, the built-in what-if interventions that most lower the predicted
    resistance (expression counterfactuals of the model: :mod:`nkpredict.report.whatif`).
``methods``
    How the model was built and evaluated, and the limits of what the report says.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")

import jinja2
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from nkpredict import __version__
from nkpredict.catalog import load_catalog
from nkpredict.data.expression import PreparedExpression
from nkpredict.evaluate.cv import CVResult
from nkpredict.evaluate.metrics import HIGHER_IS_BETTER, PRIMARY_METRIC
from nkpredict.evaluate.summary import comparison_sentence
from nkpredict.exceptions import InputError
from nkpredict.explain.attributions import (
    HIGHER_MORE_RESISTANT,
    HIGHER_MORE_SENSITIVE,
    TOWARD_RESISTANT,
    TOWARD_SENSITIVE,
    Explanation,
    Level,
    explain,
    unit_label,
)
from nkpredict.explain.words import explanation_words
from nkpredict.io import write_text
from nkpredict.model.fitted import NKResistanceModel
from nkpredict.report import colours
from nkpredict.report.domain import domain_section
from nkpredict.report.figures import DPI, figure_data_uri
from nkpredict.report.names import (
    DOMAIN_CHECK_LABELS,
    baseline_label,
    metric_label,
    metric_name,
)
from nkpredict.report.performance import (
    ObservedLabels,
    curves_section,
    format_number,
    lineage_table,
    observed_labels,
    performance_table,
)
from nkpredict.report.uncertainty import uncertainty_section
from nkpredict.report.whatif import whatif_section

__all__ = [
    "DPI",
    "NEUTRAL_COLOUR",
    "RESISTANT_COLOUR",
    "SAMPLE_DRIVERS",
    "SENSITIVE_COLOUR",
    "TEMPLATE",
    "TOP_FEATURES",
    "TOP_LIGAND_GENES",
    "WATERFALL_UNITS",
    "WaterfallStep",
    "beeswarm_figure",
    "build_report",
    "dependence_figure",
    "evaluation_table",
    "figure_data_uri",
    "global_sections",
    "importance_figure",
    "model_card",
    "oracle_gaps",
    "sample_sections",
    "selected_samples",
    "top_ligand_genes",
    "waterfall",
    "write_report",
]

logger = logging.getLogger(__name__)

TEMPLATE = "report.html.j2"
TOP_FEATURES = 15
TOP_LIGAND_GENES = 6
WATERFALL_UNITS = 8
SAMPLE_DRIVERS = 3
RESISTANT_COLOUR = colours.RESISTANT
SENSITIVE_COLOUR = colours.SENSITIVE
NEUTRAL_COLOUR = colours.NEUTRAL
_METRIC_SUFFIXES = ("_ci_low", "_ci_high", "_fold_sd")
_LIGAND_ROLES = ("activating", "inhibitory")
_IMPORTANCE_LEVELS: tuple[tuple[Level, str], ...] = (
    ("feature", "Features"),
    ("axis", "NK receptor axes and programs"),
    ("pathway", "Pathways"),
)


# --------------------------------------------------------------------------- figures


def _trend_colour(direction: str) -> str:
    """Bar colour of a global direction: red more resistant, blue more sensitive, else grey."""
    colours = {HIGHER_MORE_RESISTANT: RESISTANT_COLOUR, HIGHER_MORE_SENSITIVE: SENSITIVE_COLOUR}
    return colours.get(direction, NEUTRAL_COLOUR)


def importance_figure(table: pd.DataFrame, title: str, units: str) -> Figure:
    """Horizontal bars of mean |SHAP| for the rows of a global-importance table.

    Parameters
    ----------
    table : DataFrame, shape (n_units, 6)
        From :meth:`Explanation.global_importance`, most important first.
    """
    shown = table.iloc[::-1]
    fig, ax = plt.subplots(figsize=(6.4, 0.3 * len(shown) + 1.1))
    ax.barh(shown["label"], shown["mean_abs_shap"], color=shown["direction"].map(_trend_colour))
    ax.set(xlabel=f"mean |SHAP| ({units})", title=title)
    ax.tick_params(axis="y", labelsize=8)
    legend = [
        Patch(color=RESISTANT_COLOUR, label=f"{HIGHER_MORE_RESISTANT}"),
        Patch(color=SENSITIVE_COLOUR, label=f"{HIGHER_MORE_SENSITIVE}"),
        Patch(color=NEUTRAL_COLOUR, label="mixed or flat"),
    ]
    ax.legend(handles=legend, fontsize=7, loc="lower right", title="direction", title_fontsize=7)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    fig.tight_layout()
    return fig


def _swarm_offsets(values: np.ndarray, width: float = 0.38, n_bins: int = 40) -> np.ndarray:
    """Vertical offsets that spread points by local density (a simple beeswarm), shape (n,)."""
    if values.size < 2 or np.ptp(values) == 0:
        return np.zeros(values.size)
    bins = np.minimum(((values - values.min()) / np.ptp(values) * n_bins).astype(int), n_bins - 1)
    counts = np.bincount(bins, minlength=n_bins)
    order = np.lexsort((values, bins))
    first_of_bin = np.searchsorted(bins[order], bins[order], side="left")
    rank_in_bin = np.empty(values.size)
    rank_in_bin[order] = np.arange(values.size) - first_of_bin
    alternating = np.where(rank_in_bin % 2 == 0, 1.0, -1.0) * np.ceil(rank_in_bin / 2)
    return width * alternating / max(counts.max() / 2, 1.0)


def beeswarm_figure(explanation: Explanation, features: list[str]) -> Figure:
    """SHAP value of each sample for each feature, coloured by the feature's value percentile."""
    fig, ax = plt.subplots(figsize=(7.6, 0.42 * len(features) + 1.4))
    scatter = None
    for row, feature in enumerate(reversed(features)):
        shap_values = explanation.shap[feature].to_numpy()
        percentile = explanation.values[feature].rank(pct=True).to_numpy()
        scatter = ax.scatter(
            shap_values,
            row + _swarm_offsets(shap_values),
            c=percentile,
            cmap=colours.VALUE_CMAP,
            vmin=0.0,
            vmax=1.0,
            s=7,
            linewidths=0,
            alpha=0.85,
        )
    ax.axvline(0.0, color=colours.REFERENCE, linewidth=0.8, label="no push")
    ax.set_yticks(range(len(features)), [unit_label("feature", f) for f in reversed(features)])
    ax.tick_params(axis="y", labelsize=8)
    toward = "toward resistant" if explanation.resistant_sign == 1 else "higher output"
    ax.set(xlabel=f"SHAP value ({explanation.units}); right = {toward}")
    ax.legend(fontsize=7, loc="lower right")
    if scatter is not None:
        bar = fig.colorbar(scatter, ax=ax, fraction=0.04, pad=0.02)
        bar.set_label("feature value (percentile: low -> high)")
    fig.tight_layout()
    return fig


def dependence_figure(explanation: Explanation, genes: list[str]) -> Figure:
    """One panel per gene: harmonized expression (log2 TPM+1) against the gene's SHAP value."""
    columns = min(3, len(genes))
    rows = int(np.ceil(len(genes) / columns))
    fig, axes = plt.subplots(rows, columns, figsize=(3.6 * columns, 3.0 * rows), squeeze=False)
    gene_shap = explanation.level("gene")
    expression = explanation.expression
    for ax, gene in zip(axes.ravel(), genes, strict=False):
        x = expression[gene] if expression is not None else explanation.values[f"gene:{gene}"]
        ax.scatter(
            x, gene_shap[gene], s=8, alpha=0.6, color=colours.INK, linewidths=0, label="sample"
        )
        ax.axhline(0.0, color=colours.REFERENCE, linewidth=0.8, linestyle=":", label="no push")
        ax.set(title=gene, xlabel="log2(TPM+1)", ylabel=f"SHAP ({explanation.units})")
        ax.legend(fontsize=7, loc="best")
    for ax in axes.ravel()[len(genes) :]:
        ax.set_visible(False)
    fig.tight_layout()
    return fig


@dataclass
class WaterfallStep:
    """One row of a waterfall: a unit's push on the output, placed on a 0-100 % scale."""

    label: str
    value: float
    left: float
    width: float
    css: str


def _percent(value: float, low: float, high: float) -> float:
    return round(100.0 * (value - low) / (high - low), 2)


def waterfall(
    explanation: Explanation, sample_id: str, n_units: int = WATERFALL_UNITS
) -> dict[str, Any]:
    """Base value -> the largest axis contributions (rest pooled) -> model output, one sample.

    Returns
    -------
    dict
        ``steps`` (list of :class:`WaterfallStep`, bars as percentages of the plotted range)
        and ``base`` and ``output`` (``value`` and position ``at``, in percent).
    """
    row = explanation.level("axis").loc[sample_id]
    order = row.abs().sort_values(ascending=False, kind="stable").index
    pushes = [(unit_label("axis", str(u)), float(row[u])) for u in order[:n_units]]
    rest = row[order[n_units:]]
    if len(rest):
        pushes.append((f"{len(rest)} other units", float(rest.sum())))
    ends = explanation.base_value + np.cumsum([0.0] + [v for _, v in pushes])
    low, high = float(ends.min()), float(ends.max())
    pad = max(high - low, 1e-6) * 0.06
    low, high = low - pad, high + pad
    steps = [
        WaterfallStep(
            label=label,
            value=value,
            left=_percent(min(start, start + value), low, high),
            width=max(round(100.0 * abs(value) / (high - low), 2), 0.3),
            css=_push_class(explanation, value),
        )
        for (label, value), start in zip(pushes, ends[:-1], strict=True)
    ]
    output = float(explanation.model_output[sample_id])
    return {
        "steps": steps,
        "base": {
            "value": explanation.base_value,
            "at": _percent(explanation.base_value, low, high),
        },
        "output": {"value": output, "at": _percent(output, low, high)},
    }


def _push_class(explanation: Explanation, value: float) -> str:
    """CSS class of a push on the output: ``resistant``, ``sensitive`` or ``neutral``."""
    words = explanation.direction(value)
    return {TOWARD_RESISTANT: "resistant", TOWARD_SENSITIVE: "sensitive"}.get(words, "neutral")


# --------------------------------------------------------------------------- model card


def _split_metric(key: str) -> tuple[str, str, str] | None:
    """``baseline_linear_cv_roc_auc_ci_low`` -> (``baseline: linear ...``, ``roc_auc``,
    ``_ci_low``): the estimator in words, the metric key and the suffix."""
    suffix = next((s for s in _METRIC_SUFFIXES if key.endswith(s)), "")
    stem = key[: len(key) - len(suffix)]
    if stem.endswith("_minus_best_baseline"):
        return None  # a comparison, shown in the performance table
    if stem.startswith("lolo_"):
        return "nkpredict, leave-one-lineage-out", stem.removeprefix("lolo_"), suffix
    if stem.startswith("oracle_"):
        return "best achievable (true probabilities)", stem.removeprefix("oracle_"), suffix
    if stem.startswith("cv_"):
        return "nkpredict", stem.removeprefix("cv_"), suffix
    match = re.fullmatch(r"baseline_(.+?)_cv_(.+)", stem)
    if match:
        return f"baseline: {baseline_label(match.group(1))}", match.group(2), suffix
    return None


def _column_label(metric: str) -> str:
    """Header of an evaluation-table column: ``within_lineage_roc_auc`` -> ``ROC AUC within
    lineage``."""
    if metric.startswith("within_lineage_"):
        return f"{metric_name(metric.removeprefix('within_lineage_'))} within lineage"
    return metric_name(metric)


def evaluation_table(metrics: dict[str, Any]) -> tuple[list[str], list[dict[str, Any]]]:
    """Metric keys and one row per estimator (in words) with ``estimate [ci_low, ci_high]``
    cells (every metric, cross-validated unless the estimator says otherwise)."""
    cells: dict[str, dict[str, dict[str, Any]]] = {}
    for key, value in metrics.items():
        parsed = _split_metric(key)
        if parsed is None:
            continue
        estimator, metric, suffix = parsed
        cells.setdefault(estimator, {}).setdefault(metric, {})[suffix or "value"] = value
    names = list(dict.fromkeys(m for by_metric in cells.values() for m in by_metric))
    rows = []
    for estimator, by_metric in cells.items():
        row: dict[str, Any] = {"estimator": estimator}
        for metric in names:
            parts = by_metric.get(metric, {})
            text = format_number(parts.get("value"))
            if "_ci_low" in parts:
                low, high = format_number(parts["_ci_low"]), format_number(parts.get("_ci_high"))
                text += f" [{low}, {high}]"
            row[metric] = text if parts else ""
        rows.append(row)
    return names, rows


def oracle_gaps(metrics: dict[str, Any]) -> list[str]:
    """Sentences comparing the model's CV score with the generator's best achievable one.

    The gap is how far the model falls short (positive when the oracle is better).
    """
    sentences = []
    for key, best in metrics.items():
        metric = key.removeprefix("oracle_")
        model = metrics.get(f"cv_{metric}")
        if not key.startswith("oracle_") or model is None:
            continue
        shortfall = best - model if HIGHER_IS_BETTER.get(metric, True) else model - best
        sentences.append(
            f"Model vs best achievable {metric_name(metric)}: {format_number(model)} vs "
            f"{format_number(best)} (gap {format_number(shortfall)})"
        )
    return sentences


def _version(metadata: dict[str, Any]) -> str:
    """The registered version, or why there is none."""
    version = metadata.get("model_version")
    if version not in (None, ""):
        return str(version)
    return "not registered" if metadata.get("model_name") is None else "unknown"


def model_card(model: NKResistanceModel) -> dict[str, Any]:
    """What the model is, what it was trained on and how well it did (template context)."""
    metadata = model.metadata_ or {}
    metrics = metadata.get("metrics") or {}
    best = metadata.get("best_baseline")
    names, rows = evaluation_table(metrics)
    primary = PRIMARY_METRIC.get(model.task, "roc_auc")
    identity = {
        "model name": metadata.get("model_name", "not registered"),
        "model version": _version(metadata),
        "task": model.task,
        "decision threshold": model.decision_threshold,
        "boosting rounds": model.boosted_trees.n_rounds_,
        "features": len(model.feature_builder.get_feature_names_out()),
        "catalogue version": model.feature_builder.catalog_version_,
        "nkpredict version": __version__,
    }
    return {
        "identity": identity,
        "label_definition": model.label_definition_.describe(),
        "data": metadata.get("data") or {},
        "cv": metadata.get("cv") or {},
        "metric_names": names,
        "metric_headers": {n: _column_label(n) for n in names},
        "metric_rows": rows,
        "gaps": oracle_gaps(metrics),
        "best_baseline": None if best is None else baseline_label(best),
        "comparison": comparison_sentence(
            metrics,
            best,
            model.task,
            metric_label=metric_name(primary),
            baseline_label=None if best is None else baseline_label(best),
        ),
        "performance": performance_table(metrics, best, model.task),
        "metric_label": metric_label,
    }


# --------------------------------------------------------------------------- sections


def _records(table: pd.DataFrame) -> list[dict[str, Any]]:
    shown = table.assign(
        mean_abs_shap=table["mean_abs_shap"].map("{:.3f}".format),
        mean_shap=table["mean_shap"].map("{:+.3f}".format),
    )
    return shown.to_dict(orient="records")


def global_sections(explanation: Explanation) -> list[dict[str, Any]]:
    """One table and bar plot per level of :data:`_IMPORTANCE_LEVELS`."""
    sections = []
    for level, title in _IMPORTANCE_LEVELS:
        table = explanation.global_importance(level).head(TOP_FEATURES)
        figure = importance_figure(table, title, explanation.units)
        sections.append(
            {
                "level": level,
                "title": title,
                "image": figure_data_uri(figure),
                "rows": _records(table),
            }
        )
    return sections


def top_ligand_genes(explanation: Explanation, n: int = TOP_LIGAND_GENES) -> list[str]:
    """The ``n`` catalogue ligands (activating or inhibitory) with the largest mean |SHAP|."""
    ligands = {g.symbol for g in load_catalog().genes if g.role in _LIGAND_ROLES}
    ranking = explanation.global_importance("gene")
    available = set(explanation.expression.columns) if explanation.expression is not None else set()
    chosen = ranking[ranking["unit"].isin(ligands & available) & (ranking["mean_abs_shap"] > 0)]
    return chosen["unit"].head(n).tolist()


def _html_id(sample_id: str) -> str:
    return "sample-" + re.sub(r"\s+", "_", sample_id)


def _prediction_text(row: pd.Series) -> str:
    """``p = 0.91 (calibrated 0.86), resistant; set: resistant``."""
    if "probability" in row:
        value = f"p = {row['probability']:.2f}"
        calibrated = row.get("calibrated_probability")
        if calibrated is not None and not pd.isna(calibrated):
            value += f" (calibrated {calibrated:.2f})"
    else:
        value = f"{row['score']:.2f}"
    text = f"{value}, {row['call']}"
    if isinstance(row.get("prediction_set"), str) and row["prediction_set"]:
        text += f"; set: {row['prediction_set'].replace(';', ', ')}"
    return text


def _observed_text(model: NKResistanceModel, observed: ObservedLabels, sample_id: str) -> str:
    """The observed label of a sample in words (empty when it has none)."""
    if observed.y is None or sample_id not in observed.y.index:
        return ""
    value = observed.y[sample_id]
    if model.task == "classification":
        return "resistant" if value == 1 else "sensitive"
    return f"{observed.column} = {float(value):.2f}"


def _domain_text(row: pd.Series) -> str:
    """Why a sample is out of domain, in words (empty when it is in domain)."""
    if not bool(row.get("out_of_domain", False)):
        return ""
    codes = [c for c in str(row.get("domain_reasons") or "").split(";") if c]
    return ", ".join(DOMAIN_CHECK_LABELS.get(c, c) for c in codes) or "out of domain"


def selected_samples(
    model: NKResistanceModel, prepared: PreparedExpression, explanation: Explanation, limit: int
) -> tuple[list[str], pd.DataFrame]:
    """Ids of the samples predicted resistant (most resistant first, at most ``limit``)."""
    table = model.predict_table(prepared).set_index("sample_id")
    resistant = table.index[table["call"] == "resistant"]
    sign = explanation.resistant_sign or 1
    order = (explanation.model_output[resistant] * sign).sort_values(ascending=False)
    return [str(s) for s in order.index[:limit]], table


def _no_samples_note(predictions: pd.DataFrame) -> str:
    """Why no waterfall is shown (used only when none is)."""
    if (predictions["call"] == "n/a").all():
        return (
            "This regression model makes no resistant/sensitive calls: its label definition "
            "has no threshold."
        )
    return "No sample is predicted resistant."


def sample_sections(
    explanation: Explanation,
    sample_ids: list[str],
    predictions: pd.DataFrame,
    words: dict[str, list[str]] | None = None,
    observed: dict[str, str] | None = None,
) -> list[dict[str, Any]]:
    """Waterfall and plain-words drivers of each selected sample; ``words``: each sample's
    driver sentences (:func:`nkpredict.explain.words.explanation_words`), when given;
    ``observed``: each labelled sample's observed label in words."""
    words = words or {}
    observed = observed or {}
    return [
        {
            "sample_id": sample_id,
            "html_id": _html_id(sample_id),
            "prediction": _prediction_text(predictions.loc[sample_id]),
            "observed": observed.get(sample_id, ""),
            "domain": _domain_text(predictions.loc[sample_id]),
            "waterfall": waterfall(explanation, sample_id),
            "drivers": [
                d.sentence() for d in explanation.top_drivers(sample_id, "axis", SAMPLE_DRIVERS)
            ],
            "genes": [
                d.sentence() for d in explanation.top_drivers(sample_id, "gene", SAMPLE_DRIVERS)
            ],
            "words": words.get(sample_id, []),
        }
        for sample_id in sample_ids
    ]


def _sample_words(
    model: NKResistanceModel, explanation: Explanation, sample_ids: list[str]
) -> dict[str, list[str]]:
    """The driver sentences of the samples ``sample_ids``."""
    if not sample_ids:
        return {}
    position = {str(s): i for i, s in enumerate(explanation.shap.index)}
    shown = explanation.rows([position[s] for s in sample_ids])
    said = explanation_words(model, shown, SAMPLE_DRIVERS)
    return {s: w.sentences() for s, w in zip(sample_ids, said, strict=True)}


# --------------------------------------------------------------------------- assembly


def _environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.PackageLoader("nkpredict.report", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def _environment_context() -> dict[str, Any]:
    return {"colours": colours.css_variables()}


def build_report(
    model: NKResistanceModel,
    prepared: PreparedExpression,
    labels: pd.DataFrame | None = None,
    label_column: str | None = None,
    max_samples: int = 40,
    title: str | None = None,
    cv_result: CVResult | None = None,
    lineages: pd.Series | None = None,
) -> str:
    """Build the HTML report of ``model`` on the samples of ``prepared``.

    Parameters
    ----------
    model : NKResistanceModel
        A fitted model (its ``metadata_`` feeds the model card and the performance tables).
    prepared : PreparedExpression
        The cohort, shape (n_samples, n_genes), from ``model.prepare(raw)``.
    labels : DataFrame, optional
        Observed labels indexed by sample id: the observed label on each sample card and,
        without ``cv_result``, the curves on this cohort.
    label_column : str, optional
        Column of ``labels`` holding the model's label (default: the model's label column).
    max_samples : int
        Most samples predicted resistant that get a waterfall.
    title : str, optional
    cv_result : CVResult, optional
        The training run's cross-validation of this model's configuration (and baselines):
        the curves are drawn on its out-of-fold predictions, and the report is a training
        report (its samples are the training samples).
    lineages : Series, optional
        Lineage of each training sample, indexed by sample id: per-lineage scores of
        ``cv_result``.

    Returns
    -------
    str
        One self-contained HTML document.
    """
    if max_samples < 0:
        raise InputError(f"max_samples must be >= 0, got {max_samples}")
    explanation = explain(model, prepared)
    sample_ids, predictions = selected_samples(model, prepared, explanation, max_samples)
    observed = observed_labels(model, predictions.index, labels, label_column)
    ranking = explanation.global_importance("feature")
    ligand_genes = top_ligand_genes(explanation)
    training_report = cv_result is not None
    card = model_card(model)
    context = {
        **_environment_context(),
        "title": title or "NK resistance model report",
        "generated": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "units": explanation.units,
        "base_value": explanation.base_value,
        "n_samples": len(predictions),
        "n_resistant": int((predictions["call"] == "resistant").sum()),
        "n_uncertain": int((predictions["call"] == "uncertain").sum()),
        "n_labelled": 0 if observed.y is None else len(observed.y),
        "training_report": training_report,
        "card": card,
        "lineages": lineage_table(model, cv_result, lineages),
        "global_sections": global_sections(explanation),
        "beeswarm": figure_data_uri(
            beeswarm_figure(explanation, ranking["unit"].head(TOP_FEATURES).tolist())
        ),
        "ligand_genes": ligand_genes,
        "dependence": (
            figure_data_uri(dependence_figure(explanation, ligand_genes)) if ligand_genes else None
        ),
        "calibration": curves_section(model, predictions, observed, cv_result),
        "uncertainty": uncertainty_section(
            model, predictions, observed.y, on_new_data=not training_report
        ),
        "domain": domain_section(model, predictions),
        "samples": sample_sections(
            explanation,
            sample_ids,
            predictions,
            _sample_words(model, explanation, sample_ids),
            {s: _observed_text(model, observed, s) for s in sample_ids},
        ),
        "whatif": whatif_section(model, prepared, sample_ids),
        "samples_note": _no_samples_note(predictions),
        "max_samples": max_samples,
    }
    html = _environment().get_template(TEMPLATE).render(**context)
    logger.info("report built: %d samples, %d waterfalls", len(predictions), len(sample_ids))
    return html


def write_report(html: str, path: Path) -> Path:
    """Write the report atomically to ``path`` and return it."""
    return write_text(path, html)
