"""Sign-constrained prior fits: scikit-learn's solution when free, the catalogue's signs if not."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression, Ridge

from nkpredict.exceptions import InputError
from nkpredict.features.builder import expected_sign
from nkpredict.model.boosting import BoostedTrees
from nkpredict.model.prior import KnowledgePrior
from nkpredict.model.signed import fit_signed_linear


def _data(seed: int = 0, n: int = 200, p: int = 8) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(n, p))
    truth = np.array([1.0, -1.0, 0.5, -0.5, 1.5, 0.0, -2.0, 0.3])[:p]
    logit = z @ truth
    labels = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(float)
    readout = logit + rng.normal(scale=0.5, size=n)
    return z, labels, readout


@pytest.mark.parametrize("penalty", [0.03, 0.1, 1.0])
def test_free_fits_are_scikit_learn_s(penalty: float) -> None:
    z, labels, readout = _data()
    free = np.zeros(z.shape[1])
    coef, intercept = fit_signed_linear(z, labels, penalty, free, "classification")
    logistic = LogisticRegression(C=penalty, max_iter=5000, tol=1e-10).fit(z, labels)
    np.testing.assert_allclose(coef, logistic.coef_[0], atol=1e-5)
    assert intercept == pytest.approx(logistic.intercept_[0], abs=1e-5)
    coef, intercept = fit_signed_linear(z, readout, penalty, free, "regression")
    ridge = Ridge(alpha=1.0 / penalty).fit(z, readout)
    np.testing.assert_allclose(coef, ridge.coef_, atol=1e-5)
    assert intercept == pytest.approx(ridge.intercept_, abs=1e-5)


@pytest.mark.parametrize("task", ["classification", "regression"])
def test_signed_coefficients_keep_their_side_and_wrong_ones_drop_out(task: str) -> None:
    z, labels, readout = _data(1)
    y = labels if task == "classification" else readout
    # right signs for features 0 and 1, wrong ones for 4 and 6 (true effects +1.5 and -2)
    signs = np.array([1, -1, 0, 0, -1, 0, 1, 0])
    coef, _ = fit_signed_linear(z, y, 0.1, signs, task)
    assert (coef * signs >= 0).all()
    assert coef[4] == 0.0 and coef[6] == 0.0
    assert coef[0] > 0.1 and coef[1] < -0.1  # the right signs are not shrunk to zero
    free, _ = fit_signed_linear(z, y, 0.1, np.zeros(8), task)
    assert free[4] > 0.1 and free[6] < -0.1  # what the data alone say


def test_the_prior_checks_and_keeps_its_signs() -> None:
    z, labels, _ = _data(2)
    signs = np.array([1, -1, 0, 0, -1, 0, 1, 0])
    prior = KnowledgePrior().fit(z, labels, feature_signs=signs)
    np.testing.assert_array_equal(prior.signs_, signs)
    assert (prior.coef_ * signs >= 0).all() and prior.coef_[4] == prior.coef_[6] == 0.0
    np.testing.assert_array_equal(KnowledgePrior().fit(z, labels).signs_, np.zeros(8))
    with pytest.raises(InputError, match="feature_signs must be 8 values"):
        KnowledgePrior().fit(z, labels, feature_signs=np.full(8, 2))
    with pytest.raises(InputError, match="feature_signs must be 8 values"):
        KnowledgePrior().fit(z, labels, feature_signs=np.ones(3))


def test_expected_signs_come_from_uncontested_catalogue_genes() -> None:
    assert expected_sign("gene:MICA") == -1  # an activating ligand: more of it, more killing
    assert expected_sign("gene:HLA-E") == 1  # an inhibitory ligand
    assert expected_sign("gene:CD274") == 0  # contested in the catalogue
    for other in ("axis:NKG2D", "pathway:IFNG_RESPONSE", "genome:GAPDH", "coverage:catalog"):
        assert expected_sign(other) == 0
    assert expected_sign("gene:NOT_A_GENE") == 0


def test_the_trees_sign_the_prior_of_named_classification_features_only() -> None:
    import pandas as pd

    z, labels, readout = _data(3, p=4)
    names = ["gene:MICA", "gene:HLA-E", "axis:NKG2D", "gene:CD274"]
    frame = pd.DataFrame(z, columns=names)
    trees = BoostedTrees(n_estimators=5, min_tree_samples=10_000).fit(frame, labels)
    np.testing.assert_array_equal(trees.prior_.signs_, [-1, 1, 0, 0])
    assert BoostedTrees(signed_prior=False, n_estimators=5).fit(frame, labels).prior_signs() is None
    regression = BoostedTrees(task="regression", n_estimators=5).fit(frame, readout)
    assert regression.prior_signs() is None
    assert BoostedTrees(n_estimators=5).fit(z, labels).prior_signs() is None  # no names
