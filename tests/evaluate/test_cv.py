"""Tests for nkpredict.evaluate: folds, metrics, baselines, CV summary and leakage."""

from __future__ import annotations

import logging
import warnings
from typing import Any

import joblib
import numpy as np
import pandas as pd
import pytest
from scipy.stats import spearmanr
from sklearn.dummy import DummyClassifier
from sklearn.metrics import (
    average_precision_score,
    balanced_accuracy_score,
    brier_score_loss,
    roc_auc_score,
)

from nkpredict.catalog import load_catalog
from nkpredict.evaluate.baselines import SignatureScoreEstimator, baseline_estimators
from nkpredict.evaluate.cv import (
    MODEL_NAME,
    CVResult,
    cross_validate,
    fit_plan,
    fit_with_groups,
    leave_one_group_out,
    paired_difference,
)
from nkpredict.evaluate.folds import CVConfig, Fold, make_folds
from nkpredict.evaluate.metrics import (
    bootstrap_indices,
    calibration_table,
    classification_metrics,
    group_bootstrap_indices,
    oracle_metrics,
    regression_metrics,
    resample_counts,
    weighted_roc_auc,
)
from nkpredict.evaluate.summary import evaluation_summary
from nkpredict.exceptions import InputError, LabelError
from nkpredict.model.boosting import BoostedTrees
from nkpredict.model.fitted import NKResistanceModel

CATALOG_GENES = list(load_catalog().all_genes())
LIGANDS = list(load_catalog().symbols)
FAST_BOOSTER = {"n_estimators": 100, "n_jobs": 1}  # small data: threads only add overhead


def expression(
    n_samples: int, n_noise: int, seed: int, catalog_genes: list[str] = CATALOG_GENES
) -> pd.DataFrame:
    """Prepared-looking log2(TPM+1) matrix: catalogue genes plus ``n_noise`` filler genes."""
    rng = np.random.default_rng(seed)
    genes = catalog_genes + [f"FILLER{i}" for i in range(n_noise)]
    values = rng.normal(5.0, 1.5, size=(n_samples, len(genes))).clip(0.0)
    index = pd.Index([f"S{i:03d}" for i in range(n_samples)], name="sample_id")
    return pd.DataFrame(values, index=index, columns=genes)


def true_logit(X: pd.DataFrame) -> pd.Series:
    """Resistance rises with HLA-E and falls with NCR3LG1 (B7-H6)."""
    z = (X - X.mean()) / X.std()
    return 2.0 * z["HLA-E"] - 2.0 * z["NCR3LG1"]


def binary_cohort(n_samples: int = 120, n_noise: int = 100, seed: int = 0):
    X = expression(n_samples, n_noise, seed)
    probability = 1.0 / (1.0 + np.exp(-true_logit(X)))
    y = pd.Series(np.random.default_rng(seed + 1).random(n_samples) < probability, index=X.index)
    return X, y.astype(int).rename("resistant"), probability


def nk_core(task: str = "classification", n_genome_genes: int = 0, genome_alpha=None):
    return NKResistanceModel(
        task=task, n_genome_genes=n_genome_genes, genome_alpha=genome_alpha, booster=FAST_BOOSTER
    ).core()


def expected_names(task: str, estimators: list[str]) -> set[str]:
    metrics = (
        ["roc_auc", "pr_auc", "brier", "balanced_accuracy"]
        if task == "classification"
        else ["rmse", "spearman"]
    )
    fold_sd = "roc_auc_fold_sd" if task == "classification" else "rmse_fold_sd"
    names = set()
    for estimator in estimators:
        prefix = "cv_" if estimator == "nkpredict" else f"baseline_{estimator}_cv_"
        for metric in metrics:
            names |= {f"{prefix}{metric}", f"{prefix}{metric}_ci_low", f"{prefix}{metric}_ci_high"}
        names.add(prefix + fold_sd)
    return names


@pytest.fixture(scope="module")
def classification_run():
    X, y, probability = binary_cohort()
    folds = make_folds(y, None, CVConfig(n_splits=4, n_repeats=2, random_state=3), "classification")
    estimators = {
        MODEL_NAME: nk_core,
        **baseline_estimators("classification", n_jobs=1),
        "chance": lambda: DummyClassifier(strategy="uniform"),
    }
    messages: list[str] = []
    result = cross_validate(estimators, X, y, folds, "classification", progress=messages.append)
    return X, y, probability, folds, result, messages


# ---------------------------------------------------------------------------- folds


def assert_partitions(folds: list[Fold], n_samples: int, n_repeats: int) -> None:
    assert {f.repeat for f in folds} == set(range(n_repeats))
    for repeat in range(n_repeats):
        tests = np.concatenate([f.test for f in folds if f.repeat == repeat])
        assert np.array_equal(np.sort(tests), np.arange(n_samples))
    for fold in folds:
        assert np.intersect1d(fold.train, fold.test).size == 0
        assert fold.train.size + fold.test.size == n_samples


@pytest.mark.parametrize("task", ["classification", "regression"])
def test_folds_partition_samples_in_every_repeat(task):
    y = pd.Series(np.arange(50) % 2, index=[f"S{i}" for i in range(50)], dtype=float)
    folds = make_folds(y, None, CVConfig(n_splits=5, n_repeats=3), task)
    assert len(folds) == 15
    assert_partitions(folds, 50, 3)
    assert not np.array_equal(folds[0].test, folds[5].test)


@pytest.mark.parametrize("task", ["classification", "regression"])
def test_grouped_folds_never_split_a_group(task):
    rng = np.random.default_rng(1)
    index = [f"S{i}" for i in range(90)]
    y = pd.Series(rng.integers(0, 2, 90), index=index)
    groups = pd.Series([f"G{i % 15}" for i in range(90)], index=index)
    folds = make_folds(y, groups.sample(frac=1.0, random_state=0), CVConfig(5, 2, 7), task)
    assert_partitions(folds, 90, 2)
    labels = groups.to_numpy()
    for fold in folds:
        assert not set(labels[fold.train]) & set(labels[fold.test])
    first, second = ([set(labels[f.test]) for f in folds if f.repeat == r] for r in (0, 1))
    assert sorted(map(sorted, first)) != sorted(map(sorted, second))


def test_few_groups_fall_back_to_leave_one_group_out(caplog):
    index = [f"S{i}" for i in range(30)]
    y = pd.Series(np.arange(30) % 2, index=index)
    groups = pd.Series([f"L{i % 3}" for i in range(30)], index=index)
    with caplog.at_level(logging.WARNING, logger="nkpredict.evaluate.folds"):
        folds = make_folds(y, groups, CVConfig(n_splits=5, n_repeats=3), "classification")
    assert "leave-one-group-out" in caplog.text
    assert len(folds) == 3
    assert_partitions(folds, 30, 1)
    assert [groups.iloc[f.test].nunique() for f in folds] == [1, 1, 1]


def test_make_folds_rejects_unusable_targets():
    index = [f"S{i}" for i in range(20)]
    with pytest.raises(LabelError):
        make_folds(pd.Series(np.zeros(20, int), index=index), None, CVConfig(), "classification")
    with pytest.raises(InputError):
        make_folds(pd.Series(np.arange(20) % 2, index=index), None, CVConfig(), "survival")
    with pytest.raises(InputError):
        make_folds(
            pd.Series(np.arange(20) % 2, index=index),
            pd.Series(["A"] * 10, index=index[:10]),
            CVConfig(),
            "classification",
        )
    with pytest.raises(InputError):
        CVConfig(n_splits=1)


# ---------------------------------------------------------------------------- metrics


def test_classification_metrics_match_sklearn():
    rng = np.random.default_rng(2)
    y = rng.integers(0, 2, 200)
    p = np.round(np.clip(0.3 * y + rng.random(200) * 0.7, 0, 1), 1)  # many ties
    metrics = classification_metrics(y, p)
    assert metrics["roc_auc"] == pytest.approx(roc_auc_score(y, p))
    assert metrics["pr_auc"] == pytest.approx(average_precision_score(y, p))
    assert metrics["brier"] == pytest.approx(brier_score_loss(y, p))
    assert metrics["balanced_accuracy"] == pytest.approx(balanced_accuracy_score(y, p >= 0.5))


def test_undefined_metrics_are_nan_and_missing_predictions_skipped():
    one_class = classification_metrics([1, 1, 1], [0.2, 0.9, 0.7])
    assert np.isnan(one_class["roc_auc"]) and np.isnan(one_class["balanced_accuracy"])
    assert one_class["brier"] == pytest.approx(np.mean([0.64, 0.01, 0.09]))
    with_gap = classification_metrics([0, 1, 1, 0], [0.1, 0.9, np.nan, 0.2])
    assert with_gap["roc_auc"] == 1.0
    with pytest.raises(LabelError):
        classification_metrics([0, 2], [0.1, 0.9])


def test_regression_metrics_match_scipy():
    rng = np.random.default_rng(3)
    y = rng.normal(size=80)
    p = y + rng.normal(size=80)
    metrics = regression_metrics(y, p)
    assert metrics["rmse"] == pytest.approx(np.sqrt(np.mean((y - p) ** 2)))
    assert metrics["spearman"] == pytest.approx(spearmanr(y, p).statistic)
    assert np.isnan(regression_metrics(y, np.ones(80))["spearman"])


def test_calibration_table_uses_quantile_bins():
    rng = np.random.default_rng(4)
    p = rng.random(203)
    y = (rng.random(203) < p).astype(int)
    table = calibration_table(y, p, n_bins=10)
    assert list(table.columns) == ["bin", "mean_predicted", "fraction_positive", "count"]
    assert len(table) == 10 and table["count"].sum() == 203
    assert table["count"].between(20, 21).all()
    assert table["mean_predicted"].is_monotonic_increasing
    tied = calibration_table([0, 1, 1, 0], [0.5, 0.5, 0.5, 0.5])
    assert tied[["count", "fraction_positive"]].values.tolist() == [[4, 0.5]]


def test_oracle_metrics_score_the_generator_probabilities():
    X, y, probability = binary_cohort(seed=5)
    oracle = oracle_metrics(y, probability, "classification")
    assert set(oracle) == {"oracle_roc_auc", "oracle_pr_auc", "oracle_brier"}
    reference = classification_metrics(y, probability)
    assert oracle["oracle_roc_auc"] == pytest.approx(reference["roc_auc"])
    assert oracle["oracle_roc_auc"] > 0.8
    readout = true_logit(X)
    assert set(oracle_metrics(readout, readout, "regression")) == {
        "oracle_rmse",
        "oracle_spearman",
    }


# ---------------------------------------------------------------------------- CV


@pytest.mark.integration  # a whole cross-validation with every baseline
def test_summary_has_exactly_the_contract_names(classification_run):
    *_, result, _ = classification_run
    summary = result.summary(n_bootstrap=200)
    contract = {
        "cv_roc_auc",
        "cv_roc_auc_ci_low",
        "cv_roc_auc_ci_high",
        "cv_roc_auc_fold_sd",
        "cv_pr_auc",
        "cv_brier",
        "cv_balanced_accuracy",
        "baseline_linear_cv_roc_auc",
        "baseline_signature_cv_roc_auc",
        "baseline_xgb_allgenes_cv_roc_auc",
        "baseline_linear_cv_brier_ci_high",
    }
    assert contract <= set(summary)
    names = [MODEL_NAME, "linear", "signature", "lineage", "xgb_allgenes", "chance"]
    assert set(summary) == expected_names("classification", names)
    assert all(isinstance(v, float) for v in summary.values())


def test_intervals_contain_the_point_estimate(classification_run):
    *_, result, _ = classification_run
    summary = result.summary(n_bootstrap=300, seed=1)
    for name, value in summary.items():
        if name.endswith(("_ci_low", "_ci_high", "_fold_sd")) or name.startswith("baseline_chance"):
            continue
        assert summary[f"{name}_ci_low"] <= value <= summary[f"{name}_ci_high"], name
    assert summary["cv_roc_auc_fold_sd"] > 0


def test_model_beats_chance_and_baselines_are_scored(classification_run):
    _, y, probability, folds, result, messages = classification_run
    assert len(messages) == 6 * len(folds)
    assert len(result.predictions) == 6 * 2 * len(y)
    pooled = result.pooled(MODEL_NAME)
    assert pooled.index.tolist() == y.index.tolist()
    assert pooled["y_true"].tolist() == y.tolist()
    summary = result.summary(n_bootstrap=200)
    assert summary["cv_roc_auc"] > 0.68
    assert (
        summary["cv_roc_auc"] < oracle_metrics(y, probability, "classification")["oracle_roc_auc"]
    )
    assert summary["cv_roc_auc_ci_low"] > 0.6
    assert summary["baseline_signature_cv_roc_auc"] > 0.6
    assert summary["baseline_linear_cv_roc_auc"] > 0.6
    assert summary["baseline_chance_cv_roc_auc"] == pytest.approx(0.5)
    assert summary["baseline_chance_cv_brier"] == pytest.approx(0.25)
    versus_chance = paired_difference(result, MODEL_NAME, "chance", n_bootstrap=300)
    assert versus_chance["difference"] > 0.15 and versus_chance["ci_low"] > 0
    assert versus_chance["p_not_better"] < 0.05
    brier = paired_difference(result, MODEL_NAME, "chance", metric="brier", n_bootstrap=300)
    assert brier["difference"] < 0 and brier["p_not_better"] < 0.05


def test_fold_metrics_are_long_and_per_fold(classification_run):
    *_, folds, result, _ = classification_run
    table = result.fold_metrics
    assert list(table.columns) == ["estimator", "repeat", "fold", "metric", "value"]
    assert len(table) == 6 * len(folds) * 4
    per_repeat = result.repeat_metrics(MODEL_NAME)
    assert per_repeat.shape == (2, 4)


def test_single_class_training_fold_is_skipped_not_raised(caplog):
    X, y, _ = binary_cohort(n_samples=40, n_noise=0)
    y = y.sort_values(kind="stable")
    X = X.loc[y.index]
    n_negative = int((y == 0).sum())
    all_rows = np.arange(len(y))
    folds = [
        Fold(0, 0, all_rows[:n_negative], all_rows[n_negative:]),  # trains on class 0 only
        Fold(0, 1, all_rows[n_negative:], all_rows[:n_negative]),  # trains on class 1 only
    ]
    with caplog.at_level(logging.WARNING, logger="nkpredict.evaluate.cv"):
        result = cross_validate(
            baseline_estimators("classification", n_jobs=1), X, y, folds, "classification"
        )
    assert "single class" in caplog.text
    assert result.predictions["y_pred"].isna().all()
    assert result.fold_metrics["value"].isna().all()
    assert np.isnan(result.summary(n_bootstrap=10)["baseline_linear_cv_roc_auc"])


def test_cross_validate_checks_alignment():
    X, y, _ = binary_cohort(n_samples=30, n_noise=0)
    folds = make_folds(y, None, CVConfig(3, 1), "classification")
    shuffled = cross_validate(
        {"signature": lambda: SignatureScoreEstimator()}, X.iloc[::-1], y, folds, "classification"
    )
    straight = cross_validate(
        {"signature": lambda: SignatureScoreEstimator()}, X, y, folds, "classification"
    )
    pd.testing.assert_frame_equal(shuffled.predictions, straight.predictions)
    with pytest.raises(LabelError):
        cross_validate({"s": SignatureScoreEstimator}, X.iloc[1:], y, folds, "classification")
    with pytest.raises(InputError):
        cross_validate({}, X, y, folds, "classification")
    assert isinstance(straight, CVResult)


@pytest.mark.integration  # a whole cross-validation with every baseline
def test_regression_path():
    X = expression(100, 50, seed=6)
    readout = true_logit(X) + np.random.default_rng(7).normal(0, 0.5, len(X))
    folds = make_folds(readout, None, CVConfig(n_splits=4, n_repeats=1), "regression")
    estimators = {
        MODEL_NAME: lambda: nk_core("regression"),
        **baseline_estimators("regression", n_jobs=1),
    }
    result = cross_validate(estimators, X, readout, folds, "regression")
    summary = result.summary(n_bootstrap=200)
    assert set(summary) == expected_names(
        "regression", [MODEL_NAME, "linear", "signature", "lineage", "xgb_allgenes"]
    )
    assert {"cv_rmse", "cv_spearman", "baseline_linear_cv_rmse"} <= set(summary)
    assert summary["cv_spearman"] > 0.5
    assert summary["cv_rmse"] < readout.std()
    assert summary["cv_spearman_ci_low"] <= summary["cv_spearman"] <= summary["cv_spearman_ci_high"]
    assert np.isfinite(summary["baseline_signature_cv_spearman"])


def test_leave_one_group_out_reports_each_group_and_all():
    X, y, _ = binary_cohort(n_samples=120, n_noise=0, seed=8)
    lineage = pd.Series(np.where(np.arange(120) % 2, "AML", "CML"), index=X.index)
    lineage[y.index[y == 0][:15]] = "MM"  # a group with one class: roc_auc undefined there
    table = leave_one_group_out(nk_core, X, y, lineage, "classification")
    assert table["group"].tolist() == ["AML", "CML", "MM", "ALL"]
    assert table["n"].tolist() == [*(int((lineage == g).sum()) for g in ("AML", "CML")), 15, 120]
    assert table["n_resistant"].tolist() == [
        *(int(y[lineage == g].sum()) for g in ("AML", "CML", "MM")),
        int(y.sum()),
    ]
    by_group = table.set_index("group")
    assert np.isnan(by_group.loc["MM", "roc_auc"])
    assert np.isfinite(by_group.loc["MM", "brier"])
    assert by_group.loc[["AML", "CML", "ALL"], "roc_auc"].gt(0.65).all()
    assert {"pr_auc", "brier", "balanced_accuracy"} <= set(table.columns)


# ---------------------------------------------------------------------------- leakage


@pytest.mark.integration  # a whole cross-validation with every baseline
def test_genome_wide_selection_inside_folds_does_not_leak():
    """Pure-noise labels: in-fold selection stays at chance, selection on all data does not.

    Only the catalogue ligands are measured besides the 2,000 noise genes, so the 20 leaked
    genes are not drowned among the pathway features. The top 20 by correlation are taken
    (``genome_alpha=None``): the residual screen would keep none of these genes.
    """
    X = expression(120, 2000, seed=10, catalog_genes=LIGANDS)
    y = pd.Series(np.random.default_rng(11).permutation(np.arange(120) % 2), index=X.index)
    folds = make_folds(y, None, CVConfig(n_splits=5, n_repeats=3, random_state=0), "classification")

    def factory():
        return nk_core(n_genome_genes=20)

    honest = cross_validate({MODEL_NAME: factory}, X, y, folds, "classification")
    honest_auc = honest.repeat_metrics(MODEL_NAME)["roc_auc"].mean()

    filler = X.columns[len(LIGANDS) :]
    corr = X[filler].apply(lambda column: np.corrcoef(column, y)[0, 1]).abs()
    chosen = corr.nlargest(20).index.tolist()  # selected on ALL samples: leaks the test folds
    leaky = cross_validate({MODEL_NAME: factory}, X[LIGANDS + chosen], y, folds, "classification")
    leaky_auc = leaky.repeat_metrics(MODEL_NAME)["roc_auc"].mean()

    assert abs(honest_auc - 0.5) < 0.12, honest_auc
    assert leaky_auc > 0.65, leaky_auc


# ---------------------------------------------------------------------------- issue 12


def test_group_bootstrap_resamples_whole_groups():
    groups = np.repeat(np.array(["A", "B", "C", "D", "E"], dtype=object), [3, 1, 4, 2, 5])
    for rows in group_bootstrap_indices(groups, 50, seed=4):
        counts = np.bincount(rows, minlength=groups.size)
        for group in np.unique(groups):
            drawn = counts[groups == group]
            assert np.all(drawn == drawn[0]), group  # a group comes whole or not at all
        assert (
            counts[groups == "A"][0]
            + counts[groups == "B"][0]
            + counts[groups == "C"][0]
            + counts[groups == "D"][0]
            + counts[groups == "E"][0]
        ) == 5  # 5 groups drawn


def test_weighted_auc_equals_auc_of_the_resampled_vectors():
    rng = np.random.default_rng(3)
    y = rng.integers(0, 2, 40).astype(float)
    p = np.round(rng.random(40), 1)  # ties
    resamples = bootstrap_indices(y, 30, seed=2, stratify=True)
    direct = np.array([roc_auc_score(y[rows], p[rows]) for rows in resamples])
    np.testing.assert_allclose(weighted_roc_auc(y, p, resample_counts(resamples, 40)), direct)


def _grouped_result(seed: int = 0):
    X, y, _ = binary_cohort(n_samples=120, n_noise=20, seed=seed)
    lines = pd.Series([f"L{i // 2:02d}" for i in range(120)], index=X.index)  # 2 per line
    lineage = pd.Series(np.where(np.arange(120) % 3 == 0, "myeloid", "B-cell"), index=X.index)
    folds = make_folds(
        y, lines, CVConfig(n_splits=4, n_repeats=2, random_state=1), "classification"
    )
    estimators = {MODEL_NAME: nk_core, **baseline_estimators("classification", lineages=lineage)}
    result = cross_validate(estimators, X, y, folds, "classification", groups=lines)
    return result, lines, lineage


@pytest.fixture(scope="module")
def grouped_run():
    return _grouped_result()


@pytest.mark.integration  # a whole cross-validation with every baseline
def test_point_and_interval_are_one_estimator_with_groups(grouped_run):
    result, lines, lineage = grouped_run
    summary = evaluation_summary(result, lines, lineage, n_bootstrap=300, seed=2).metrics
    per_repeat = result.repeat_metrics(MODEL_NAME)["roc_auc"].mean()
    assert summary["cv_roc_auc"] == pytest.approx(per_repeat)  # the reported point ...
    for name in (
        "cv_roc_auc",
        "cv_within_lineage_roc_auc",
        "cv_roc_auc_minus_best_baseline",
        "baseline_lineage_cv_roc_auc",
        "baseline_xgb_allgenes_cv_roc_auc",
    ):
        assert summary[f"{name}_ci_low"] <= summary[name] <= summary[f"{name}_ci_high"], name
    # ... and a group bootstrap is wider than pretending the 120 samples were independent
    plain = result.summary(n_bootstrap=300, seed=2)
    assert (summary["cv_roc_auc_ci_high"] - summary["cv_roc_auc_ci_low"]) > 0.8 * (
        plain["cv_roc_auc_ci_high"] - plain["cv_roc_auc_ci_low"]
    )


def test_best_baseline_difference_is_paired_against_the_best(grouped_run):
    result, lines, _ = grouped_run
    best, metrics = result.best_baseline_difference(n_bootstrap=200, seed=0, groups=lines)
    summary = result.summary(n_bootstrap=50)
    baselines = {
        n: summary[f"baseline_{n}_cv_roc_auc"] for n in result.estimators if n != MODEL_NAME
    }
    assert best == max(baselines, key=baselines.get)
    assert metrics["cv_roc_auc_minus_best_baseline"] == pytest.approx(
        summary["cv_roc_auc"] - baselines[best]
    )


def test_within_lineage_auc_removes_what_lineage_alone_explains():
    """Labels driven by lineage only: pooled AUC of the lineage baseline is high, within
    lineage it has nothing left to rank."""
    X = expression(160, 0, seed=5)
    lineage = pd.Series(np.where(np.arange(160) % 2, "myeloid", "B-cell"), index=X.index)
    rng = np.random.default_rng(6)
    y = pd.Series(
        (rng.random(160) < np.where(lineage == "myeloid", 0.8, 0.2)).astype(int), index=X.index
    )
    folds = make_folds(y, None, CVConfig(n_splits=4, n_repeats=1), "classification")
    factories = baseline_estimators("classification", lineages=lineage)
    result = cross_validate({"lineage": factories["lineage"]}, X, y, folds, "classification")
    within = result.within_group_summary(lineage, n_bootstrap=100)
    pooled = result.summary(n_bootstrap=100)["baseline_lineage_cv_roc_auc"]
    assert pooled > 0.7
    assert abs(within["baseline_lineage_cv_within_lineage_roc_auc"] - 0.5) < 0.15


def test_inner_splits_never_split_a_group():
    rng = np.random.default_rng(0)
    target = rng.integers(0, 2, 90).astype(float)
    groups = np.repeat(np.arange(30), 3).astype(object)
    for task in ("classification", "regression"):
        trees = BoostedTrees(task=task, random_state=7)
        fit, validation = trees.inner_positions(target, groups)
        assert fit.size + validation.size == 90 and validation.size > 0
        assert not set(groups[fit]) & set(groups[validation])
    # without groups the split is the one used before groups existed
    fit, validation = BoostedTrees().inner_positions(target)
    assert validation.size == 18


def test_grouped_fit_hands_groups_to_the_inner_split(monkeypatch):
    X, y, _ = binary_cohort(n_samples=80, n_noise=0, seed=2)
    lines = np.repeat(np.arange(20), 4).astype(object)
    seen = []
    original = BoostedTrees.inner_cv_folds

    def spy(self, target, groups=None):
        folds = original(self, target, groups)
        seen.append((groups, folds))
        return folds

    monkeypatch.setattr(BoostedTrees, "inner_cv_folds", spy)
    model = nk_core()
    fit_with_groups(model, X, y.to_numpy(), lines)
    groups, folds = seen[-1]
    assert groups is not None and folds
    for fit, validation in folds:
        assert not set(lines[fit]) & set(lines[validation])


def test_fit_plan_never_oversubscribes_the_cores():
    cores = joblib.cpu_count()
    assert fit_plan(1, 75) == (1, None)  # serial: every estimator keeps its own threads
    for n_jobs in (-1, -2, 2, 3, 64):
        for n_fits in (1, 2, 5, 75):
            workers, threads = fit_plan(n_jobs, n_fits)
            assert 1 <= workers <= n_fits and threads is not None
            assert workers * threads <= max(cores, workers)
    assert fit_plan(-1, 75)[0] == cores
    with pytest.raises(InputError):
        fit_plan(0, 10)


def test_results_concatenate_to_those_of_one_call():
    X, y, _ = binary_cohort(80, 20, seed=4)
    folds = make_folds(y, None, CVConfig(n_splits=3, n_repeats=2), "classification")
    factories = baseline_estimators("classification")
    both = {name: factories[name] for name in ("signature", "lineage")}
    together = cross_validate(both, X, y, folds, "classification")
    parts = [cross_validate({name: f}, X, y, folds, "classification") for name, f in both.items()]
    joined = CVResult.concat(parts)
    pd.testing.assert_frame_equal(joined.predictions, together.predictions)
    pd.testing.assert_frame_equal(joined.fold_metrics, together.fold_metrics)
    with pytest.raises(InputError):
        CVResult.concat([])


@pytest.mark.integration  # starts a pool of worker processes
def test_parallel_fits_give_the_serial_numbers(classification_run):
    """Fits in two worker processes (the matrix memory-mapped, one thread each) give the
    serial loop's predictions, fold metrics and summary exactly, boosting included."""
    X, y, _, folds, serial, _ = classification_run
    estimators = {MODEL_NAME: nk_core, **baseline_estimators("classification", n_jobs=1)}
    messages: list[str] = []
    parallel = cross_validate(
        estimators, X, y, folds, "classification", progress=messages.append, n_jobs=2
    )
    assert len(messages) == len(estimators) * len(folds)
    kept = serial.predictions["estimator"].isin(estimators)
    expected = serial.predictions[kept].reset_index(drop=True)
    pd.testing.assert_frame_equal(parallel.predictions, expected)
    metrics = serial.fold_metrics[serial.fold_metrics["estimator"].isin(estimators)]
    pd.testing.assert_frame_equal(parallel.fold_metrics, metrics.reset_index(drop=True))
    assert parallel.summary(n_bootstrap=200) == {
        k: v
        for k, v in serial.summary(n_bootstrap=200).items()
        if not k.startswith("baseline_chance_")
    }


@pytest.mark.integration  # starts a pool of worker processes
def test_a_worker_restarted_for_its_memory_says_nothing() -> None:
    """loky replaces a worker whose memory grew by over 300 MB since its first fit; the fits
    still all come back, and its "A worker stopped" warning is not shown to the user."""

    class Hoarder(DummyClassifier):
        """Keeps 320 MB more in its worker process at every fit (what loky's leak check
        sees when a worker's allocator holds on to a large fit's memory)."""

        def fit(self, X: Any, y: Any, sample_weight: Any = None) -> Hoarder:
            import sys
            import time

            kept = sys.__dict__.setdefault("_hoarded", [])
            kept.append(np.ones(40_000_000))
            time.sleep(1.1)  # past loky's one-second interval between memory checks
            return super().fit(X, y)

    X, y, _ = binary_cohort(60, 10, seed=5)
    folds = make_folds(y, None, CVConfig(n_splits=3, n_repeats=2), "classification")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = cross_validate({"hoarder": Hoarder}, X, y, folds, "classification", n_jobs=2)
    assert len(result.fold_metrics["fold"].drop_duplicates()) == 3
    assert len(result.predictions) == 2 * len(y)
    assert not [w for w in caught if "worker stopped" in str(w.message)]
