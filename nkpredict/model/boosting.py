"""Gradient-boosted trees (XGBoost) that start from the biological prior.

:class:`BoostedTrees` first fits the :class:`~nkpredict.model.prior.KnowledgePrior` (a
penalized linear model on the NK features), then boosts trees from the prior's cross-fitted
margins (XGBoost's ``base_margin``): the trees learn what the prior misses. The number of
rounds comes from repeated, grouped inner cross-validation (:func:`inner_folds`), and when the
trees do not lower the inner validation loss the model is the prior alone (zero rounds).

The inner splits (:mod:`nkpredict.model.splits`) are the one place validation samples are
chosen; given groups (cell lines, patients) they never put samples of one group on both
sides.

Every boosting run goes through :func:`boost`. By default it calls :func:`xgboost.train`
in-process; :func:`use_trainer` swaps in another :data:`Trainer` for the runs started inside
its ``with`` block (``training.engines`` uses it to boost through ``xgboost.dask`` on a
cluster). Whatever trains the trees, the fitted :class:`BoostedTrees` holds a plain
:class:`xgboost.Booster`, so saving, serving and explaining never depend on the trainer.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import xgboost as xgb
from sklearn.base import BaseEstimator, clone

from nkpredict.estimator import (
    TaskRoleMixin,
    binary_target,
    check_fitted,
    check_input,
    classification_only,
)
from nkpredict.exceptions import InputError, ModelLoadError
from nkpredict.features.builder import expected_sign, is_score_feature
from nkpredict.model.prior import PENALTIES, PRIOR_ALONE_PENALTIES, KnowledgePrior
from nkpredict.model.splits import inner_folds, inner_split
from nkpredict.vocabulary import TASKS, Task, check_choice

__all__ = [
    "DEFAULT_SCORE_WEIGHT",
    "DEFAULT_TREE_BINS",
    "MIN_TREE_BINS",
    "MIN_TREE_SAMPLES",
    "SAMPLES_PER_TREE_BIN",
    "BoostedTrees",
    "BoostingData",
    "Trainer",
    "boost",
    "tree_bins",
    "use_trainer",
]

logger = logging.getLogger(__name__)


@dataclass(frozen=True, eq=False)
class BoostingData:
    """The rows of one boosting run.

    Attributes
    ----------
    x : ndarray of float32, shape (n_samples, n_features)
    y : ndarray of float32, shape (n_samples,)
    base_margin : ndarray of float64, shape (n_samples,), optional
        Where boosting starts for each row (the prior's margin); ``None``: the booster's
        ``base_score``.
    """

    x: np.ndarray
    y: np.ndarray
    base_margin: np.ndarray | None = None

    def rows(self, positions: np.ndarray) -> BoostingData:
        """The rows at ``positions``."""
        margin = None if self.base_margin is None else self.base_margin[positions]
        return BoostingData(self.x[positions], self.y[positions], margin)

    def dmatrix(
        self,
        nthread: int | None = None,
        max_bin: int | None = None,
        reference: xgb.DMatrix | None = None,
    ) -> xgb.DMatrix:
        """An XGBoost matrix of these rows, built with ``nthread`` threads (``None``: all).

        The boosting run's own thread count: building a small matrix with every core's
        OpenMP threads costs about 40 ms instead of 0.3 ms when other processes share the
        cores (measured on a loaded 2-core machine), for the same matrix.

        With ``max_bin`` (``hist`` training), a :class:`xgboost.QuantileDMatrix` of that many
        bins, quantized on ``reference``'s bins when given (a validation matrix takes its
        training matrix's): it holds one byte per cell instead of a copy of the values (eight
        bytes per cell), and XGBoost grows the same trees from it (the same histogram bins).
        """
        if max_bin is None:
            return xgb.DMatrix(self.x, label=self.y, base_margin=self.base_margin, nthread=nthread)
        return xgb.QuantileDMatrix(
            self.x,
            label=self.y,
            base_margin=self.base_margin,
            nthread=nthread,
            max_bin=max_bin,
            ref=reference,
        )

    def base_loss(self, task: Task) -> float:
        """Log loss (classification) or RMSE (regression) of the base margins alone."""
        margin = np.zeros(self.y.shape[0]) if self.base_margin is None else self.base_margin
        if task == "classification":
            p = np.clip(1.0 / (1.0 + np.exp(-margin)), 1e-12, 1.0 - 1e-12)
            return float(-np.mean(self.y * np.log(p) + (1.0 - self.y) * np.log(1.0 - p)))
        return float(np.sqrt(np.mean((self.y - margin) ** 2)))


Trainer = Callable[
    [dict[str, Any], BoostingData, int, BoostingData | None, int | None], xgb.Booster
]
"""``trainer(params, train, num_boost_round, validation, early_stopping_rounds) -> Booster``.

With a validation set the trainer stops early like :func:`xgboost.train` and the booster's
``best_iteration`` and ``best_score`` are set."""

DEFAULT_SCORE_WEIGHT = 0.7
"""The prior weight of score features (axis, load and pathway scores) against gene features.

A score is a weighted mean of gene features the prior already holds: a weight below 1 (0.7:
about twice the penalty) keeps the same genes from being counted twice. Chosen on seeds 0-2
of the accuracy panel (7 cells x 3 seeds, with the trees): 1.0, 0.7 and 0.5 gave mean paired
AUC differences to the linear baseline of +0.007, +0.010 and +0.010, and -0.001, -0.006 and
-0.011 in the cell where a lower weight costs most (lineage-restricted, n = 120).
``BENCHMARKS.md`` reports the panel on other seeds."""
MIN_TREE_SAMPLES = 80
"""Fewest training samples for which the prior-first model looks for trees at all.

Below it each of the 5 inner validation folds holds fewer than 16 samples, too few to tell
the trees' gains from noise. On the accuracy panel (7 scenarios x 3 seeds), with 48 training
samples per fold (n = 60) prior + trees was 0.012 ROC AUC below the linear baseline on average
and the prior alone level with it, even when the trees had to beat the prior by two standard
errors of the folds' gains; with 96 (n = 120) the trees added up to 0.02 (``saturating``)."""
DEFAULT_MAX_BIN = 256
"""XGBoost's histogram bins when the parameters name none."""
DEFAULT_TREE_BINS = 64
"""Histogram bins of the model's trees (XGBoost's default is 256).

Fewer candidate split points per feature: coarser splits, a milder search on small cohorts,
and about a tenth less time per boosting round. On the accuracy panel (seeds 0-2) against 256
bins, the mean paired ROC AUC difference to the linear baseline was +0.012 against +0.011 at
n = 120 (7 scenarios), +0.027 against +0.026 at n = 300 (6; ``saturating`` +0.032 against
+0.027) and +0.008 against +0.008 at n = 1,000 (3 scenarios x 2 seeds)."""
SAMPLES_PER_TREE_BIN = 4
"""Training samples per histogram bin of a small cohort's trees (:func:`tree_bins`)."""
MIN_TREE_BINS = 16
"""Fewest histogram bins of the model's trees, however small the cohort (:func:`tree_bins`)."""
QUANTIZED_MIN_CELLS = 1_000_000
"""Cells (samples x features) from which ``hist`` runs train on a quantized matrix.

Below it the values' copy is at most 8 MB, and a plain matrix is built faster: on 96 samples x
100 features (the model's fit at n = 120, 11 boosting runs) plain matrices take a tenth less
CPU time for the whole fit (0.119 s against 0.132 s), with the same trees."""


def tree_bins(max_bin: int, n_samples: int) -> int:
    """Histogram bins per feature of the trees of a fit on ``n_samples`` training samples.

    ``max_bin``, or one bin per :data:`SAMPLES_PER_TREE_BIN` samples when that is fewer (but
    at least :data:`MIN_TREE_BINS`): with 96 training samples (5-fold cross-validation of
    120) 24 bins. A boosting round costs about as much per bin as per sample there (314 us
    with 64 bins, 156 us with 16 on 77 samples x 100 features), and most bins of 64 hold one
    sample or none. On the accuracy panel (seeds 0-2, 8 scenarios, n = 120), the mean paired
    ROC AUC difference to the linear baseline was +0.015 with 24 bins and +0.015 with 64
    (16: +0.014; 32: +0.014), and the fit 0.64x the time; cohorts of 256 training samples or
    more keep ``max_bin``.
    """
    return min(max_bin, max(MIN_TREE_BINS, n_samples // SAMPLES_PER_TREE_BIN))


_TRAINER: ContextVar[Trainer | None] = ContextVar("nkpredict_trainer", default=None)


@contextmanager
def use_trainer(trainer: Trainer) -> Iterator[None]:
    """Boost with ``trainer`` instead of in-process :func:`xgboost.train` inside the block.

    The choice is a context variable: it applies to the current thread (or task) only.
    """
    token = _TRAINER.set(trainer)
    try:
        yield
    finally:
        _TRAINER.reset(token)


def boost(
    params: dict[str, Any],
    train: BoostingData,
    num_boost_round: int,
    validation: BoostingData | None = None,
    early_stopping_rounds: int | None = None,
) -> xgb.Booster:
    """One boosting run with the current :data:`Trainer` (default: :func:`xgboost.train`).

    ``hist`` runs on matrices of at least :data:`QUANTIZED_MIN_CELLS` cells train on
    quantized matrices (:meth:`BoostingData.dmatrix` with the parameters' ``max_bin``): the
    same trees as from a plain :class:`xgboost.DMatrix`, with an eighth of its memory (an
    all-genes fit of 800 samples x 20,000 genes held 128 MB of values per matrix). Smaller
    ones use a plain matrix, which is built faster.
    """
    trainer = _TRAINER.get()
    if trainer is not None:
        return trainer(params, train, num_boost_round, validation, early_stopping_rounds)
    nthread = params.get("nthread")
    hist = params.get("tree_method", "hist") == "hist"
    quantized = hist and train.x.size >= QUANTIZED_MIN_CELLS
    max_bin = int(params.get("max_bin", DEFAULT_MAX_BIN)) if quantized else None
    matrix = train.dmatrix(nthread, max_bin)
    evals = (
        [] if validation is None else [(validation.dmatrix(nthread, max_bin, matrix), "validation")]
    )
    return xgb.train(
        params,
        matrix,
        num_boost_round=num_boost_round,
        evals=evals,
        early_stopping_rounds=early_stopping_rounds,
        verbose_eval=False,
    )


class BoostedTrees(TaskRoleMixin, BaseEstimator):
    """XGBoost trees boosted from the biological prior, with a scikit-learn interface.

    A binary classifier (``task="classification"``) or a regressor (``"regression"``): the
    role is declared through ``__sklearn_tags__`` and the estimator passes scikit-learn's
    ``check_estimator`` in both. Inputs are validated
    (:func:`~nkpredict.estimator.check_input`: numeric, 2-D, finite or NaN; NaN is a
    missing value XGBoost routes and the prior fills with the training mean); any two labels
    are accepted (``classes_``; the second sorted label is class 1, "resistant" for 0/1
    labels).

    ``fit`` (1) fits the :class:`~nkpredict.model.prior.KnowledgePrior` and takes its
    cross-fitted margins as each sample's ``base_margin`` (``prior=True``); (2) chooses the
    number of rounds by grouped inner cross-validation (:func:`inner_folds`): in each fold the
    trees boost until the validation loss stops improving for ``early_stopping_rounds``
    rounds; the median of the folds' best rounds is used, and zero rounds (the prior alone)
    when the trees do not lower the folds' mean validation loss below the prior's; (3) boosts
    that many rounds on all samples. The fitted booster is plain XGBoost (saved as UBJ, no
    pickles) and the prior a handful of floats.

    The model's output is ``prior.margin(X) + trees(X)``: the booster's ``base_score`` is
    neutral (margin 0), so the trees carry only what they add to the prior.

    Parameters
    ----------
    task : {"classification", "regression"}
    prior : bool
        Start from the knowledge prior (default). ``False``: plain boosting from
        ``base_score``, as models of format 1 were fitted.
    score_weight : float
        The prior's weight of score features (names ``axis:``, ``load:``, ``pathway:``) against
        gene features (:data:`DEFAULT_SCORE_WEIGHT`); used only when ``X`` has feature names.
    n_estimators : int
        Most boosting rounds.
    max_depth, learning_rate, subsample, colsample_bytree, min_child_weight, reg_lambda
        XGBoost tree parameters (``min_child_weight`` is in hessian units: at p = 0.5 a
        sample weighs 0.25).
    max_bin : int
        Most histogram bins per feature (:data:`DEFAULT_TREE_BINS`); a fit on fewer than
        :data:`SAMPLES_PER_TREE_BIN` ``* max_bin`` samples uses fewer (:func:`tree_bins`).
    early_stopping_rounds : int or None
        ``None`` or 0 switches the inner search off (all ``n_estimators`` rounds are used).
    min_tree_samples : int
        With the prior, fewer training samples than this give the prior alone (zero rounds;
        :data:`MIN_TREE_SAMPLES`): inner validation folds are then too small to tell the
        trees' gains from noise. Such a prior takes the penalty of a prior that stands alone
        (:data:`~nkpredict.model.prior.PRIOR_ALONE_PENALTIES`).
    inner_folds : int
        Inner cross-validation folds for the rounds and for the prior.
    validation_fraction : float
        Share of samples held out by the tuning search's inner split.
    n_jobs : int or None
        Threads for XGBoost (``None``: all cores). One by default: the feature matrices are
        narrow, and multi-threaded boosting of shallow trees is slower than one thread on
        small data and collapses when other processes share the cores.
    device : str
        ``"cpu"`` or ``"cuda"``.
    random_state : int
    tuning_budget : float
        Seconds of Optuna search over tree parameters inside every ``fit`` (0 = off); see
        :mod:`nkpredict.model.tuning`. Because it runs inside ``fit``, cross-validation is nested.
        With ``tuning_trials`` it is only a cap on the time of those trials.
    tuning_trials : int
        Number of Optuna trials inside every ``fit`` (0 = time budget only). A trial count
        makes the search independent of machine load: the same data and seed give the same
        parameters.

    Attributes
    ----------
    booster_ : xgboost.Booster
        The trees (none when ``n_rounds_`` is 0 and the prior is the model).
    prior_ : KnowledgePrior or None
        The fitted prior (``prior=True``).
    n_rounds_ : int
        Boosting rounds of the final fit.
    inner_gain_ : float or None
        Mean inner-fold loss gain of the trees over the prior (``None`` without the search).
    tuned_params_ : dict
        The parameters the tuning search chose (only when it ran).
    classes_ : ndarray, shape (2,)
        The two labels (classification).
    n_features_in_ : int
    feature_names_in_ : ndarray of str, shape (n_features_in_,)
        Only when ``X`` had string column names.
    """

    def __init__(
        self,
        task: Task = "classification",
        prior: bool = True,
        score_weight: float = DEFAULT_SCORE_WEIGHT,
        signed_prior: bool = True,
        n_estimators: int = 800,
        max_depth: int = 2,
        learning_rate: float = 0.05,
        subsample: float = 0.8,
        colsample_bytree: float = 0.8,
        min_child_weight: float = 1.0,
        reg_lambda: float = 1.0,
        max_bin: int = DEFAULT_TREE_BINS,
        early_stopping_rounds: int | None = 25,
        min_tree_samples: int = MIN_TREE_SAMPLES,
        inner_folds: int = 5,
        validation_fraction: float = 0.2,
        n_jobs: int | None = 1,
        device: str = "cpu",
        random_state: int = 0,
        tuning_budget: float = 0.0,
        tuning_trials: int = 0,
    ) -> None:
        self.task = task
        self.prior = prior
        self.score_weight = score_weight
        self.signed_prior = signed_prior
        self.n_estimators = n_estimators
        self.max_depth = max_depth
        self.learning_rate = learning_rate
        self.subsample = subsample
        self.colsample_bytree = colsample_bytree
        self.min_child_weight = min_child_weight
        self.reg_lambda = reg_lambda
        self.max_bin = max_bin
        self.early_stopping_rounds = early_stopping_rounds
        self.min_tree_samples = min_tree_samples
        self.inner_folds = inner_folds
        self.validation_fraction = validation_fraction
        self.n_jobs = n_jobs
        self.device = device
        self.random_state = random_state
        self.tuning_budget = tuning_budget
        self.tuning_trials = tuning_trials

    def xgb_params(self, n_samples: int | None = None) -> dict[str, Any]:
        """The XGBoost training parameters these settings stand for; for a fit on
        ``n_samples`` training samples, its bins (:func:`tree_bins`; ``max_bin`` without)."""
        classification = self.task == "classification"
        params: dict[str, Any] = {
            "objective": "binary:logistic" if classification else "reg:squarederror",
            "eval_metric": "logloss" if classification else "rmse",
            "tree_method": "hist",
            "max_depth": self.max_depth,
            "eta": self.learning_rate,
            "subsample": self.subsample,
            "colsample_bytree": self.colsample_bytree,
            "min_child_weight": self.min_child_weight,
            "lambda": self.reg_lambda,
            "max_bin": self.max_bin if n_samples is None else tree_bins(self.max_bin, n_samples),
            "device": self.device,
            "seed": self.random_state,
        }
        if self.prior:
            # margin 0: the trees add to the prior's margin and nothing else
            params["base_score"] = 0.5 if classification else 0.0
        if self.n_jobs is not None:
            params["nthread"] = self.n_jobs
        return params

    def fit(self, X: pd.DataFrame | np.ndarray, y: Any, groups: Any = None) -> BoostedTrees:
        """Fit on features ``X`` (n_samples, n_features) and target ``y`` (n_samples,).

        ``groups`` (n_samples,), optional: group of each sample; every inner split (prior,
        rounds, tuning) then keeps each group on one side.

        Raises
        ------
        InputError
            ``X`` or ``y`` malformed (the message names their shapes and dtypes), or
            ``groups`` of another length.
        LabelError
            Classification with a continuous target, a third class or a single class.
        """
        check_choice(self.task, TASKS, "task")
        classification = self.task == "classification"
        values, target = check_input(
            self,
            X,
            y,
            reset=True,
            dtype=np.float32,
            ensure_min_samples=2,
            y_numeric=not classification,
        )
        if classification:
            self.classes_, target = binary_target(self, target)
        elif hasattr(self, "classes_"):
            del self.classes_  # refitted as a regressor
        target = np.asarray(target, dtype=np.float32)
        labels = None if groups is None else np.asarray(groups, dtype=object)
        if labels is not None and labels.shape[0] != values.shape[0]:
            raise InputError(
                f"groups must have one label per training sample: {labels.shape[0]} labels "
                f"for {values.shape[0]} samples"
            )
        self.__dict__.pop("tuned_params_", None)  # learned by this fit only when it tunes
        self.prior_: KnowledgePrior | None = None
        data = BoostingData(values, target)
        if self.prior:
            self.prior_ = KnowledgePrior(
                task=self.task,
                penalties=PRIOR_ALONE_PENALTIES if self._prior_alone(len(target)) else PENALTIES,
                n_folds=self.inner_folds,
                random_state=self.random_state,
            ).fit(values, target, labels, self.prior_weights(), self.prior_signs())
            data = BoostingData(values, target, self.prior_.oof_margin_)
        tuned = self.tuning_budget > 0 or self.tuning_trials > 0
        trees = self._tuned(data, labels) if tuned else self
        self.n_rounds_, self.inner_gain_ = trees._inner_rounds(data, labels)
        self.booster_ = boost(trees.xgb_params(data.y.shape[0]), data, self.n_rounds_)
        return self

    def _prior_alone(self, n_samples: int) -> bool:
        """True when ``n_samples`` training samples are too few to look for trees at all."""
        return bool(self.prior and self.early_stopping_rounds and n_samples < self.min_tree_samples)

    def prior_weights(self) -> np.ndarray | None:
        """The prior's feature weights: ``score_weight`` for score features, 1 for the others
        (``None`` when the fitted input had no feature names)."""
        names = getattr(self, "feature_names_in_", None)
        if names is None:
            return None
        return np.array([self.score_weight if is_score_feature(str(n)) else 1.0 for n in names])

    def prior_signs(self) -> np.ndarray | None:
        """The sign constraints of the prior's coefficients (``None``: none, when
        ``signed_prior`` is off, the task is regression or the input had no feature names)."""
        names = getattr(self, "feature_names_in_", None)
        if names is None or not self.signed_prior or self.task != "classification":
            return None
        return np.array([expected_sign(str(n)) for n in names], dtype=np.int8)

    def _tuned(self, data: BoostingData, groups: np.ndarray | None) -> BoostedTrees:
        """A copy with the parameters found by the search (kept in tuned_params_)."""
        from nkpredict.model.tuning import search_parameters

        def untuned(**params: Any) -> BoostedTrees:
            return clone(self).set_params(tuning_budget=0.0, tuning_trials=0, **params)

        fit, validation = self.inner_positions(data.y, groups)
        self.tuned_params_ = search_parameters(
            untuned,
            data.rows(fit),
            data.rows(validation),
            self.tuning_budget,
            seed=self.random_state,
            n_trials=self.tuning_trials,
        )
        return untuned(**self.tuned_params_)

    def inner_positions(
        self, target: np.ndarray, groups: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Fitting and validation positions of the tuning search (:func:`inner_split`).

        With fewer than two groups the split falls back to samples (with a warning).
        """
        if groups is not None and np.unique(groups).size < 2:
            logger.warning("one group only: the inner split splits samples, not groups")
            groups = None
        return inner_split(
            target,
            self.validation_fraction,
            self.random_state,
            stratify=self.task == "classification",
            groups=groups,
        )

    def inner_cv_folds(
        self, target: np.ndarray, groups: np.ndarray | None = None
    ) -> list[tuple[np.ndarray, np.ndarray]]:
        """The inner cross-validation folds that choose the number of rounds."""
        if groups is not None and np.unique(groups).size < 2:
            logger.warning("one group only: the inner folds split samples, not groups")
            groups = None
        return inner_folds(
            target,
            self.inner_folds,
            self.random_state,
            stratify=self.task == "classification",
            groups=groups,
        )

    def _early_stopped(self, fit: BoostingData, validation: BoostingData) -> xgb.Booster:
        return boost(
            self.xgb_params(fit.y.shape[0] + validation.y.shape[0]),
            fit,
            self.n_estimators,
            validation,
            self.early_stopping_rounds or self.n_estimators,
        )

    def validation_loss(self, fit: BoostingData, validation: BoostingData) -> float:
        """Best validation loss (log loss or RMSE) of an early-stopped fit on ``fit``."""
        return float(self._early_stopped(fit, validation).best_score)

    def _inner_rounds(
        self, data: BoostingData, groups: np.ndarray | None = None
    ) -> tuple[int, float | None]:
        """Rounds from the inner folds (0 when the trees do not improve on the prior) and the
        trees' mean inner loss gain over the prior (``None`` when no search ran)."""
        if not self.early_stopping_rounds:
            return self.n_estimators, None
        if self._prior_alone(data.y.shape[0]):
            logger.info(
                "%d samples (fewer than %d): the prior alone is the model",
                data.y.shape[0],
                self.min_tree_samples,
            )
            return 0, None
        folds = self.inner_cv_folds(data.y, groups)
        if not folds:
            if self.prior:
                logger.warning("too few samples for inner folds: the prior alone is the model")
                return 0, None
            logger.warning(
                "too few samples for inner folds: %d unchecked rounds", self.n_estimators
            )
            return self.n_estimators, None
        rounds, gains = [], []
        for fit, held_out in folds:
            validation = data.rows(held_out)
            booster = self._early_stopped(data.rows(fit), validation)
            rounds.append(int(booster.best_iteration) + 1)
            gains.append(validation.base_loss(self.task) - float(booster.best_score))
        gain = float(np.mean(gains))
        chosen = int(np.median(rounds))
        if self.prior and gain <= 0.0:
            chosen = 0
        logger.debug(
            "inner folds chose %d boosting rounds (folds: %s; loss gain over the prior %.4f)",
            chosen,
            rounds,
            gain,
        )
        return chosen, gain

    def _booster(self) -> xgb.Booster:
        check_fitted(self, "booster_")
        return self.booster_

    def _validated(self, X: Any) -> np.ndarray:
        """``X`` checked against the fitted width (and names), as float32."""
        check_fitted(self, "booster_")
        values: np.ndarray = check_input(self, X, reset=False, dtype=np.float32)
        return values

    def trees_margin(self, X: pd.DataFrame | np.ndarray) -> np.ndarray:
        """What the trees add to the prior, shape (n_samples,) (float32, XGBoost's).

        Array level (what :mod:`nkpredict.fast.scoring` calls per request): ``X`` is not
        validated beyond conversion to float32.
        """
        values = np.asarray(X, dtype=np.float32)
        booster = self._booster()
        if self.has_no_trees:
            return np.zeros(values.shape[0], dtype=np.float32)
        return np.asarray(booster.inplace_predict(values, predict_type="margin"))

    @property
    def has_no_trees(self) -> bool:
        """True for a prior-only model: zero rounds, so the trees add exactly nothing."""
        return getattr(self, "prior_", None) is not None and self.n_rounds_ == 0

    def with_prior(self, trees_margin: np.ndarray, X: pd.DataFrame | np.ndarray) -> np.ndarray:
        """The model output from the trees' part: ``prior.margin(X) + trees_margin``, float32.

        Every prediction path (XGBoost or compiled trees) finishes here, so they agree.
        """
        prior = getattr(self, "prior_", None)
        if prior is None:
            return trees_margin
        total = prior.margin(np.asarray(X, dtype=np.float32)) + trees_margin
        return total.astype(np.float32)

    def predict_margin(self, X: pd.DataFrame | np.ndarray) -> np.ndarray:
        """Raw model output (log-odds for classification), shape (n_samples,)."""
        values = self._validated(X)
        return self.with_prior(self.trees_margin(values), values)

    @classification_only
    def decision_function(self, X: pd.DataFrame | np.ndarray) -> np.ndarray:
        """Log-odds of class 1 ("resistant"), shape (n_samples,): :meth:`predict_margin`."""
        return self.predict_margin(X)

    @classification_only
    def predict_proba(self, X: pd.DataFrame | np.ndarray) -> np.ndarray:
        """Class probabilities, shape (n_samples, 2); column 1 is "resistant"."""
        p = 1.0 / (1.0 + np.exp(-self.predict_margin(X)))
        return np.column_stack([1.0 - p, p])

    def predict(self, X: pd.DataFrame | np.ndarray) -> np.ndarray:
        """Calls at probability 0.5 (classification: ``classes_[1]`` at or above, 0/1 for 0/1
        labels) or predicted scores (regression), shape (n_samples,)."""
        if self.task == "classification":
            calls = (self.predict_proba(X)[:, 1] >= 0.5).astype(int)
            return np.asarray(self.classes_[calls])
        return self.predict_margin(X)

    def save(self, path: str) -> None:
        """Write the booster in XGBoost's own format (``.ubj`` or ``.json``); the prior is
        saved by the caller as JSON (:meth:`KnowledgePrior.to_dict`)."""
        self._booster().save_model(path)

    @classmethod
    def load(
        cls,
        path: str,
        params: dict[str, Any],
        n_rounds: int,
        prior: KnowledgePrior | None = None,
        feature_names: list[str] | None = None,
    ) -> BoostedTrees:
        """Rebuild a fitted instance from a saved booster, its parameters and its prior.

        Saved models are trained on 0/1 labels, so a classifier's ``classes_`` is ``[0, 1]``;
        ``feature_names`` (the features it was fitted on) become ``feature_names_in_``.
        """
        model = cls(**{**params, "prior": prior is not None})
        model.booster_ = xgb.Booster()
        try:
            model.booster_.load_model(path)
        except xgb.core.XGBoostError as exc:
            raise ModelLoadError(f"corrupted or unreadable booster at {path}: {exc}") from exc
        model.n_rounds_ = n_rounds
        model.prior_ = prior
        model.n_features_in_ = int(model.booster_.num_features())
        if feature_names is not None:
            model.feature_names_in_ = np.asarray(feature_names, dtype=object)
        if model.task == "classification":
            model.classes_ = np.array([0, 1])
        return model
