"""Baselines fitted on the same folds as the model: what a reviewer compares it with.

Each baseline is an unfitted scikit-learn-style estimator that takes the prepared matrix
(samples x HGNC symbols, log2(TPM+1)), so it goes through
:func:`~nkpredict.evaluate.cv.cross_validate` exactly like the model: one knowledge-based
signature score, a linear model on the same NK features, lineage alone, and an early-stopped
XGBoost on every gene.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator
from sklearn.linear_model import LinearRegression, LogisticRegression, RidgeCV
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from nkpredict.catalog import load_catalog
from nkpredict.estimator import TaskRoleMixin, binary_target, check_fitted, classification_only
from nkpredict.evaluate.cv import EstimatorFactory
from nkpredict.exceptions import InputError, LabelError
from nkpredict.features.builder import NKFeatureBuilder
from nkpredict.model.boosting import BoostedTrees
from nkpredict.vocabulary import TASKS, Task, check_choice

__all__ = [
    "BASELINE_NAMES",
    "XGB_ALLGENES_PARAMS",
    "XGB_MAX_BIN",
    "XGB_N_JOBS",
    "AllGenesTrees",
    "LineageEstimator",
    "SignatureScoreEstimator",
    "baseline_estimators",
]

BASELINE_NAMES = ("linear", "signature", "lineage", "xgb_allgenes")
"""The baselines :func:`baseline_estimators` returns, in fitting order."""

XGB_N_JOBS = 1
"""Default threads of one fit of the all-genes XGBoost baseline."""
XGB_MAX_BIN = 64
"""Histogram bins of the all-genes XGBoost baseline (XGBoost's default is 256).

With a few hundred samples a gene has at most that many distinct values, while the split search
over thousands of genes x 256 bins dominates the run time: 64 bins cut one fit on
480 samples x 3,000 genes from about 9 s to 2.5 s of CPU."""
XGB_ALLGENES_PARAMS: dict[str, Any] = {
    "prior": False,  # plain boosting on the genes, as a user would write it: no NK prior
    "n_estimators": 500,
    "max_depth": 3,
    "learning_rate": 0.1,
    "subsample": 0.8,
    "colsample_bytree": 0.5,
    "min_child_weight": 1.0,
    "reg_lambda": 1.0,
    "early_stopping_rounds": 30,
    "validation_fraction": 0.2,
}
"""Settings of the all-genes XGBoost baseline: common hand-tuned values, rounds chosen by
early stopping on an inner split (grouped when the cross-validation has groups)."""
_SD_FLOOR = 1e-8


def _check_target(estimator: Any, task: Task, y: Any) -> np.ndarray:
    """``y`` as an array, checked for ``task`` (two labels, or a readout)."""
    check_choice(task, TASKS, "task")
    if y is None:
        raise LabelError(
            f"{type(estimator).__name__} requires y to be passed, but the target y is None"
        )
    target = np.asarray(y)
    if task == "classification":
        binary_target(estimator, target)
    return target


class SignatureScoreEstimator(TaskRoleMixin, BaseEstimator):
    """One signature score mapped to a probability (or readout) by a 1-D linear link.

    The score is ``sign * feature`` from an :class:`NKFeatureBuilder` fitted on the training
    samples; by default ``-load:balance`` (inhibitory minus activating receptor load, higher
    = more resistant). It is standardized with the training mean and sd, then mapped by a
    logistic regression (classification) or a linear regression (regression).

    Parameters
    ----------
    task : {"classification", "regression"}
    feature : str
        Feature of :class:`NKFeatureBuilder` used as the signature.
    sign : float
        Multiplier giving the score its "higher = more resistant" orientation.
    """

    def __init__(
        self, task: Task = "classification", feature: str = "load:balance", sign: float = -1.0
    ) -> None:
        self.task = task
        self.feature = feature
        self.sign = sign

    def fit(self, X: pd.DataFrame, y: Any) -> SignatureScoreEstimator:
        """Fit on a prepared matrix ``X`` (n_samples, n_genes) and target ``y`` (n_samples,)."""
        target = _check_target(self, self.task, y)
        self.features_ = NKFeatureBuilder().fit(X)
        if self.feature not in self.features_.get_feature_names_out():
            raise InputError(f"feature {self.feature!r} cannot be built from these genes")
        raw = self._raw_score(X)
        self.mean_ = float(raw.mean())
        self.scale_ = max(float(raw.std()), _SD_FLOOR)
        link = LogisticRegression() if self.task == "classification" else LinearRegression()
        self.link_ = link.fit(self._standardized(raw)[:, None], target)
        if self.task == "classification":
            self.classes_ = self.link_.classes_
        return self

    def _raw_score(self, X: pd.DataFrame) -> np.ndarray:
        return self.sign * self.features_.transform(X)[self.feature].to_numpy()

    def _standardized(self, raw: np.ndarray) -> np.ndarray:
        return (raw - self.mean_) / self.scale_

    def signature(self, X: pd.DataFrame) -> np.ndarray:
        """Standardized signature score, shape (n_samples,); higher = more resistant."""
        check_fitted(self, "link_")
        return self._standardized(self._raw_score(X))

    @classification_only
    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        """Class probabilities, shape (n_samples, 2); column 1 is "resistant"."""
        scores = self.signature(X)[:, None]
        return self.link_.predict_proba(scores)

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        """0/1 calls (classification) or predicted readouts (regression), shape (n_samples,)."""
        scores = self.signature(X)[:, None]
        return self.link_.predict(scores)

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        """The single input of the link, shape (1,)."""
        return np.array([f"signature:{self.feature}"], dtype=object)


class LineageEstimator(TaskRoleMixin, BaseEstimator):
    """Lineage alone: the lineage-program scores and, when known, the lineage label.

    Features are the ``pathway:<program>`` scores of the catalogue's lineage gene sets
    (category ``lineage``, e.g. ``MYELOID_PROGRAM``) from an :class:`NKFeatureBuilder`
    fitted on the training samples and, when ``lineages`` is given, one indicator per
    lineage seen in training (a sample of an unseen lineage has none). They are standardized
    and mapped by a logistic regression (classification) or ridge regression (regression).
    What it scores is what lineage explains by itself, without any NK biology.

    Parameters
    ----------
    task : {"classification", "regression"}
    lineages : Series, optional
        Lineage of each sample, indexed by sample id (the prepared matrix's index).
    """

    def __init__(self, task: Task = "classification", lineages: pd.Series | None = None) -> None:
        self.task = task
        self.lineages = lineages

    def _design(self, X: pd.DataFrame) -> np.ndarray:
        scores = self.features_.transform(X)[self.programs_].to_numpy(dtype=np.float64)
        if self.lineages is None or not self.levels_:
            return scores
        labels = self.lineages.reindex(X.index).to_numpy(dtype=object)
        indicators = np.column_stack([labels == level for level in self.levels_])
        return np.hstack([scores, indicators.astype(np.float64)])

    def fit(self, X: pd.DataFrame, y: Any) -> LineageEstimator:
        """Fit on a prepared matrix ``X`` (n_samples, n_genes) and target ``y`` (n_samples,)."""
        target = _check_target(self, self.task, y)
        self.features_ = NKFeatureBuilder().fit(X)
        names = set(self.features_.get_feature_names_out())
        programs = [
            f"pathway:{s.name}" for s in load_catalog().gene_sets if s.category == "lineage"
        ]
        self.programs_ = [name for name in programs if name in names]
        self.levels_: list[str] = []
        if self.lineages is not None:
            seen = self.lineages.reindex(X.index).dropna().astype(str)
            self.levels_ = sorted(seen.unique())
        if not self.programs_ and not self.levels_:
            raise InputError("no lineage program or lineage label to build the baseline from")
        link = (
            LogisticRegression(C=1.0, max_iter=5000)
            if self.task == "classification"
            else RidgeCV(alphas=np.logspace(-2, 4, 13))
        )
        self.model_ = Pipeline([("scale", StandardScaler()), ("model", link)])
        self.model_.fit(self._design(X), target)
        if self.task == "classification":
            self.classes_ = self.model_.classes_
        return self

    @classification_only
    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        """Class probabilities, shape (n_samples, 2); column 1 is "resistant"."""
        check_fitted(self, "model_")
        return self.model_.predict_proba(self._design(X))

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        """0/1 calls (classification) or predicted readouts (regression), shape (n_samples,)."""
        check_fitted(self, "model_")
        return self.model_.predict(self._design(X))

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        """Lineage-program scores, then ``lineage:<name>`` indicators."""
        check_fitted(self, "model_")
        return np.array(
            [*self.programs_, *(f"lineage:{level}" for level in self.levels_)], dtype=object
        )


class AllGenesTrees(BoostedTrees):
    """:class:`BoostedTrees` on every input gene with :data:`XGB_MAX_BIN` histogram bins.

    The all-genes baseline: no feature engineering and no biological prior, rounds by early
    stopping on one inner split (whole groups on one side when ``fit`` gets groups), then a
    refit on all training samples, as a careful user would write it.
    Takes the prepared matrix itself.
    """

    float32_input: ClassVar[bool] = True
    """It converts its input to float32 before anything else, so a cross-validation may hand
    it float32 values (:mod:`nkpredict.evaluate.cv`): the same numbers in half the memory."""

    def xgb_params(self, n_samples: int | None = None) -> dict[str, Any]:
        """:meth:`BoostedTrees.xgb_params` with :data:`XGB_MAX_BIN` bins at any size."""
        return super().xgb_params(n_samples) | {"max_bin": XGB_MAX_BIN}

    def inner_cv_folds(
        self, target: np.ndarray, groups: np.ndarray | None = None
    ) -> list[tuple[np.ndarray, np.ndarray]]:
        """One inner split (:meth:`inner_positions`: ``validation_fraction`` held out, whole
        groups) instead of inner folds: the rounds come from one early-stopped run, then the
        trees are refitted on all samples. On thousands of genes these runs are almost all
        of the evaluation's time.
        """
        return [self.inner_positions(target, groups)]


def _linear_baseline(task: Task) -> Pipeline:
    model = (
        LogisticRegression(C=0.1, max_iter=5000)
        if task == "classification"
        else RidgeCV(alphas=np.logspace(-2, 4, 13))
    )
    return Pipeline(
        [("features", NKFeatureBuilder()), ("scale", StandardScaler()), ("model", model)]
    )


def _xgb_allgenes(task: Task, random_state: int, n_jobs: int) -> AllGenesTrees:
    return AllGenesTrees(task=task, n_jobs=n_jobs, random_state=random_state, **XGB_ALLGENES_PARAMS)


def baseline_estimators(
    task: Task,
    random_state: int = 0,
    n_jobs: int = XGB_N_JOBS,
    lineages: pd.Series | None = None,
) -> dict[str, EstimatorFactory]:
    """Baselines to fit on the same folds as the model (:data:`BASELINE_NAMES`).

    ``linear``
        :class:`NKFeatureBuilder` + ``StandardScaler`` + ``LogisticRegression(C=0.1)``
        (classification) or ``RidgeCV`` (regression): the same features, a linear model.
    ``signature``
        :class:`SignatureScoreEstimator` on ``-load:balance``: one knowledge-based score.
    ``lineage``
        :class:`LineageEstimator`: lineage-program scores and, given ``lineages`` (indexed
        by sample), the lineage label; what lineage alone predicts.
    ``xgb_allgenes``
        :class:`AllGenesTrees`: XGBoost on every input gene (:data:`XGB_ALLGENES_PARAMS`,
        ``hist`` with :data:`XGB_MAX_BIN` bins, ``n_jobs`` threads), its rounds chosen by early
        stopping on an inner split, no feature engineering.

    Returns
    -------
    dict
        Name -> factory of an unfitted estimator taking the prepared matrix.
    """
    task = check_choice(task, TASKS, "task")
    return {
        "linear": lambda: _linear_baseline(task),
        "signature": lambda: SignatureScoreEstimator(task=task),
        "lineage": lambda: LineageEstimator(task=task, lineages=lineages),
        "xgb_allgenes": lambda: _xgb_allgenes(task, random_state, n_jobs),
    }
