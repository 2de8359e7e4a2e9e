"""The service's request and response models, and the examples of its OpenAPI document.

``/v1/predict`` and ``/v1/explain`` parse their JSON body themselves
(:func:`service.bodies.parse_samples_body`); the request models below describe the same bodies
for the OpenAPI document and validate the options (every field but ``samples``). The option
types (scale, level) are those of :mod:`nkpredict.vocabulary`.

Sample values
-------------
Numbers (JSON integers or floats) on any scale the model accepts; ``null`` means "not
measured" (the same as leaving the gene out). Strings, booleans, lists, objects, ``NaN``,
``Infinity`` and numbers beyond the float range are refused (422).
"""

from __future__ import annotations

from datetime import datetime
from functools import lru_cache
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from nkpredict.catalog import load_catalog
from nkpredict.vocabulary import LevelChoice, ScaleChoice

__all__ = [
    "OTHER_UNIT",
    "CallDetails",
    "DriverOut",
    "ErrorDetail",
    "ErrorResponse",
    "ExplainOptions",
    "ExplainRequest",
    "ExplainResponse",
    "Harmonization",
    "HealthResponse",
    "ModelInfo",
    "ModelRef",
    "PredictOptions",
    "PredictRequest",
    "PredictResponse",
    "Prediction",
    "ReadyResponse",
    "ReloadRequest",
    "ReloadResponse",
    "SampleExplanation",
    "error_responses",
    "example_samples",
    "explain_examples",
    "predict_examples",
]

OTHER_UNIT = "<other>"
"""Key under which /v1/explain sums the attributions of the units it does not list."""
PANEL_ALIASES = {"NCR3LG1": "B7-H6", "NECTIN2": "PVRL2"}
"""Genes the partial-panel example names by a common alias."""


# --------------------------------------------------------------------------- examples


@lru_cache(maxsize=1)
def example_samples() -> dict[str, dict[str, float]]:
    """Two samples over every NK catalogue gene, log2(TPM+1) values (OpenAPI examples).

    The genes are the catalogue's, so the example covers a model trained on simulated or real
    data fully; one sample has low NCR3LG1 (B7-H6) and high HLA-E (resistant-looking), the
    other the opposite.
    """
    genes = list(load_catalog().all_genes())
    rng = np.random.default_rng(7)
    base = np.round(rng.uniform(3.0, 9.0, size=len(genes)), 2)
    first = dict(zip(genes, base.tolist(), strict=True))
    second = dict(zip(genes, np.round(base[::-1] * 0.9 + 0.5, 2).tolist(), strict=True))
    first.update({"NCR3LG1": 0.8, "HLA-E": 10.4, "MICA": 2.1, "NLRC5": 8.9})
    second.update({"NCR3LG1": 7.6, "HLA-E": 4.2, "MICA": 7.3, "NLRC5": 3.0})
    return {"AML-0001": first, "MM-0002": second}


def _partial_panel() -> dict[str, Any]:
    """A targeted panel: three quarters of the catalogue genes of the first example sample,
    two of them under an alias and one not measured (``null``).

    It covers about 0.74 of a catalogue model's genes, above the default minimum coverage
    (:data:`~nkpredict.settings.DEFAULT_MIN_COVERAGE`), which the example leaves in force.
    """
    first = next(iter(example_samples().values()))
    panel: dict[str, float | None] = {
        PANEL_ALIASES.get(gene, gene): value
        for k, (gene, value) in enumerate(first.items())
        if k % 4 != 1
    }
    panel["HLA-G"] = None
    return {"samples": {"CL-01": panel}, "scale": "log"}


def predict_examples() -> dict[str, Any]:
    """Named OpenAPI examples of a /v1/predict body."""
    return {
        "catalogue_panel": {
            "summary": "Two samples, every NK catalogue gene, log2(TPM+1)",
            "value": {"samples": example_samples(), "scale": "log"},
        },
        "partial_panel": {
            "summary": "Three quarters of the catalogue, aliases (B7-H6), a gene not measured",
            "value": _partial_panel(),
        },
    }


def explain_examples() -> dict[str, Any]:
    """Named OpenAPI examples of a /v1/explain body."""
    return {
        "catalogue_panel": {
            "summary": "Attributions at gene, axis and pathway level, top 5 units each",
            "value": {"samples": example_samples(), "scale": "log", "top_n": 5},
        },
        "axis_only": {
            "summary": "Only the NK-axis level, all units",
            "value": {"samples": example_samples(), "level": "axis", "top_n": 50},
        },
    }


# --------------------------------------------------------------------------- requests


class PredictOptions(BaseModel):
    """Options of a prediction request (every body field but ``samples``)."""

    model_config = ConfigDict(extra="forbid")

    scale: ScaleChoice | None = Field(
        default=None,
        description="Scale of the values: raw counts, TPM-like, log2(x+1), or auto-detected. "
        "Default: the model's setting (normally auto).",
    )
    min_coverage: float | None = Field(
        default=None,
        ge=0.0,
        le=1.0,
        description="Least fraction of the model's catalogue genes each sample must have "
        "(default: the service's NKP_MIN_COVERAGE).",
    )


class ExplainOptions(PredictOptions):
    """Options of an explanation request."""

    level: LevelChoice = Field(
        default="all",
        description="Attribution level(s) returned: 'all' = gene, axis and pathway.",
    )
    top_n: int | None = Field(
        default=None,
        ge=1,
        le=100_000,
        description=f"Units listed per level, largest |attribution| first; the others are "
        f"summed under '{OTHER_UNIT}'. Default: the service's NKP_EXPLAIN_TOP_N.",
    )
    n_drivers: int = Field(
        default=5, ge=0, le=100, description="Top drivers described in words per sample."
    )


SamplesField = Field(
    description="Sample ID -> {gene identifier -> expression value}. Genes may be HGNC "
    "symbols, aliases (B7-H6), Ensembl or Entrez IDs; null = not measured.",
    min_length=1,
)


SampleValues = Annotated[
    dict[str, float | None],
    Field(min_length=1, description="Gene identifier -> expression value (at least one gene)."),
]


class PredictRequest(PredictOptions):
    """Body of ``POST /v1/predict`` (documentation; the route parses the body itself)."""

    samples: dict[str, SampleValues] = SamplesField


class ExplainRequest(ExplainOptions):
    """Body of ``POST /v1/explain`` (documentation; the route parses the body itself)."""

    samples: dict[str, SampleValues] = SamplesField


class ReloadRequest(BaseModel):
    """Optional body of ``POST /v1/admin/reload``."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"model_uri": "models:/nk-resistance@champion"}]},
    )

    model_uri: str | None = Field(
        default=None,
        min_length=1,
        description="Model to load instead of NKP_MODEL_URI (an MLflow URI or a directory).",
    )


# --------------------------------------------------------------------------- responses


class ModelRef(BaseModel):
    """Which model answered."""

    name: str | None = None
    version: str | None = None
    alias: str | None = None
    run_id: str | None = None
    uri: str


class CallDetails(BaseModel):
    """How sure a call is and whether the sample is like the training cohort."""

    calibrated_probability: float | None = Field(
        default=None,
        description="P(resistant) calibrated on out-of-fold predictions (null when the model "
        "has no calibration).",
    )
    prediction_set: list[str] | None = Field(
        default=None,
        description="Conformal prediction set at the model's level (see /v1/model): "
        "['resistant'], ['sensitive'] or both (then call is 'uncertain'); it contains the true "
        "label for that share of samples like the training cohort.",
    )
    interval_low: float | None = Field(
        default=None, description="Lower end of the conformal interval (regression)."
    )
    interval_high: float | None = Field(
        default=None, description="Upper end of the conformal interval (regression)."
    )
    out_of_domain: bool | None = Field(
        default=None,
        description="True when the sample fails a domain check: treat the call with care.",
    )
    domain_reasons: list[str] | None = Field(
        default=None,
        description="The checks failed: unseen_lineage, ambiguous_lineage, feature_range, "
        "distance, low_coverage, platform (see the README's 'Out of domain').",
    )
    lineage: str | None = Field(
        default=None, description="Lineage recognised from the lineage-program scores."
    )


class Prediction(CallDetails):
    """One sample's prediction."""

    sample_id: str
    probability: float | None = Field(
        default=None, description="P(resistant) (classification models)."
    )
    score: float | None = Field(default=None, description="Predicted readout (regression).")
    call: str = Field(
        description="'resistant', 'sensitive', 'uncertain' (the prediction set holds both), "
        "or 'n/a' (regression, no cut-off)."
    )
    coverage: float = Field(description="Fraction of the model's catalogue genes measured.")
    warnings: list[str] = Field(
        description="'low_coverage' (coverage below 0.9: a tenth or more of the catalogue genes "
        "were imputed with training medians) and 'imputed_genes' (some model genes were not "
        "measured); empty for a clean call."
    )
    imputed_genes: list[str] = Field(
        description="Model genes not measured in this sample, filled with training medians."
    )


class Harmonization(BaseModel):
    """What happened to the request's gene identifiers (lists capped at NKP_REPORT_MAX_ITEMS)."""

    n_input: int
    n_mapped: int
    n_renamed: int
    renamed: dict[str, str] = Field(description="Input identifier -> HGNC symbol.")
    n_unmapped: int
    unmapped: list[str]
    n_ambiguous: int
    ambiguous: dict[str, list[str]]
    n_collided: int
    collided: dict[str, list[str]] = Field(description="Symbol -> input IDs merged into it.")
    n_missing_model_genes: int
    missing_model_genes: list[str] = Field(
        description="Genes the model uses that no sample measured (imputed at training medians)."
    )
    truncated: bool = Field(description="True when a list or dict above was cut.")


class PredictResponse(BaseModel):
    """Answer of ``/v1/predict`` and ``/v1/predict/file``."""

    model: ModelRef
    task: str
    scale: str = Field(description="Scale the input was taken to be.")
    n_samples: int
    predictions: list[Prediction]
    harmonization: Harmonization


class DriverOut(BaseModel):
    """One unit's contribution, in words and numbers."""

    unit: str
    label: str
    contribution: float
    direction: str
    sentence: str


class SampleExplanation(CallDetails):
    """One sample's attributions: ``base_value + sum(attributions[level].values())`` equals
    ``model_output`` at every level (the '<other>' entry included)."""

    sample_id: str
    probability: float | None = None
    score: float | None = None
    call: str
    base_value: float
    model_output: float = Field(description="Raw model output (log-odds or readout).")
    coverage: float = Field(description="Fraction of the model's catalogue genes measured.")
    warnings: list[str] = Field(description="As in /v1/predict.")
    imputed_genes: list[str] = Field(
        description="Model genes not measured in this sample: their attributions come from the "
        "training medians and they never appear in top_drivers."
    )
    prior_part: float = Field(
        description="What the biological prior (a penalized linear model on the NK features) "
        "adds to base_value; trees_part is what the boosted trees add on top."
    )
    trees_part: float = Field(description="What the boosted trees add to base_value.")
    units: str = Field(description="Units of the attributions: 'log-odds' or the readout name.")
    attributions: dict[str, dict[str, float]] = Field(
        description=f"Level -> unit -> attribution (top_n units, the rest as '{OTHER_UNIT}')."
    )
    top_drivers: list[DriverOut]
    driver_sentences: list[str] = Field(
        default_factory=list,
        description="The n_drivers measured genes with the largest attributions in words: the "
        "value, its training percentile, the push in log-odds and the probability with the "
        "gene at its training median (an expression counterfactual of the model); then what "
        "any non-biological unit among top_drivers is (lineage programs, proliferation, "
        "coverage), and the imputed genes named once (never a sentence of their own).",
    )


class ExplainResponse(BaseModel):
    """Answer of ``/v1/explain``."""

    model: ModelRef
    task: str
    scale: str
    n_samples: int
    levels: list[str]
    top_n: int
    drivers_level: str
    explanations: list[SampleExplanation]
    harmonization: Harmonization


class ModelInfo(BaseModel):
    """Answer of ``/v1/model``."""

    model: ModelRef
    loaded_at: datetime
    task: str
    decision_threshold: float
    label_definition: dict[str, Any]
    training_data: dict[str, Any] | None = Field(
        default=None, description="Fingerprint of the training data (metadata 'data')."
    )
    metrics: dict[str, Any] | None = Field(default=None, description="Evaluation metrics.")
    n_features: int
    n_model_genes: int
    catalog_version: str
    training_scale: str | None = None
    nkpredict_version: str | None = None
    uncertainty: dict[str, Any] | None = Field(
        default=None,
        description="Probability calibration (method chosen on out-of-fold log loss), the "
        "conformal level, and each lineage's conformal threshold (Mondrian bins); null for "
        "models trained without cross-validation.",
    )
    domain: dict[str, Any] | None = Field(
        default=None,
        description="The out-of-domain checks: each check's threshold (fitted on held-out "
        "training folds), the quantile, the share of held-out training samples flagged, and "
        "the lineages the model recognises.",
    )
    per_lineage: dict[str, Any] | None = Field(
        default=None,
        description="Per-lineage performance: 'cross_validated' (out-of-fold scores inside "
        "each lineage) and 'leave_one_lineage_out' (each lineage predicted by a model that "
        "never saw it).",
    )


class HealthResponse(BaseModel):
    """Answer of ``/health``."""

    status: Literal["ok"] = "ok"


class ReadyResponse(BaseModel):
    """Answer of ``/ready`` when a model is loaded."""

    status: Literal["ready"] = "ready"
    model: ModelRef


class ReloadResponse(BaseModel):
    """Answer of a successful ``/v1/admin/reload``."""

    status: Literal["reloaded"] = "reloaded"
    model: ModelRef
    previous: ModelRef | None
    seconds: float


class ErrorDetail(BaseModel):
    """The content of every error answer."""

    code: str
    message: str
    details: Any = None


class ErrorResponse(BaseModel):
    """Every error answer: ``{"error": {"code", "message", "details"}}``."""

    error: ErrorDetail


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The OpenAPI ``responses`` entries of error ``statuses``: each has :class:`ErrorResponse`."""
    return {status: {"model": ErrorResponse} for status in statuses}
