"""Probability calibration: choice of map, effect, persistence and the scikit-learn contract."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.utils.estimator_checks import check_estimator

from nkpredict.exceptions import InputError
from nkpredict.uncertainty.calibration import ProbabilityCalibrator


def _overconfident(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Log-odds twice as large as the truth's: a model that needs calibrating."""
    rng = np.random.default_rng(seed)
    true_logit = rng.normal(scale=1.5, size=n)
    y = (rng.uniform(size=n) < 1 / (1 + np.exp(-true_logit))).astype(int)
    return 2.0 * true_logit, y


def test_overconfident_log_odds_are_shrunk() -> None:
    margin, y = _overconfident(2000, 0)
    calibrator = ProbabilityCalibrator().fit(margin[:, None], y)
    assert calibrator.method_ in ("platt", "isotonic")
    assert calibrator.selection_[calibrator.method_] < calibrator.selection_["none"]
    if calibrator.method_ == "platt":
        assert calibrator.params_["slope"] == pytest.approx(0.5, abs=0.1)
    test_margin, test_y = _overconfident(2000, 1)
    raw = 1 / (1 + np.exp(-test_margin))
    calibrated = calibrator.calibrate(test_margin)
    assert np.mean((calibrated - test_y) ** 2) < np.mean((raw - test_y) ** 2)


def test_small_sets_never_use_isotonic() -> None:
    margin, y = _overconfident(30, 2)
    calibrator = ProbabilityCalibrator().fit(margin[:, None], y)
    assert calibrator.method_ in ("platt", "none") and "isotonic" not in calibrator.selection_


def test_calibrated_log_odds_are_kept_as_they_are() -> None:
    rng = np.random.default_rng(5)
    margin = rng.normal(scale=1.5, size=3000)
    y = (rng.uniform(size=3000) < 1 / (1 + np.exp(-margin))).astype(int)
    calibrator = ProbabilityCalibrator().fit(margin[:, None], y)
    chosen = calibrator.selection_[calibrator.method_]
    assert chosen == min(calibrator.selection_.values())
    assert chosen <= calibrator.selection_["none"]


def test_round_trip_gives_the_same_probabilities() -> None:
    margin, y = _overconfident(500, 3)
    for method in ("platt", "isotonic", "none"):
        calibrator = ProbabilityCalibrator(method).fit(margin[:, None], y)
        again = ProbabilityCalibrator.from_dict(calibrator.to_dict())
        assert np.allclose(again.calibrate(margin), calibrator.calibrate(margin))


def test_bad_inputs_are_refused() -> None:
    with pytest.raises(InputError, match="two classes"):
        ProbabilityCalibrator().fit(np.zeros((10, 1)), np.arange(10) % 3)
    with pytest.raises(InputError, match="calibration method"):
        ProbabilityCalibrator("beta").fit(np.zeros((10, 1)), np.arange(10) % 2)  # type: ignore[arg-type]


def test_columns_of_an_ensemble_are_averaged() -> None:
    margin, y = _overconfident(500, 4)
    single = ProbabilityCalibrator("platt").fit(margin[:, None], y)
    pair = ProbabilityCalibrator("platt").fit(np.column_stack([margin - 1, margin + 1]), y)
    assert pair.n_features_in_ == 2
    assert np.allclose(
        pair.predict_proba(np.column_stack([margin, margin])), single.predict_proba(margin[:, None])
    )


@pytest.mark.parametrize("method", ["auto", "platt", "isotonic"])
def test_scikit_learn_contract(method: str) -> None:
    # "none" is left out: it learns nothing by definition, so check_classifiers_train's
    # accuracy floor on arbitrary features cannot hold (it passes every other check)
    results = check_estimator(ProbabilityCalibrator(method), on_fail=None)  # type: ignore[arg-type]
    failed = [
        (r["check_name"], str(r["exception"])[:200]) for r in results if r["status"] == "failed"
    ]
    assert not failed, failed
