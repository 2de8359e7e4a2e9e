"""The scikit-learn contract, checked by scikit-learn's own suite.

Every estimator that takes a plain numeric matrix passes every check of
:func:`sklearn.utils.estimator_checks.parametrize_with_checks` (the suite of
``check_estimator``) in each role it has. The estimators that need gene-named frames run the
same suite with their expected failures listed, with the reason, in :data:`EXPECTED_FAILURES`
(strict: a listed check that starts passing fails too). Their ``clone``, parameters, pickling
in memory and ``Pipeline`` composition are tested on gene frames below.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import sklearn.exceptions
from sklearn.base import clone, is_classifier, is_regressor
from sklearn.calibration import CalibratedClassifierCV
from sklearn.model_selection import GridSearchCV, KFold, cross_val_score
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import parametrize_with_checks
from sklearn.utils.validation import check_is_fitted

from nkpredict.data.expression import prepare_expression
from nkpredict.evaluate.baselines import (
    XGB_ALLGENES_PARAMS,
    AllGenesTrees,
    LineageEstimator,
    SignatureScoreEstimator,
)
from nkpredict.exceptions import InputError, LabelError, NKPredictError, NotFittedError
from nkpredict.features.builder import NKFeatureBuilder
from nkpredict.model.boosting import BoostedTrees
from nkpredict.model.fitted import NKResistanceModel
from nkpredict.model.prior import KnowledgePrior
from nkpredict.simulate.cohort import Cohort, simulate_cohort
from nkpredict.simulate.config import SimulationConfig

FAST: dict[str, Any] = {"n_estimators": 10, "inner_folds": 2, "early_stopping_rounds": 5}
"""Few rounds and two inner folds: the whole suite stays fast; the code paths are the same."""

NUMERIC_ESTIMATORS = [
    BoostedTrees(**FAST),
    BoostedTrees(task="regression", **FAST),
    KnowledgePrior(n_folds=2),
    KnowledgePrior(task="regression", n_folds=2),
    AllGenesTrees(**{**XGB_ALLGENES_PARAMS, **FAST}),  # no prior, 64 bins
]
"""The calibrator (``nkpredict.uncertainty``) runs the same suite in its own tests."""


@parametrize_with_checks(NUMERIC_ESTIMATORS)
def test_numeric_estimators_pass_scikit_learns_checks(estimator: Any, check: Any) -> None:
    check(estimator)


# ---------------------------------------------------------------- estimators on gene frames

# Why a gene-frame estimator cannot pass a check. It takes a samples x genes DataFrame whose
# columns are gene symbols (the features are built from named genes) and refuses anything else
# with an InputError that says what it got; scikit-learn's checks pass unnamed arrays. Its input
# is any set of genes (unmeasured ones imputed, the rest ignored), so it has no fixed width.
_ARRAYS = "fits on an unnamed array; needs a DataFrame of gene symbols"
_MESSAGE = "wants scikit-learn's wording; a non-DataFrame is refused first, in our words"
_WIDTH = "wants n_features_in_; any set of genes is taken, no fixed width"
_FIT_ON_ARRAYS = (
    "check_dont_overwrite_parameters",
    "check_estimators_dtypes",
    "check_estimators_fit_returns_self",
    "check_estimators_overwrite_params",
    "check_estimators_pickle",
    "check_dict_unchanged",
    "check_dtype_object",
    "check_f_contiguous_array_estimator",
    "check_fit2d_predict1d",
    "check_fit_check_is_fitted",
    "check_fit_idempotent",
    "check_fit_score_takes_y",
    "check_methods_sample_order_invariance",
    "check_methods_subset_invariance",
    "check_pipeline_consistency",
    "check_positive_only_tag_during_fit",
    "check_readonly_memmap_input",
)
_WRONG_MESSAGE = (
    "check_estimator_sparse_array",
    "check_estimator_sparse_matrix",
    "check_estimator_sparse_tag",
    "check_estimators_empty_data_messages",
    "check_fit2d_1feature",
)
_CLASSIFIER_ON_ARRAYS = (
    "check_classifier_data_not_an_array",
    "check_classifiers_classes",
    "check_classifiers_train",
    "check_supervised_y_2d",
)
_WIDTH_CHECKS = ("check_n_features_in", "check_n_features_in_after_fitting")


def _reasons(arrays: tuple[str, ...], messages: tuple[str, ...]) -> dict[str, str]:
    return (
        dict.fromkeys(arrays, _ARRAYS)
        | dict.fromkeys(messages, _MESSAGE)
        | dict.fromkeys(_WIDTH_CHECKS, _WIDTH)
    )


EXPECTED_FAILURES: dict[str, dict[str, str]] = {
    "NKFeatureBuilder": _reasons(
        (
            *_FIT_ON_ARRAYS,
            "check_transformer_data_not_an_array",
            "check_transformer_general",
            "check_transformer_preserve_dtypes",
        ),
        (*_WRONG_MESSAGE, "check_complex_data", "check_fit2d_1sample"),
    ),
    "SignatureScoreEstimator": _reasons(_FIT_ON_ARRAYS + _CLASSIFIER_ON_ARRAYS, _WRONG_MESSAGE),
    "LineageEstimator": _reasons(_FIT_ON_ARRAYS + _CLASSIFIER_ON_ARRAYS, _WRONG_MESSAGE),
    "NKResistanceModel": _reasons(_FIT_ON_ARRAYS + _CLASSIFIER_ON_ARRAYS, _WRONG_MESSAGE),
}
"""The one list of scikit-learn checks the gene-frame estimators fail, each with its reason."""

GENE_FRAME_ESTIMATORS = [
    NKFeatureBuilder(),
    SignatureScoreEstimator(),
    LineageEstimator(),
    NKResistanceModel(booster=FAST),
]


@parametrize_with_checks(
    GENE_FRAME_ESTIMATORS,
    expected_failed_checks=lambda estimator: EXPECTED_FAILURES[type(estimator).__name__],
    xfail_strict=True,
)
def test_gene_frame_estimators_pass_the_applicable_checks(estimator: Any, check: Any) -> None:
    try:
        check(estimator)
    except (AssertionError, ValueError, TypeError) as exc:
        # one line instead of scikit-learn's frames: pytest formats the traceback of every
        # expected failure, and parsing estimator_checks.py for each took ~0.5 s of the 0.6 s
        raise AssertionError(f"{type(exc).__name__}: {exc}") from None


# ---------------------------------------------------------------- data


@pytest.fixture(scope="module")
def cohort() -> Cohort:
    return simulate_cohort(SimulationConfig(n_samples=60, n_genes=200, seed=1))


@pytest.fixture(scope="module")
def prepared(cohort: Cohort) -> pd.DataFrame:
    return prepare_expression(cohort.counts).matrix


@pytest.fixture(scope="module")
def labels(cohort: Cohort) -> np.ndarray:
    return cohort.labels["resistant"].to_numpy()


def _numeric(n: int = 80, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 4))
    return X, (X[:, 0] + 0.5 * rng.normal(size=n) > 0).astype(int)


# ---------------------------------------------------------------- roles, errors, targets


def test_roles_follow_the_task() -> None:
    assert is_classifier(BoostedTrees()) and not is_regressor(BoostedTrees())
    assert is_regressor(BoostedTrees(task="regression"))
    assert is_regressor(KnowledgePrior(task="regression"))
    assert is_classifier(NKResistanceModel()) and is_classifier(SignatureScoreEstimator())
    # probabilities exist for the classifier role only
    assert hasattr(BoostedTrees(), "predict_proba")
    assert not hasattr(BoostedTrees(task="regression"), "predict_proba")
    assert not hasattr(NKResistanceModel(task="regression"), "predict_proba")


def test_not_fitted_error_is_scikit_learns_and_the_librarys() -> None:
    assert issubclass(NotFittedError, sklearn.exceptions.NotFittedError)
    assert issubclass(NotFittedError, NKPredictError)
    for estimator in (BoostedTrees(), KnowledgePrior(), NKResistanceModel(), LineageEstimator()):
        with pytest.raises(sklearn.exceptions.NotFittedError):
            check_is_fitted(estimator)
        with pytest.raises(NotFittedError, match="not fitted"):
            estimator.predict(np.zeros((2, 3)))
    with pytest.raises(NotFittedError, match="NKFeatureBuilder is not fitted"):
        NKFeatureBuilder().transform(pd.DataFrame({"B2M": [1.0]}))


def test_fitted_state_after_fit() -> None:
    X, y = _numeric()
    frame = pd.DataFrame(X, columns=["a", "b", "c", "d"])
    trees = BoostedTrees(**FAST).fit(frame, np.where(y == 1, "resistant", "sensitive"))
    check_is_fitted(trees)
    assert trees.n_features_in_ == 4
    assert list(trees.feature_names_in_) == ["a", "b", "c", "d"]
    assert list(trees.classes_) == ["resistant", "sensitive"]
    assert set(trees.predict(frame)) <= {"resistant", "sensitive"}
    # refitted on an array: no stale names
    trees.fit(X, y)
    assert not hasattr(trees, "feature_names_in_") and list(trees.classes_) == [0, 1]


@pytest.mark.parametrize(
    "make",
    [
        lambda: BoostedTrees(**FAST),
        lambda: KnowledgePrior(),
    ],
)
def test_bad_targets_of_numeric_classifiers(make: Any) -> None:
    X, y = _numeric()
    with pytest.raises(LabelError, match=r"Only binary classification is supported.*3 classes"):
        make().fit(X, y + (X[:, 1] > 1))  # a third class
    with pytest.raises(LabelError, match="continuous"):
        make().fit(X, X[:, 0])
    with pytest.raises(LabelError, match="one class"):
        make().fit(X, np.ones_like(y))
    # all of them are ValueErrors with a plain message, not an XGBoost stack trace
    with pytest.raises(ValueError, match=r"^Only binary") as caught:
        make().fit(X, np.arange(X.shape[0]) % 3)
    assert "Stack trace" not in str(caught.value)


def test_bad_targets_of_gene_frame_estimators(cohort: Cohort, prepared: pd.DataFrame) -> None:
    y = cohort.labels["resistant"].to_numpy()
    three = y + (cohort.labels["killing_auc"].to_numpy() > np.median(cohort.labels["killing_auc"]))
    for make in (lambda: NKResistanceModel(booster=FAST), SignatureScoreEstimator):
        X = cohort.counts if isinstance(make(), NKResistanceModel) else prepared
        with pytest.raises(LabelError, match="Only binary classification is supported"):
            make().fit(X, three)
        with pytest.raises(LabelError, match="continuous"):
            make().fit(X, cohort.labels["killing_auc"].to_numpy())
        with pytest.raises(LabelError, match="one class"):
            make().fit(X, np.zeros_like(y))
    with pytest.raises(LabelError, match="0/1 labels"):
        NKResistanceModel(booster=FAST).fit(cohort.counts, np.where(y == 1, "R", "S"))


def test_a_single_class_in_a_fold_is_a_clear_error() -> None:
    X = _numeric(60)[0]
    y = np.r_[np.zeros(20, dtype=int), np.ones(40, dtype=int)]
    train = np.arange(60) >= 20  # KFold(3)'s first fold: its training rows are all of class 1
    with pytest.raises(LabelError, match=r"one class \(1\)"):
        BoostedTrees(**FAST).fit(X[train], y[train])
    with pytest.raises(LabelError, match="one class"):
        cross_val_score(BoostedTrees(**FAST), X, y, cv=KFold(3), error_score="raise")


def test_malformed_inputs_name_shapes_and_dtypes() -> None:
    X, y = _numeric()
    trees = BoostedTrees(**FAST).fit(X, y)
    with pytest.raises(InputError, match=r"X has 3 features.*expecting 4.*shape \(5, 3\)"):
        trees.predict(X[:5, :3])
    with pytest.raises(InputError, match=r"inconsistent numbers of samples.*y: ndarray of shape"):
        BoostedTrees(**FAST).fit(X, y[:-1])
    with pytest.raises(InputError, match=r"infinity.*dtype float64"):
        trees.predict(np.where(X.max() == X, np.inf, X))
    # NaN is a missing value, scored like XGBoost does (the prior fills the training mean)
    assert np.isfinite(trees.predict_margin(np.where(X.max() == X, np.nan, X))).all()
    with pytest.raises(InputError, match=r"samples x genes DataFrame.*ndarray of shape"):
        NKFeatureBuilder().fit(X)


# ---------------------------------------------------------------- composition


def test_scikit_learn_tools_compose_with_the_trees() -> None:
    X, y = _numeric(90)
    scores = cross_val_score(BoostedTrees(**FAST), X, y, cv=3, scoring="roc_auc")
    assert scores.shape == (3,) and (scores > 0.7).all()
    search = GridSearchCV(BoostedTrees(**FAST), {"max_depth": [1, 2]}, cv=3).fit(X, y)
    assert search.best_params_["max_depth"] in (1, 2)
    calibrated = CalibratedClassifierCV(BoostedTrees(**FAST), cv=3).fit(X, y)
    proba = calibrated.predict_proba(X)
    assert proba.shape == (90, 2) and np.allclose(proba.sum(axis=1), 1.0)
    scaled = Pipeline([("scale", StandardScaler()), ("prior", KnowledgePrior())]).fit(X, y)
    assert scaled.score(X, y) > 0.7


def test_pipeline_of_builder_and_trees(prepared: pd.DataFrame, labels: np.ndarray) -> None:
    pipeline = Pipeline([("features", NKFeatureBuilder()), ("trees", BoostedTrees(**FAST))])
    pipeline.fit(prepared, labels)
    features = pipeline.named_steps["features"].get_feature_names_out()
    assert list(pipeline.named_steps["trees"].feature_names_in_) == list(features)
    proba = pipeline.predict_proba(prepared)
    np.testing.assert_array_equal(
        proba, pipeline.named_steps["trees"].predict_proba(pipeline[:-1].transform(prepared))
    )
    assert pipeline.score(prepared, labels) > 0.5
    assert clone(pipeline).get_params()["trees__n_estimators"] == FAST["n_estimators"]


@pytest.mark.parametrize("name", ["builder", "signature", "lineage", "model"])
def test_clone_params_and_pickle_of_gene_frame_estimators(
    name: str, cohort: Cohort, prepared: pd.DataFrame, labels: np.ndarray, tmp_path: Path
) -> None:
    estimator: Any = {
        "builder": NKFeatureBuilder(n_genome_genes=5),
        "signature": SignatureScoreEstimator(sign=1.0),
        "lineage": LineageEstimator(lineages=cohort.labels["lineage"]),
        "model": NKResistanceModel(booster=FAST),
    }[name]
    X = cohort.counts if name == "model" else prepared
    params = estimator.get_params()
    copy = clone(estimator)
    assert copy is not estimator and set(copy.get_params()) == set(params)
    key = next(iter(params))
    assert copy.set_params(**{key: params[key]}) is copy
    estimator.fit(X, labels)
    with pytest.raises(ValueError, match="Invalid parameter"):
        clone(estimator).set_params(no_such_parameter=1)
    assert not any(k.endswith("_") for k in vars(clone(estimator)))  # clone is unfitted
    again = pickle.loads(pickle.dumps(estimator))  # in-memory round trip
    if name == "builder":
        pd.testing.assert_frame_equal(again.transform(X), estimator.transform(X))
    else:
        np.testing.assert_array_equal(again.predict_proba(X), estimator.predict_proba(X))
    if name == "model":  # saving stays pickle-free
        directory = estimator.save(tmp_path / "model")
        for path in directory.iterdir():
            assert not path.read_bytes().startswith(b"\x80"), f"{path.name} is a pickle"
        loaded = NKResistanceModel.load(directory)
        trees = loaded.boosted_trees
        assert trees.n_features_in_ == estimator.boosted_trees.n_features_in_
        assert list(trees.feature_names_in_) == list(estimator.boosted_trees.feature_names_in_)
        assert list(trees.classes_) == [0, 1]
        np.testing.assert_array_equal(loaded.predict_proba(X), estimator.predict_proba(X))
