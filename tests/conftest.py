"""Shared pytest fixtures. Each part of the project keeps its fixtures in its own section."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from nkpredict.simulate.cohort import Cohort

# =============================================================================================
# Service fixtures (tests/test_service.py, tests/test_service_uvicorn.py)
# A small real model trained on a simulated cohort, saved once per test session.
# =============================================================================================


@pytest.fixture(scope="session")
def service_cohort() -> Cohort:
    """A simulated cohort of 200 samples x 400 genes (raw counts), seed 1."""
    from nkpredict.simulate.cohort import simulate_cohort
    from nkpredict.simulate.config import SimulationConfig

    return simulate_cohort(SimulationConfig(n_samples=200, n_genes=400, seed=1))


@pytest.fixture(scope="session")
def service_model_dir(service_cohort: Cohort, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Directory of a fitted model (50 trees) with training metadata, as the service loads it."""
    # One XGBoost thread: as fast for 200 samples and immune to busy shared CI machines.
    from nkpredict.model.fitted import NKResistanceModel

    # 50 rounds on top of the prior, whatever the inner folds would choose: the fast paths
    # (compiled trees and TreeSHAP) are then exercised on a model that has trees.
    model = NKResistanceModel(
        booster={"n_estimators": 50, "early_stopping_rounds": None, "n_jobs": 1}
    ).fit(service_cohort.counts, service_cohort.labels["resistant"])
    model.metadata_ = {
        "data": {"n_samples": 200, "n_genes": 400, "sha256": "0" * 64},
        "metrics": {"roc_auc": 0.81, "roc_auc_ci": [0.74, 0.88], "brier": float("nan")},
    }
    return model.save(tmp_path_factory.mktemp("service-models") / "champion")


@pytest.fixture(scope="session")
def service_model_dir_b(service_cohort: Cohort, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A second, different model (5 trees, deeper), to see reloads change the answers."""
    from nkpredict.model.fitted import NKResistanceModel

    model = NKResistanceModel(
        booster={"n_estimators": 5, "max_depth": 5, "early_stopping_rounds": None, "n_jobs": 1}
    ).fit(service_cohort.counts, service_cohort.labels["resistant"])
    return model.save(tmp_path_factory.mktemp("service-models") / "challenger")
