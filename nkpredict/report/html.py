"""A self-contained HTML report of a fitted model and its explanations on one cohort.

The report is one file that opens offline: figures are PNGs drawn with matplotlib (Agg) and
embedded as ``data:`` URIs, the style sheet and the small script are inline, and a Content
Security Policy forbids the page from loading anything else. Sections (stable element ids):

``model-card``
    Model identity, training-data fingerprint, label definition, catalogue version and the
    cross-validated evaluation with 95% intervals, baselines and the best achievable score.
``global-importance``
    Mean |SHAP| rankings at feature, axis and pathway level (tables and bar plots).
``beeswarm``
    Per-sample SHAP values of the most important features, coloured by feature value.
``dependence``
    Expression of the most important NK ligand genes against their SHAP values.
``calibration``
    Calibration and metrics on this cohort, when its labels are given.
``samples``
    One waterfall per sample predicted resistant: base value, axis contributions, output,
    and its top measured genes in words (value, training percentile, push, probability with
    the gene at its training median).
``whatif``
    For the same samples, the built-in what-if interventions that most lower the predicted
    resistance (expression counterfactuals of the model: :mod:`nkpredict.report.whatif`).
"""

from __future__ import annotations

import base64
import io
import logging
import re
from dataclasses import dataclass, replace
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

from nkpredict import __version__
from nkpredict.catalog import load_catalog
from nkpredict.data.expression import PreparedExpression
from nkpredict.evaluate.metrics import (
    HIGHER_IS_BETTER,
    calibration_table,
    classification_metrics,
    regression_metrics,
)
from nkpredict.evaluate.summary import comparison_sentence, headline
from nkpredict.exceptions import InputError, LabelError
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
from nkpredict.report.plots import classification_figure, regression_figure
from nkpredict.report.whatif import whatif_section

__all__ = [
    "DPI",
    "IN_SAMPLE_CAVEAT",
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
    "calibration_section",
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
DPI = 96
RESISTANT_COLOUR = "#c0392b"
SENSITIVE_COLOUR = "#2471a3"
NEUTRAL_COLOUR = "#95a5a6"
IN_SAMPLE_CAVEAT = "Samples the model was trained on make these numbers optimistic."
_METRIC_SUFFIXES = ("_ci_low", "_ci_high", "_fold_sd")
_LIGAND_ROLES = ("activating", "inhibitory")
_IMPORTANCE_LEVELS: tuple[tuple[Level, str], ...] = (
    ("feature", "Features"),
    ("axis", "NK receptor axes and programs"),
    ("pathway", "Pathways"),
)


# --------------------------------------------------------------------------- figures


def figure_data_uri(fig: Figure) -> str:
    """Render ``fig`` as a base64 PNG ``data:`` URI and close it."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI, bbox_inches="tight", metadata={"Software": None})
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


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
            cmap="coolwarm",
            vmin=0.0,
            vmax=1.0,
            s=7,
            linewidths=0,
            alpha=0.85,
        )
    ax.axvline(0.0, color="#555555", linewidth=0.8)
    ax.set_yticks(range(len(features)), [unit_label("feature", f) for f in reversed(features)])
    ax.tick_params(axis="y", labelsize=8)
    ax.set(xlabel=f"SHAP value ({explanation.units}); right = higher output")
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
        ax.scatter(x, gene_shap[gene], s=8, alpha=0.6, color="#34495e", linewidths=0)
        ax.axhline(0.0, color="#999999", linewidth=0.8, linestyle=":")
        ax.set(title=gene, xlabel="log2(TPM+1)", ylabel=f"SHAP ({explanation.units})")
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
    """``baseline_linear_cv_roc_auc_ci_low`` -> (``baseline: linear``, ``roc_auc``, ``_ci_low``)."""
    suffix = next((s for s in _METRIC_SUFFIXES if key.endswith(s)), "")
    stem = key[: len(key) - len(suffix)]
    if stem.endswith("_minus_best_baseline"):
        return None  # a comparison, shown in the headline table
    if stem.startswith("lolo_"):
        return "nkpredict, leave-one-lineage-out", stem.removeprefix("lolo_"), suffix
    if stem.startswith("oracle_"):
        return "oracle (best achievable)", stem.removeprefix("oracle_"), suffix
    if stem.startswith("cv_"):
        return "nkpredict", stem.removeprefix("cv_"), suffix
    match = re.fullmatch(r"baseline_(.+?)_cv_(.+)", stem)
    if match:
        return f"baseline: {match.group(1)}", match.group(2), suffix
    return None


def _format_number(value: Any) -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return "n/a"
    return f"{value:.3f}" if isinstance(value, float) else str(value)


def evaluation_table(metrics: dict[str, Any]) -> tuple[list[str], list[dict[str, Any]]]:
    """Metric names and one row per estimator with ``estimate [ci_low, ci_high]`` cells."""
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
            text = _format_number(parts.get("value"))
            if "_ci_low" in parts:
                low, high = _format_number(parts["_ci_low"]), _format_number(parts.get("_ci_high"))
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
            f"Model vs best achievable {metric}: {_format_number(model)} vs "
            f"{_format_number(best)} (gap {_format_number(shortfall)})"
        )
    return sentences


def model_card(model: NKResistanceModel) -> dict[str, Any]:
    """What the model is, what it was trained on and how well it did (template context)."""
    metadata = model.metadata_ or {}
    metrics = metadata.get("metrics") or {}
    names, rows = evaluation_table(metrics)
    identity = {
        "model name": metadata.get("model_name", "not registered"),
        "model version": metadata.get("model_version", "n/a"),
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
        "metric_rows": rows,
        "gaps": oracle_gaps(metrics),
        "best_baseline": metadata.get("best_baseline"),
        "comparison": comparison_sentence(metrics, metadata.get("best_baseline"), model.task),
        "headline": [
            {
                "metric": name,
                "value": _format_number(value),
                "interval": ""
                if np.isnan(low)
                else f"[{_format_number(low)}, {_format_number(high)}]",
            }
            for name, value, low, high in headline(metrics, model.task)
        ],
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


@dataclass
class _Cohort:
    """Observed target of the cohort's samples, aligned to the explanation."""

    y: pd.Series
    column: str


def _observed_target(
    model: NKResistanceModel, explanation: Explanation, labels: pd.DataFrame, column: str
) -> _Cohort:
    definition = replace(model.label_definition_, column=column)
    y, _ = definition.resolve(labels)
    y.index = y.index.astype(str)
    y = y[y.index.isin(explanation.shap.index)]
    if y.empty:
        raise LabelError(f"no label in {column!r} matches an explained sample id")
    return _Cohort(y=y, column=column)


def calibration_section(
    model: NKResistanceModel,
    explanation: Explanation,
    labels: pd.DataFrame | None,
    label_column: str | None,
) -> dict[str, Any]:
    """Calibration figure and metrics on this cohort, or a note saying why there are none."""
    column = label_column or model.label_definition_.column
    if labels is None or column not in labels.columns:
        note = (
            "No labels given: calibration needs the observed label of each sample."
            if labels is None
            else f"The labels have no column {column!r}; calibration needs the model's label."
        )
        return {"available": False, "note": note}
    try:
        cohort = _observed_target(model, explanation, labels, column)
    except LabelError as exc:
        return {"available": False, "note": f"Labels could not be used: {exc}"}
    output = explanation.model_output[cohort.y.index].to_numpy()
    if model.task == "classification":
        return _classification_calibration(cohort, 1.0 / (1.0 + np.exp(-output)))
    return _regression_calibration(cohort, output)


def _metric_rows(metrics: dict[str, float]) -> list[dict[str, str]]:
    return [{"metric": k, "value": _format_number(v)} for k, v in metrics.items()]


def _classification_calibration(cohort: _Cohort, probability: np.ndarray) -> dict[str, Any]:
    y = cohort.y.to_numpy()
    table = calibration_table(y, probability, n_bins=max(2, min(10, len(y) // 20)))
    figure = classification_figure({"nkpredict": (y, probability)}, table)
    for ax, title in zip(figure.axes, ("ROC", "Precision-recall", "Calibration"), strict=True):
        ax.set_title(f"{title} (this cohort)")
    return {
        "available": True,
        "note": f"{len(y)} labelled samples ({int(y.sum())} resistant), column "
        f"{cohort.column!r}. {IN_SAMPLE_CAVEAT}",
        "image": figure_data_uri(figure),
        "metrics": _metric_rows(classification_metrics(y, probability)),
    }


def _regression_calibration(cohort: _Cohort, prediction: np.ndarray) -> dict[str, Any]:
    y = cohort.y.to_numpy(dtype=float)
    figure = regression_figure(y, prediction, cohort.column)
    figure.axes[0].set_title("This cohort")
    return {
        "available": True,
        "note": f"{len(y)} labelled samples, column {cohort.column!r}. {IN_SAMPLE_CAVEAT}",
        "image": figure_data_uri(figure),
        "metrics": _metric_rows(regression_metrics(y, prediction)),
    }


def _html_id(sample_id: str) -> str:
    return "sample-" + re.sub(r"\s+", "_", sample_id)


def _prediction_text(row: pd.Series) -> str:
    value = f"p = {row['probability']:.2f}" if "probability" in row else f"{row['score']:.2f}"
    return f"{value}, {row['call']}"


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
) -> list[dict[str, Any]]:
    """Waterfall and plain-words drivers of each selected sample; ``words``: each sample's
    driver sentences (:func:`nkpredict.explain.words.explanation_words`), when given."""
    words = words or {}
    return [
        {
            "sample_id": sample_id,
            "html_id": _html_id(sample_id),
            "prediction": _prediction_text(predictions.loc[sample_id]),
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


def build_report(
    model: NKResistanceModel,
    prepared: PreparedExpression,
    labels: pd.DataFrame | None = None,
    label_column: str | None = None,
    max_samples: int = 40,
    title: str | None = None,
) -> str:
    """Build the HTML report of ``model`` on the samples of ``prepared``.

    Parameters
    ----------
    model : NKResistanceModel
        A fitted model (its ``metadata_`` feeds the model card).
    prepared : PreparedExpression
        The cohort, shape (n_samples, n_genes), from ``model.prepare(raw)``.
    labels : DataFrame, optional
        Observed labels indexed by sample id; enables the calibration section.
    label_column : str, optional
        Column of ``labels`` holding the model's label (default: the model's label column).
    max_samples : int
        Most samples predicted resistant that get a waterfall.
    title : str, optional

    Returns
    -------
    str
        One self-contained HTML document.
    """
    if max_samples < 0:
        raise InputError(f"max_samples must be >= 0, got {max_samples}")
    explanation = explain(model, prepared)
    sample_ids, predictions = selected_samples(model, prepared, explanation, max_samples)
    ranking = explanation.global_importance("feature")
    ligand_genes = top_ligand_genes(explanation)
    context = {
        "title": title or "NK resistance model report",
        "generated": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "units": explanation.units,
        "base_value": explanation.base_value,
        "n_samples": len(predictions),
        "n_resistant": int((predictions["call"] == "resistant").sum()),
        "card": model_card(model),
        "global_sections": global_sections(explanation),
        "beeswarm": figure_data_uri(
            beeswarm_figure(explanation, ranking["unit"].head(TOP_FEATURES).tolist())
        ),
        "ligand_genes": ligand_genes,
        "dependence": (
            figure_data_uri(dependence_figure(explanation, ligand_genes)) if ligand_genes else None
        ),
        "calibration": calibration_section(model, explanation, labels, label_column),
        "samples": sample_sections(
            explanation, sample_ids, predictions, _sample_words(model, explanation, sample_ids)
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
