"""TreeSHAP from precomputed path tables: the same values as XGBoost's ``pred_contribs``.

Covers :mod:`nkpredict.fast.shap`.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pytest
import xgboost as xgb

from nkpredict.fast import shap as compiled_shap
from nkpredict.fast.shap import SHAP_TOLERANCE, CompiledShap, compile_shap
from nkpredict.fast.trees import CompiledTrees, compile_trees, probe_rows
from nkpredict.model.fitted import NKResistanceModel

if TYPE_CHECKING:
    from nkpredict.simulate.cohort import Cohort

N_FEATURES = 4  # few features: deeper trees split on the same feature twice on a path


def _booster(objective: str, depth: int, seed: int) -> tuple[xgb.Booster, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(300, N_FEATURES)).astype(np.float32)
    signal = x[:, 0] - 0.5 * x[:, 1] * x[:, 2] + np.sin(2 * x[:, 3]) + rng.normal(size=300)
    y = signal if objective.startswith("reg") else (signal > 0.3).astype(np.float32)
    x[rng.random(x.shape) < 0.1] = np.nan
    params = {"objective": objective, "max_depth": depth, "nthread": 1, "seed": seed}
    return xgb.train(params, xgb.DMatrix(x, label=y), num_boost_round=20), x


def _pred_contribs(booster: xgb.Booster, values: np.ndarray) -> np.ndarray:
    return booster.predict(xgb.DMatrix(values, nthread=1), pred_contribs=True)


def _compiled(booster: xgb.Booster) -> tuple[CompiledShap, CompiledTrees]:
    shap = compile_shap(booster)
    trees = compile_trees(booster)
    assert shap is not None
    assert trees is not None
    return shap, trees


def _at_thresholds(trees: CompiledTrees, n_rows: int) -> np.ndarray:
    """Rows whose every split feature sits exactly on one of its thresholds."""
    rng = np.random.default_rng(1)
    rows = np.zeros((n_rows, trees.n_features), dtype=np.float32)
    split = trees.children[0::2] != np.arange(trees.feature.size)
    for j in range(trees.n_features):
        cuts = trees.threshold[split & (trees.feature == j)]
        if cuts.size:
            rows[:, j] = rng.choice(cuts, size=n_rows)
    return rows


def _inputs(x: np.ndarray, trees: CompiledTrees) -> dict[str, np.ndarray]:
    return {
        "training rows (with NaN)": x,
        "probe rows": probe_rows(trees, 200),
        "exactly at thresholds": _at_thresholds(trees, 50),
        "one row": x[:1],
        "all missing": np.full((2, x.shape[1]), np.nan, dtype=np.float32),
        "no missing value": np.nan_to_num(x),
        "float64 input": np.nan_to_num(x[:20]).astype(np.float64) + 1e-9,
    }


@pytest.mark.parametrize("objective", ["binary:logistic", "reg:squarederror"])
@pytest.mark.parametrize("depth", [1, 2, 3, 5])
def test_contributions_equal_pred_contribs(objective: str, depth: int) -> None:
    booster, x = _booster(objective, depth, seed=depth)
    shap, trees = _compiled(booster)
    for name, values in _inputs(x, trees).items():
        expected = _pred_contribs(booster, values)
        got = shap.contributions(values)
        assert got.dtype == np.float64
        assert got.shape == (values.shape[0], N_FEATURES), name
        np.testing.assert_allclose(got, expected[:, :-1], rtol=0, atol=SHAP_TOLERANCE, err_msg=name)
        np.testing.assert_allclose(expected[:, -1], shap.base_value, rtol=0, atol=SHAP_TOLERANCE)


@pytest.mark.parametrize("objective", ["binary:logistic", "reg:squarederror"])
def test_contributions_add_up_to_the_margin(objective: str) -> None:
    booster, x = _booster(objective, 3, seed=7)
    shap, trees = _compiled(booster)
    values = np.vstack([x, probe_rows(trees, 100)])
    total = shap.base_value + shap.contributions(values).sum(axis=1)
    np.testing.assert_allclose(total, trees.predict_margin(values), rtol=0, atol=SHAP_TOLERANCE)


def test_repeated_features_on_a_path_are_merged() -> None:
    booster, x = _booster("binary:logistic", 5, seed=5)
    shap, trees = _compiled(booster)
    cover = compiled_shap._covers(booster, trees.feature.size)
    assert cover is not None
    paths = [p for root in trees.roots for p in compiled_shap._tree_paths(trees, cover, int(root))]
    assert any(len(path.features) < len(path.nodes) for path in paths)
    assert max(len(path.nodes) for path in paths) == 5
    expected = _pred_contribs(booster, x)
    np.testing.assert_allclose(shap.contributions(x), expected[:, :-1], rtol=0, atol=SHAP_TOLERANCE)


def test_chunks_give_the_same_values(monkeypatch: pytest.MonkeyPatch) -> None:
    booster, x = _booster("binary:logistic", 3, seed=3)
    shap, _ = _compiled(booster)
    whole = shap.contributions(x)
    monkeypatch.setattr(compiled_shap, "CHUNK_CELLS", 1)  # one row at a time
    np.testing.assert_array_equal(shap.contributions(x), whole)


def test_shape_is_checked_and_empty_input_accepted() -> None:
    booster, _ = _booster("binary:logistic", 2, seed=2)
    shap, _ = _compiled(booster)
    with pytest.raises(ValueError, match="expected shape"):
        shap.contributions(np.zeros((1, 3), dtype=np.float32))
    with pytest.raises(ValueError, match="expected shape"):
        shap.contributions(np.zeros(N_FEATURES, dtype=np.float32))
    assert shap.contributions(np.zeros((0, N_FEATURES))).shape == (0, N_FEATURES)


def test_single_leaf_trees_only_have_a_bias() -> None:
    x = np.random.default_rng(0).normal(size=(50, 3)).astype(np.float32)
    params = {"objective": "reg:squarederror", "nthread": 1}
    booster = xgb.train(params, xgb.DMatrix(x, label=np.full(50, 2.0)), num_boost_round=3)
    shap = compile_shap(booster)
    assert shap is not None
    np.testing.assert_array_equal(shap.contributions(x[:4]), np.zeros((4, 3)))
    assert shap.base_value == pytest.approx(float(_pred_contribs(booster, x[:1])[0, -1]))


def test_named_features_are_compiled() -> None:
    booster, x = _booster("binary:logistic", 2, seed=4)
    named = xgb.Booster(model_file=booster.save_raw("json"))
    named.feature_names = [f"gene{j}" for j in range(N_FEATURES)]
    shap = compile_shap(named)
    assert shap is not None
    expected = _pred_contribs(booster, x)
    np.testing.assert_allclose(shap.contributions(x), expected[:, :-1], rtol=0, atol=SHAP_TOLERANCE)


@pytest.mark.parametrize(
    ("objective", "depth", "n_classes", "reason"),
    [
        ("multi:softprob", 2, 3, "trees could not be compiled"),
        ("binary:logistic", 7, 2, "depth 7"),
    ],
)
def test_unsupported_models_are_not_compiled(
    objective: str, depth: int, n_classes: int, reason: str, caplog: pytest.LogCaptureFixture
) -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2000, 8)).astype(np.float32)
    y = rng.integers(0, n_classes, size=2000).astype(np.float32)
    params: dict[str, object] = {"objective": objective, "max_depth": depth, "nthread": 1}
    if n_classes > 2:
        params["num_class"] = n_classes
    booster = xgb.train(params, xgb.DMatrix(x, label=y), num_boost_round=3)
    if depth > compiled_shap.MAX_DEPTH:
        trees = compile_trees(booster)
        assert trees is not None
        assert trees.depth == depth  # the labels are noise: the trees grow to full depth
    with caplog.at_level(logging.INFO, logger="nkpredict.fast.shap"):
        assert compile_shap(booster) is None
    assert reason in caplog.text


def test_inexact_tables_are_refused(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    booster, _ = _booster("binary:logistic", 2, seed=1)
    real = compiled_shap._build

    def off_by_a_little(trees: CompiledTrees, paths: list[compiled_shap._Path]) -> CompiledShap:
        compiled = real(trees, paths)
        compiled.table[:] += 3 * SHAP_TOLERANCE
        return compiled

    monkeypatch.setattr(compiled_shap, "_build", off_by_a_little)
    with caplog.at_level(logging.WARNING, logger="nkpredict.fast.shap"):
        assert compile_shap(booster) is None
    assert "differs from XGBoost" in caplog.text


def test_the_project_model_is_compiled(service_model_dir: Path, service_cohort: Cohort) -> None:
    model = NKResistanceModel.load(service_model_dir)
    booster = model.boosted_trees.booster_
    shap = compile_shap(booster)
    assert shap is not None
    values = np.asarray(model.features(model.prepare(service_cohort.counts.iloc[:20])))
    expected = _pred_contribs(booster, values.astype(np.float32))
    np.testing.assert_allclose(
        shap.contributions(values), expected[:, :-1], rtol=0, atol=SHAP_TOLERANCE
    )
