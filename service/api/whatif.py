"""``POST /v1/whatif``: expression counterfactuals of the served model.

Body: ``{"samples": {...}, "interventions": [...]}`` where each intervention is a built-in
name (:data:`nkpredict.vocabulary.INTERVENTIONS`) or an object ``{"name": ..., "genes":
{gene: target}}``, a target being a log2(TPM+1) value (a number or ``{"value": x}``), a
training percentile (``{"percentile": 75}``) or a reference (``{"reference": "sensitive"}``
for the gene's median among sensitive training samples, ``"median"`` for the training
median). The samples are read, prepared and checked exactly as by ``/v1/predict``.

The answer gives, per sample, the probability (or score) and log-odds as measured and after
each intervention, the changes, and their spread over the model's cross-validation or bagged
models (``null`` when it has none: ``notes`` says so). These are expression counterfactuals of
the fitted model, not pharmacology (``notes``). A direct route (:mod:`service.api.direct`):
it checks the API key itself.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from nkpredict.vocabulary import INTERVENTIONS, InterventionName, ReferencePoint
from nkpredict.whatif.counterfactual import whatif
from nkpredict.whatif.interventions import (
    Intervention,
    builtin_intervention,
    intervention_from_dict,
)
from service.answers import _harmonization, _model_inputs, dumps
from service.api.direct import DirectRoute, json_body_doc, json_response, require_json_content
from service.api.scoring import run_model_call
from service.bodies import parse_samples_body
from service.config import ServiceSettings
from service.deps import app_settings, current_model
from service.schemas import (
    Harmonization,
    ModelRef,
    PredictOptions,
    SamplesField,
    SampleValues,
    error_responses,
    example_samples,
)
from service.state import LoadedModel

__all__ = [
    "MAX_INTERVENTIONS",
    "GeneTargetIn",
    "InterventionIn",
    "WhatIfOptions",
    "WhatIfRequest",
    "WhatIfResponse",
    "router",
    "whatif_examples",
    "whatif_json",
]

MAX_INTERVENTIONS = 20
"""Most interventions in one request."""

router = APIRouter(prefix="/v1", route_class=DirectRoute)
"""``/v1/whatif``: a direct route (it checks the API key itself)."""


class GeneTargetIn(BaseModel):
    """What one gene is set to: exactly one of ``value``, ``percentile`` or ``reference``."""

    model_config = ConfigDict(extra="forbid")

    value: float | None = Field(default=None, description="log2(TPM+1) value.")
    percentile: float | None = Field(
        default=None, ge=0.0, le=100.0, description="Training-cohort percentile, 0-100."
    )
    reference: ReferencePoint | None = Field(
        default=None,
        description="'sensitive': the gene's median among training samples labelled "
        "sensitive; 'median': its training median.",
    )


class InterventionIn(BaseModel):
    """A user-defined intervention: genes set together in every sample."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=100)
    description: str = Field(default="", max_length=500)
    genes: dict[str, float | GeneTargetIn] = Field(
        min_length=1,
        max_length=200,
        description="Gene (symbol or alias) -> a log2(TPM+1) value or a target object.",
    )


class WhatIfOptions(PredictOptions):
    """Options of a what-if request (every body field but ``samples``)."""

    interventions: list[InterventionName | InterventionIn] = Field(
        default_factory=lambda: list[InterventionName | InterventionIn](INTERVENTIONS),
        min_length=1,
        max_length=MAX_INTERVENTIONS,
        description=f"Built-in names ({', '.join(INTERVENTIONS)}) or intervention objects; "
        "default: every built-in.",
    )


class WhatIfRequest(WhatIfOptions):
    """Body of ``POST /v1/whatif`` (documentation; the route parses the body itself)."""

    samples: dict[str, SampleValues] = SamplesField


class InterventionOut(BaseModel):
    """What an intervention set, for the served model's genes."""

    name: str
    description: str
    genes: dict[str, float] = Field(description="Gene -> the log2(TPM+1) value it was set to.")


class InterventionEffect(BaseModel):
    """One sample under one intervention."""

    intervention: str
    description: str
    genes: dict[str, float]
    after_probability: float | None = None
    delta_probability: float | None = None
    after_log_odds: float | None = None
    delta_log_odds: float | None = None
    delta_log_odds_spread: float | None = Field(
        default=None, description="SD over cross-validation/bagged models; null without them."
    )
    delta_probability_spread: float | None = None
    after_score: float | None = None
    delta_score: float | None = None
    delta_score_spread: float | None = None
    call: str
    imputed_targets: list[str] = Field(
        description="Genes it set that this sample had not measured (imputed before)."
    )


class SampleWhatIf(BaseModel):
    """One sample as measured and under each intervention."""

    sample_id: str
    baseline_probability: float | None = None
    baseline_log_odds: float | None = None
    baseline_score: float | None = None
    baseline_call: str
    interventions: list[InterventionEffect]


class WhatIfResponse(BaseModel):
    """Answer of ``/v1/whatif``."""

    model: ModelRef
    task: str
    scale: str
    n_samples: int
    notes: list[str] = Field(description="Expression counterfactuals, not pharmacology; spread.")
    n_models: int = Field(description="Models the spread comes from (0: no spread).")
    interventions: list[InterventionOut]
    results: list[SampleWhatIf]
    harmonization: Harmonization


def whatif_examples() -> dict[str, Any]:
    """Named OpenAPI examples of a /v1/whatif body."""
    samples = example_samples()
    return {
        "builtins": {
            "summary": "Two samples, two built-in interventions",
            "value": {
                "samples": samples,
                "scale": "log",
                "interventions": ["b7h6_restoration", "nkg2a_blockade"],
            },
        },
        "user_defined": {
            "summary": "Your own intervention: B7-H6 to the 90th percentile, HLA-E to 4.0",
            "value": {
                "samples": samples,
                "scale": "log",
                "interventions": [
                    {
                        "name": "b7h6_up_hla_e_down",
                        "genes": {"B7-H6": {"percentile": 90}, "HLA-E": {"value": 4.0}},
                    }
                ],
            },
        },
    }


def _intervention(item: InterventionName | InterventionIn) -> Intervention:
    if isinstance(item, str):
        return builtin_intervention(item)
    genes = {
        gene: target if isinstance(target, float) else target.model_dump(exclude_none=True)
        for gene, target in item.genes.items()
    }
    return intervention_from_dict(
        {"name": item.name, "description": item.description, "genes": genes}
    )


def whatif_json(loaded: LoadedModel, raw: bytes, settings: ServiceSettings) -> tuple[bytes, int]:
    """Parse, prepare, score every intervention and serialise one /v1/whatif body; the answer
    and its number of samples."""
    samples, options = parse_samples_body(
        raw, settings.max_samples, WhatIfOptions, loaded.model_genes, loaded.model.scale
    )
    interventions = [_intervention(item) for item in options.interventions]
    # every gene: the member models of the what-if spread may read genes the model does not
    inputs = _model_inputs(loaded, samples, options, settings, model_genes_only=False)
    result = whatif(loaded.model, inputs.prepared, interventions)
    payload: dict[str, Any] = {
        "model": loaded.model_ref(),
        "task": loaded.task,
        "scale": inputs.prepared.scale,
        "n_samples": len(result.sample_id),
        "notes": result.notes(),
        "n_models": result.n_models,
        "interventions": result.described_interventions(),
        "results": result.to_records(),
        "harmonization": _harmonization(inputs, settings.report_max_items),
    }
    return dumps(payload), len(result.sample_id)


@router.post(
    "/whatif",
    tags=["whatif"],
    summary="What-if: the model's prediction after interventions on the expression profile",
    response_model=None,
    responses={
        200: {"model": WhatIfResponse, "description": "Each sample under each intervention."},
        **error_responses(400, 401, 413, 415, 422, 503),
    },
    openapi_extra=json_body_doc(WhatIfRequest, whatif_examples()),
)
async def whatif_samples(request: Request) -> Response:
    """Each sample scored as measured and after each intervention (genes set to values,
    training percentiles or the sensitive reference), with the changes in probability and
    log-odds. Expression counterfactuals of the fitted model, not pharmacology."""
    require_json_content(request)
    loaded = current_model(request)
    settings = app_settings(request)
    raw = await request.body()
    content, n_samples = await run_model_call(
        settings, raw, "whatif", whatif_json, loaded, raw, settings
    )
    request.app.state.metrics.count_samples("whatif", n_samples)
    return json_response(content)
