"""Conformal sets and intervals: thresholds, Mondrian bins, coverage, persistence."""

from __future__ import annotations

import numpy as np
import pytest
from crepes import ConformalClassifier

from nkpredict.exceptions import InputError
from nkpredict.uncertainty.conformal import ConformalPredictor, conformal_threshold


def _calibration(n: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    p = rng.uniform(0.02, 0.98, n)
    y = (rng.uniform(size=n) < p).astype(int)
    bins = rng.choice(np.array(["B-cell", "myeloid", "T-cell"]), n, p=[0.5, 0.4, 0.1])
    return p, y, bins


def test_threshold_is_the_finite_sample_quantile() -> None:
    scores = np.arange(1, 20, dtype=float)  # n = 19
    assert conformal_threshold(scores, 0.9) == 18.0  # ceil(20 * 0.9) = 18th smallest
    assert conformal_threshold(scores[:5], 0.9) == np.inf  # too few scores: every label


def test_sets_match_crepes_mondrian_classifier() -> None:
    p, y, bins = _calibration(600, 0)
    predictor = ConformalPredictor.fit("classification", p, y, bins, level=0.9, min_bin_size=1)
    reference = ConformalClassifier().fit(np.where(y == 1, 1 - p, p), bins)
    test_p, _, test_bins = _calibration(400, 1)
    alphas = np.column_stack([test_p, 1 - test_p])  # nonconformity of sensitive, resistant
    expected = reference.predict_set(alphas, test_bins, confidence=0.9, smoothing=False)
    ours = predictor.sets(test_p, list(test_bins))
    for row, got, prob in zip(expected, ours, test_p, strict=True):
        labels = {
            label for label, inside in zip(("sensitive", "resistant"), row, strict=True) if inside
        }
        labels.add("resistant" if prob >= 0.5 else "sensitive")  # never empty
        assert set(got) == labels


def test_sets_cover_at_the_level_within_each_lineage() -> None:
    p, y, bins = _calibration(3000, 2)
    predictor = ConformalPredictor.fit("classification", p, y, bins, level=0.9)
    test_p, test_y, test_bins = _calibration(6000, 3)
    sets = predictor.sets(test_p, list(test_bins))
    truth = np.where(test_y == 1, "resistant", "sensitive")
    covered = np.array([t in s for t, s in zip(truth, sets, strict=True)])
    assert covered.mean() == pytest.approx(0.9, abs=0.02)
    for name in ("B-cell", "myeloid", "T-cell"):
        assert covered[test_bins == name].mean() >= 0.87


def test_small_and_unseen_bins_use_the_pooled_threshold() -> None:
    p, y, bins = _calibration(300, 4)
    predictor = ConformalPredictor.fit("classification", p, y, bins, min_bin_size=50)
    assert "T-cell" not in predictor.thresholds  # about 30 samples
    pooled = predictor.thresholds[""]
    assert predictor.threshold_of(["T-cell", "erythroid"], 2).tolist() == [pooled, pooled]
    assert predictor.bin_used(["T-cell", "B-cell"], 2) == ["", "B-cell"]


def test_uncertain_probabilities_get_both_labels() -> None:
    p, y, _ = _calibration(500, 5)
    predictor = ConformalPredictor.fit("classification", p, y)
    sets = predictor.sets(np.array([0.01, 0.5, 0.99]))
    assert sets[0] == ["sensitive"]
    assert sets[1] == ["resistant", "sensitive"]
    assert sets[2] == ["resistant"]


def test_regression_intervals_and_round_trip() -> None:
    rng = np.random.default_rng(6)
    predicted = rng.normal(size=400)
    y = predicted + rng.normal(scale=0.5, size=400)
    predictor = ConformalPredictor.fit("regression", predicted, y, level=0.8)
    low, high = predictor.intervals(np.array([0.0, 1.0]))
    assert np.allclose(high - low, 2 * predictor.thresholds[""])
    again = ConformalPredictor.from_dict(predictor.to_dict())
    assert again.thresholds[""] == pytest.approx(predictor.thresholds[""], abs=1e-6)
    assert again.at_level(0.5).thresholds[""] < again.thresholds[""]


def test_bad_levels_and_shapes_are_refused() -> None:
    with pytest.raises(InputError, match="level"):
        ConformalPredictor.fit("classification", np.array([0.2]), np.array([1]), level=1.5)
    with pytest.raises(InputError, match="one prediction per label"):
        ConformalPredictor.fit("classification", np.array([0.2, 0.3]), np.array([1]))
