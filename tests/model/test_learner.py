"""The default learner: boosted trees that start from the biological prior.

Old (format 1) models still load and score as before; prior-only models (zero rounds) score,
explain and save; the compiled path adds the prior like XGBoost's; explanations add up.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from nkpredict.explain.attributions import attributions, explain
from nkpredict.model.boosting import (
    DEFAULT_SCORE_WEIGHT,
    DEFAULT_TREE_BINS,
    MIN_TREE_BINS,
    MIN_TREE_SAMPLES,
    tree_bins,
)
from nkpredict.model.fitted import FORMAT_VERSION, MODEL_FILE, NKResistanceModel
from nkpredict.model.prior import PENALTIES, PRIOR_ALONE_PENALTIES
from nkpredict.simulate.cohort import Cohort, simulate_cohort
from nkpredict.simulate.config import SimulationConfig


@pytest.fixture(scope="module")
def cohort() -> Cohort:
    return simulate_cohort(SimulationConfig(n_samples=120, n_genes=300, seed=5))


def test_format_1_models_load_and_score_as_before(cohort: Cohort, tmp_path: Path) -> None:
    plain = NKResistanceModel(booster={"prior": False, "n_estimators": 30}).fit(
        cohort.counts, cohort.labels["resistant"]
    )
    assert plain.boosted_trees.prior_ is None
    directory = plain.save(tmp_path / "old")
    saved = json.loads((directory / MODEL_FILE).read_text())
    del saved["prior"]  # written exactly as format 1 was
    saved["format_version"] = 1
    (directory / MODEL_FILE).write_text(json.dumps(saved))
    loaded = NKResistanceModel.load(directory)
    assert loaded.boosted_trees.prior_ is None and not loaded.boosted_trees.prior
    np.testing.assert_array_equal(
        loaded.predict_margin(cohort.counts), plain.predict_margin(cohort.counts)
    )


def test_prior_and_trees_round_trip(cohort: Cohort, tmp_path: Path) -> None:
    model = NKResistanceModel(booster={"n_estimators": 30, "early_stopping_rounds": None}).fit(
        cohort.counts, cohort.labels["resistant"]
    )
    trees = model.boosted_trees
    assert trees.prior_ is not None and trees.n_rounds_ == 30
    directory = model.save(tmp_path / "new")
    assert json.loads((directory / MODEL_FILE).read_text())["format_version"] == FORMAT_VERSION
    loaded = NKResistanceModel.load(directory)
    np.testing.assert_array_equal(
        loaded.predict_margin(cohort.counts), model.predict_margin(cohort.counts)
    )
    # the output is the prior's margin plus what the trees add
    features = model.scorer.features(model.scorer.gene_values(model.prepare(cohort.counts)))
    np.testing.assert_allclose(
        model.scorer.margins(features),
        trees.prior_.margin(features) + trees.trees_margin(features),
        atol=1e-5,
    )


def test_compiled_and_xgboost_paths_agree_with_a_prior(cohort: Cohort) -> None:
    model = NKResistanceModel(booster={"n_estimators": 30, "early_stopping_rounds": None}).fit(
        cohort.counts, cohort.labels["resistant"]
    )
    scorer = model.scorer
    features = scorer.features(scorer.gene_values(model.prepare(cohort.counts)))
    one_by_one = np.concatenate([scorer.margins(features[i : i + 1]) for i in range(10)])
    np.testing.assert_array_equal(one_by_one, model.boosted_trees.predict_margin(features[:10]))


def test_prior_only_model_scores_explains_and_saves(cohort: Cohort, tmp_path: Path) -> None:
    model = NKResistanceModel(booster={"n_estimators": 0, "early_stopping_rounds": None}).fit(
        cohort.counts, cohort.labels["resistant"]
    )
    trees = model.boosted_trees
    assert trees.has_no_trees
    prepared = model.prepare(cohort.counts)
    features = model.scorer.features(model.scorer.gene_values(prepared))
    np.testing.assert_allclose(
        model.scorer.margins(features), trees.prior_.margin(features), atol=1e-5
    )
    explanation = explain(model, prepared)
    parts = explanation.parts()
    np.testing.assert_allclose(parts["trees_part"], 0.0, atol=1e-5)
    result = attributions(model, features)
    np.testing.assert_allclose(
        result.base_value + result.contributions.sum(axis=1), result.model_output, atol=1e-4
    )
    loaded = NKResistanceModel.load(model.save(tmp_path / "prior-only"))
    np.testing.assert_array_equal(
        loaded.predict_margin(cohort.counts), model.predict_margin(cohort.counts)
    )


def test_explanations_say_how_much_comes_from_each_part(cohort: Cohort) -> None:
    model = NKResistanceModel(booster={"n_estimators": 30, "early_stopping_rounds": None}).fit(
        cohort.counts, cohort.labels["resistant"]
    )
    explanation = explain(model, model.prepare(cohort.counts))
    parts = explanation.parts()
    beyond = explanation.model_output - explanation.base_value
    np.testing.assert_allclose(parts.sum(axis=1), beyond, atol=1e-6)
    assert (parts["prior_part"].abs() > 0).all() and (parts["trees_part"].abs() > 0).any()


def test_small_cohorts_get_the_prior_alone_and_larger_ones_checked_rounds() -> None:
    small = simulate_cohort(SimulationConfig(n_samples=36, n_genes=300, seed=2))
    model = NKResistanceModel().fit(small.counts, small.labels["resistant"])
    trees = model.boosted_trees
    # below MIN_TREE_SAMPLES: the prior alone, never the 800 unchecked rounds of the old rule
    assert trees.n_rounds_ == 0 and trees.has_no_trees and trees.inner_gain_ is None
    assert small.counts.shape[0] < MIN_TREE_SAMPLES
    checked = NKResistanceModel(booster={"min_tree_samples": 30}).fit(
        small.counts, small.labels["resistant"]
    )
    assert checked.boosted_trees.n_rounds_ < checked.boosted_trees.n_estimators
    assert checked.boosted_trees.inner_gain_ is not None
    # a prior that stands alone takes its own penalty; one that trees start from, the default
    assert trees.prior_.penalty_ == PRIOR_ALONE_PENALTIES[0] != PENALTIES[0]
    assert checked.boosted_trees.prior_.penalty_ == PENALTIES[0]


def test_trees_use_the_model_s_histogram_bins() -> None:
    from nkpredict.model.boosting import BoostedTrees

    assert BoostedTrees().xgb_params()["max_bin"] == DEFAULT_TREE_BINS < 256
    assert BoostedTrees(max_bin=256).xgb_params()["max_bin"] == 256


@pytest.mark.parametrize(("n_samples", "bins"), [(96, 24), (40 * 4, 40), (300, 64), (2000, 64)])
def test_a_small_cohort_s_trees_use_fewer_bins(n_samples: int, bins: int) -> None:
    """Every boosting run of a fit (inner folds and the final fit) uses the bins of the fit's
    training samples: one per 4 samples below ``4 * max_bin``."""
    import xgboost as xgb

    from nkpredict.model.boosting import BoostedTrees, BoostingData, use_trainer

    seen: list[tuple[int, int]] = []

    def recording(
        params: dict[str, Any],
        train: BoostingData,
        rounds: int,
        validation: BoostingData | None,
        patience: int | None,
    ) -> Any:
        seen.append((params["max_bin"], train.y.shape[0]))
        matrix = train.dmatrix(1)
        evals = [] if validation is None else [(validation.dmatrix(1), "validation")]
        return xgb.train(
            params, matrix, rounds, evals=evals, early_stopping_rounds=patience, verbose_eval=False
        )

    rng = np.random.default_rng(4)
    x = rng.normal(size=(n_samples, 12))
    y = (x[:, 0] * x[:, 1] + rng.normal(scale=0.5, size=n_samples) > 0).astype(int)
    with use_trainer(recording):
        BoostedTrees(n_estimators=30).fit(x, y)
    assert len(seen) == 6  # five inner folds and the final fit
    assert {used for used, _ in seen} == {bins}
    assert seen[-1][1] == n_samples
    assert tree_bins(DEFAULT_TREE_BINS, 10) == MIN_TREE_BINS
    assert tree_bins(8, 1000) == 8


def test_score_features_weigh_less_in_the_prior(cohort: Cohort) -> None:
    """Axis, load and pathway scores get the prior weight ``score_weight``; genes keep 1."""
    matrix = NKResistanceModel().prepare(cohort.counts).matrix
    y = cohort.labels["resistant"]
    fitted = {
        weight: NKResistanceModel(booster={"score_weight": weight, "n_estimators": 10})
        .core()
        .fit(matrix, y)
        for weight in (DEFAULT_SCORE_WEIGHT, 1.0)
    }
    names = fitted[1.0][:-1].get_feature_names_out()
    trees = fitted[DEFAULT_SCORE_WEIGHT][-1]
    weights = trees.prior_weights()
    assert weights is not None and DEFAULT_SCORE_WEIGHT < 1.0
    for name, weight in zip(names, weights, strict=True):
        score = name.split(":")[0] in ("axis", "load", "pathway")
        assert weight == (DEFAULT_SCORE_WEIGHT if score else 1.0)
    np.testing.assert_allclose(trees.prior_.scale_ * weights, fitted[1.0][-1].prior_.scale_)


@pytest.mark.parametrize("max_bin", [64, 256])
def test_hist_runs_grow_the_trees_of_a_plain_matrix(
    max_bin: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Boosting on quantized matrices (validation quantized on the training bins) grows
    exactly the trees that plain DMatrix inputs grow, missing values included."""
    import xgboost as xgb

    from nkpredict.model import boosting
    from nkpredict.model.boosting import BoostingData, boost

    built: list[type] = []
    dmatrix = BoostingData.dmatrix

    def recording(self: BoostingData, *args: object, **kwargs: object) -> xgb.DMatrix:
        matrix = dmatrix(self, *args, **kwargs)  # type: ignore[arg-type]
        built.append(type(matrix))
        return matrix

    monkeypatch.setattr(BoostingData, "dmatrix", recording)
    monkeypatch.setattr(boosting, "QUANTIZED_MIN_CELLS", 0)  # this small matrix: quantized

    rng = np.random.default_rng(3)
    x = rng.normal(size=(300, 40)).astype(np.float32)
    x[rng.random(x.shape) < 0.05] = np.nan
    y = (np.nan_to_num(x[:, 0]) + rng.normal(size=300) > 0).astype(np.float32)
    margin = rng.normal(scale=0.3, size=300)
    fit, held_out = (
        BoostingData(x[:240], y[:240], margin[:240]),
        BoostingData(x[240:], y[240:], margin[240:]),
    )
    params = {
        "objective": "binary:logistic",
        "eval_metric": "logloss",
        "tree_method": "hist",
        "max_depth": 3,
        "eta": 0.1,
        "subsample": 0.8,
        "colsample_bytree": 0.5,
        "max_bin": max_bin,
        "seed": 0,
        "nthread": 1,
    }
    ours = boost(params, fit, 200, held_out, 20)
    assert built == [xgb.QuantileDMatrix, xgb.QuantileDMatrix]
    plain = xgb.train(
        params,
        xgb.DMatrix(fit.x, label=fit.y, base_margin=fit.base_margin),
        200,
        evals=[(xgb.DMatrix(held_out.x, label=held_out.y, base_margin=held_out.base_margin), "v")],
        early_stopping_rounds=20,
        verbose_eval=False,
    )
    assert ours.best_iteration == plain.best_iteration
    np.testing.assert_array_equal(
        ours.inplace_predict(x, predict_type="margin"),
        plain.inplace_predict(x, predict_type="margin"),
    )
    built.clear()
    monkeypatch.setattr(boosting, "QUANTIZED_MIN_CELLS", x.size + 1)  # small: a plain matrix
    boost(params, fit, 5, held_out, 2)
    assert built == [xgb.DMatrix, xgb.DMatrix]
