"""Uncertainty and domain fields of a fitted model's predictions, saved and loaded."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from nkpredict.model.fitted import NKResistanceModel
from nkpredict.simulate.cohort import Cohort, simulate_cohort


@pytest.fixture(scope="module")
def cohort() -> Cohort:
    return simulate_cohort(n_samples=160, n_genes=500, seed=21)


@pytest.fixture(scope="module")
def model(cohort: Cohort) -> NKResistanceModel:
    fitted = NKResistanceModel(
        booster={"n_estimators": 10, "early_stopping_rounds": None, "n_jobs": 1}
    ).fit(cohort.counts, cohort.labels["resistant"], lineages=cohort.labels["lineage"])
    # stand-in out-of-fold predictions: the truth's probabilities with noise
    rng = np.random.default_rng(0)
    truth = cohort.labels["true_probability"].to_numpy()
    noisy = np.clip(truth + rng.normal(scale=0.1, size=truth.size), 0.01, 0.99)
    return fitted.fit_uncertainty(noisy, cohort.labels["resistant"], cohort.labels["lineage"])


def test_predictions_carry_sets_calibration_and_domain(
    model: NKResistanceModel, cohort: Cohort
) -> None:
    table = model.predict_table(model.prepare(cohort.counts))
    for column in ("calibrated_probability", "prediction_set", "out_of_domain", "domain_reasons"):
        assert column in table.columns
    both = table["prediction_set"] == "resistant;sensitive"
    assert (table.loc[both, "call"] == "uncertain").all()
    single = ~both
    assert (table.loc[single, "call"] == table.loc[single, "prediction_set"]).all()
    assert table["calibrated_probability"].between(0, 1).all()


def test_save_and_load_keep_them(model: NKResistanceModel, cohort: Cohort, tmp_path: Path) -> None:
    loaded = NKResistanceModel.load(model.save(tmp_path / "m"))
    prepared = model.prepare(cohort.counts.iloc[:40])
    before, after = model.predict_table(prepared), loaded.predict_table(prepared)
    assert before["prediction_set"].tolist() == after["prediction_set"].tolist()
    assert before["domain_reasons"].tolist() == after["domain_reasons"].tolist()
    assert np.allclose(before["calibrated_probability"], after["calibrated_probability"])


def test_models_without_uncertainty_keep_their_calls(cohort: Cohort) -> None:
    plain = NKResistanceModel(
        booster={"n_estimators": 5, "early_stopping_rounds": None, "n_jobs": 1}
    ).fit(cohort.counts, cohort.labels["resistant"])
    records = plain.predictions(plain.prepare(cohort.counts.iloc[:5])).to_records()
    assert all(r["prediction_set"] is None and r["calibrated_probability"] is None for r in records)
    assert {r["call"] for r in records} <= {"resistant", "sensitive"}
    assert all(isinstance(r["out_of_domain"], bool) for r in records)


def test_regression_models_get_conformal_intervals(cohort: Cohort, tmp_path: Path) -> None:
    readout = cohort.labels["killing_auc"]
    model = NKResistanceModel(
        task="regression",
        booster={"n_estimators": 10, "early_stopping_rounds": None, "n_jobs": 1},
    ).fit(cohort.counts, readout, lineages=cohort.labels["lineage"])
    rng = np.random.default_rng(1)  # stand-in out-of-fold readouts
    noisy = readout.to_numpy() + rng.normal(scale=readout.std() / 2, size=readout.size)
    model.fit_uncertainty(noisy, readout, cohort.labels["lineage"], level=0.8)
    loaded = NKResistanceModel.load(model.save(tmp_path / "regression"))
    table = loaded.predict_table(loaded.prepare(cohort.counts.iloc[:30]))
    assert {"interval_low", "interval_high"} <= set(table.columns)
    assert "prediction_set" not in table.columns
    assert (table["interval_low"] < table["score"]).all()
    assert (table["score"] < table["interval_high"]).all()
    assert loaded.uncertainty is not None and loaded.uncertainty.calibrator is None
