"""Uncertainty and domain fields over HTTP: /v1/predict, /v1/explain and /v1/model."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient

from nkpredict.model.fitted import NKResistanceModel
from nkpredict.simulate.nonblood import solid_tumour_profiles
from service.app import create_app
from service.config import ServiceSettings

if TYPE_CHECKING:
    from nkpredict.simulate.cohort import Cohort


@pytest.fixture(scope="module")
def client(
    service_cohort: Cohort, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[TestClient]:
    labels = service_cohort.labels
    model = NKResistanceModel(
        booster={"n_estimators": 10, "early_stopping_rounds": None, "n_jobs": 1}
    ).fit(service_cohort.counts, labels["resistant"], lineages=labels["lineage"])
    rng = np.random.default_rng(0)  # stand-in out-of-fold predictions
    noisy = np.clip(labels["true_probability"] + rng.normal(0, 0.1, len(labels)), 0.01, 0.99)
    model.fit_uncertainty(noisy, labels["resistant"], labels["lineage"], level=0.8)
    directory = model.save(tmp_path_factory.mktemp("calls") / "model")
    settings = ServiceSettings(
        model_uri=str(directory), api_key=None, admin_api_key=None, cors_origins=[]
    )
    with TestClient(create_app(settings)) as test_client:
        yield test_client


def _body(frame: pd.DataFrame) -> dict[str, Any]:
    return {"samples": {str(sid): row.to_dict() for sid, row in frame.iterrows()}}


def test_predictions_carry_sets_and_domain(client: TestClient, service_cohort: Cohort) -> None:
    answer = client.post("/v1/predict", json=_body(service_cohort.counts.iloc[:20]))
    assert answer.status_code == 200, answer.text
    for prediction in answer.json()["predictions"]:
        assert prediction["prediction_set"] in (
            ["resistant"],
            ["sensitive"],
            ["resistant", "sensitive"],
        )
        uncertain = len(prediction["prediction_set"]) == 2
        assert (prediction["call"] == "uncertain") == uncertain
        assert 0.0 <= prediction["calibrated_probability"] <= 1.0
        assert isinstance(prediction["out_of_domain"], bool)
        assert prediction["lineage"] in {"B-cell", "myeloid", "T-cell", "plasma cell"}


def test_non_blood_profiles_are_flagged(client: TestClient, service_cohort: Cohort) -> None:
    solid = solid_tumour_profiles(service_cohort.tpm.iloc[:10])
    answer = client.post("/v1/predict", json=_body(solid))
    assert answer.status_code == 200, answer.text
    flagged = [p for p in answer.json()["predictions"] if p["out_of_domain"]]
    assert len(flagged) >= 9
    assert all(p["domain_reasons"] for p in flagged)


def test_explanations_carry_them_too(client: TestClient, service_cohort: Cohort) -> None:
    answer = client.post("/v1/explain", json=_body(service_cohort.counts.iloc[:3]))
    assert answer.status_code == 200, answer.text
    for sample in answer.json()["explanations"]:
        assert sample["prediction_set"] and "out_of_domain" in sample


def test_model_info_describes_calibration_sets_and_domain(client: TestClient) -> None:
    info = client.get("/v1/model").json()
    assert info["uncertainty"]["conformal_level"] == 0.8
    assert info["uncertainty"]["calibration"]["method"] in ("platt", "isotonic", "none")
    assert set(info["uncertainty"]["mondrian_bins"]) >= {"B-cell", "myeloid"}
    assert set(info["domain"]["thresholds"]) >= {"distance", "platform", "unseen_lineage"}
    assert 0.0 <= info["domain"]["held_out_rate"] <= 0.1
