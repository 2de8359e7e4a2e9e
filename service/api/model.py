"""``GET /v1/model``: what model is served and how it was evaluated (API key)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Security

from service.deps import get_loaded_model, require_api_key
from service.schemas import ModelInfo, error_responses
from service.state import LoadedModel

__all__ = ["model_info", "router"]

router = APIRouter(prefix="/v1", dependencies=[Security(require_api_key)])


@router.get(
    "/model",
    response_model=ModelInfo,
    tags=["model"],
    summary="The model being served",
    responses=error_responses(401, 503),
)
async def model_info(loaded: LoadedModel = Depends(get_loaded_model)) -> dict[str, Any]:
    """Registered name, version, run, training-data fingerprint, label definition, metrics,
    number of features and catalogue version.

    The metrics are those of the training run: pooled (``cv_roc_auc``), within-lineage
    (``cv_within_lineage_roc_auc``) and leave-one-lineage-out (``lolo_roc_auc``) scores, every
    baseline on the same folds (``baseline_lineage_cv_roc_auc``,
    ``baseline_xgb_allgenes_cv_roc_auc`` ...) and the paired difference to the best one
    (``cv_roc_auc_minus_best_baseline``), each with ``_ci_low`` / ``_ci_high``.
    """
    return {"model": loaded.model_ref(), "loaded_at": loaded.loaded_at, **loaded.info}
