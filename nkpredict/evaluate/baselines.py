"""Baselines fitted on the same folds as the model: what a reviewer compares it with.

Each baseline is an unfitted scikit-learn-style estimator that takes the prepared matrix
(samples x HGNC symbols, log2(TPM+1)), so it goes through
:func:`~nkpredict.evaluate.cv.cross_validate` exactly like the model: one knowledge-based
signature score, a linear model on the same NK features, and XGBoost on every gene.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator
from sklearn.linear_model import LinearRegression, LogisticRegression, RidgeCV
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from xgboost import XGBClassifier, XGBRegressor

from nkpredict.evaluate.cv import EstimatorFactory
from nkpredict.exceptions import InputError, LabelError, NotFittedError
from nkpredict.features.builder import NKFeatureBuilder
from nkpredict.vocabulary import TASKS, Task, check_choice

__all__ = [
    "XGB_MAX_BIN",
    "XGB_N_JOBS",
    "SignatureScoreEstimator",
    "baseline_estimators",
]

XGB_N_JOBS = 1
"""Default threads of one fit of the all-genes XGBoost baseline."""
XGB_MAX_BIN = 64
"""Histogram bins of the all-genes XGBoost baseline (XGBoost's default is 256).

With a few hundred samples a gene has at most that many distinct values, while the split search
over thousands of genes x 256 bins dominates the run time: 64 bins cut one fit on
480 samples x 3,000 genes from about 9 s to 2.5 s of CPU."""
_SD_FLOOR = 1e-8


class SignatureScoreEstimator(BaseEstimator):
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
        check_choice(self.task, TASKS, "task")
        target = np.asarray(y)
        if self.task == "classification" and np.unique(target).size < 2:
            raise LabelError("the signature baseline needs both classes in its training data")
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

    def score(self, X: pd.DataFrame) -> np.ndarray:
        """Standardized signature score, shape (n_samples,); higher = more resistant."""
        if not hasattr(self, "link_"):
            raise NotFittedError("SignatureScoreEstimator is not fitted")
        return self._standardized(self._raw_score(X))

    def _standardized(self, raw: np.ndarray) -> np.ndarray:
        return (raw - self.mean_) / self.scale_

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        """Class probabilities, shape (n_samples, 2); column 1 is "resistant"."""
        if self.task != "classification":
            raise InputError("predict_proba is only defined for classification")
        return self.link_.predict_proba(self.score(X)[:, None])

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        """0/1 calls (classification) or predicted readouts (regression), shape (n_samples,)."""
        return self.link_.predict(self.score(X)[:, None])

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        """The single input of the link, shape (1,)."""
        return np.array([f"signature:{self.feature}"], dtype=object)


def _linear_baseline(task: Task) -> Pipeline:
    model = (
        LogisticRegression(C=0.1, max_iter=5000)
        if task == "classification"
        else RidgeCV(alphas=np.logspace(-2, 4, 13))
    )
    return Pipeline(
        [("features", NKFeatureBuilder()), ("scale", StandardScaler()), ("model", model)]
    )


def _xgb_allgenes(task: Task, random_state: int, n_jobs: int) -> XGBClassifier | XGBRegressor:
    kind = XGBClassifier if task == "classification" else XGBRegressor
    return kind(
        n_estimators=300,
        tree_method="hist",
        max_bin=XGB_MAX_BIN,
        n_jobs=n_jobs,
        random_state=random_state,
    )


def baseline_estimators(
    task: Task, random_state: int = 0, n_jobs: int = XGB_N_JOBS
) -> dict[str, EstimatorFactory]:
    """Baselines to fit on the same folds as the model.

    ``linear``
        :class:`NKFeatureBuilder` + ``StandardScaler`` + ``LogisticRegression(C=0.1)``
        (classification) or ``RidgeCV`` (regression): the same features, a linear model.
    ``signature``
        :class:`SignatureScoreEstimator` on ``-load:balance``: one knowledge-based score.
    ``xgb_allgenes``
        Plain XGBoost (300 trees, ``hist`` with :data:`XGB_MAX_BIN` bins, ``n_jobs``
        threads, other parameters at their defaults) on every input gene, no feature
        engineering: the model a user would write by hand.

    Returns
    -------
    dict
        Name -> factory of an unfitted estimator taking the prepared matrix.
    """
    task = check_choice(task, TASKS, "task")
    return {
        "linear": lambda: _linear_baseline(task),
        "signature": lambda: SignatureScoreEstimator(task=task),
        "xgb_allgenes": lambda: _xgb_allgenes(task, random_state, n_jobs),
    }
