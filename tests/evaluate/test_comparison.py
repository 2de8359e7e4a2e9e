"""The plain-language comparison with the best baseline follows the paired interval."""

from __future__ import annotations

import pytest

from nkpredict.evaluate.summary import comparison_sentence


def _metrics(difference: float, low: float, high: float) -> dict[str, float]:
    return {
        "cv_roc_auc": 0.85 + difference,
        "baseline_linear_cv_roc_auc": 0.85,
        "cv_roc_auc_minus_best_baseline": difference,
        "cv_roc_auc_minus_best_baseline_ci_low": low,
        "cv_roc_auc_minus_best_baseline_ci_high": high,
    }


@pytest.mark.parametrize(
    ("interval", "verdict"),
    [
        ((0.02, 0.01, 0.03), "better than"),
        ((-0.02, -0.03, -0.01), "worse than"),
        ((0.004, -0.01, 0.02), "not clearly different from"),
    ],
)
def test_verdict_follows_the_interval(interval: tuple[float, float, float], verdict: str) -> None:
    sentence = comparison_sentence(_metrics(*interval), "linear", "classification")
    assert f"nkpredict is {verdict} its best baseline (linear)" in sentence
    assert "0.850" in sentence


def test_lower_is_better_for_rmse() -> None:
    metrics = {
        "cv_rmse": 1.0,
        "baseline_linear_cv_rmse": 1.2,
        "cv_rmse_minus_best_baseline": -0.2,
        "cv_rmse_minus_best_baseline_ci_low": -0.3,
        "cv_rmse_minus_best_baseline_ci_high": -0.1,
    }
    assert "is better than" in comparison_sentence(metrics, "linear", "regression")


def test_no_baselines_no_sentence() -> None:
    assert comparison_sentence({"cv_roc_auc": 0.8}, None, "classification") == ""
