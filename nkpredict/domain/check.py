"""Is a sample like the ones the model was trained on? Per-sample domain checks.

A prediction is only as good as its resemblance to the training cohort. Each check turns a
sample into one number (larger = less like the training data), and its threshold is fitted on
the training data itself: the check is fitted on four fifths of the training samples and scored
on the held-out fifth (grouped by cell line when groups are known), five times, and the
threshold is the :attr:`DomainModel.quantile` (default 99.5%) of those *held-out* scores. Fitting
the threshold on in-sample scores would flag far too many new samples of the same
distribution: a sample always lies closer to a fit that includes it.

The checks (reason codes of :data:`~nkpredict.vocabulary.DomainReason`):

``distance``
    Mahalanobis distance from the training mean in the standardized feature space, with a
    Ledoit-Wolf shrunk covariance (the features are many and correlated).
``feature_range``
    How far the sample's most extreme feature lies beyond the training range, in training
    standard deviations.
``platform``
    Whether the expression profile as a whole looks like another scale or platform: the mean,
    the spread and the share of near-zero values of the model's measured genes, each as a
    robust z-score against the training samples (largest of the three).
``unseen_lineage`` / ``ambiguous_lineage``
    Distance of the lineage-program scores from the nearest training lineage, and one minus the
    probability of the recognised lineage (:mod:`nkpredict.domain.lineage`); only when the
    training labels named lineages.
``low_coverage``
    Fewer than :data:`~nkpredict.settings.LOW_COVERAGE_WARNING` of the catalogue genes measured
    (a fixed rule, not fitted: imputed genes are the training medians).

Everything fitted is stored with the model as plain numbers.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sklearn.covariance import LedoitWolf
from sklearn.model_selection import GroupKFold, KFold

from nkpredict.domain.lineage import LineageRecognizer, lineage_feature_names
from nkpredict.positions import as_selector
from nkpredict.settings import LOW_COVERAGE_WARNING
from nkpredict.vocabulary import DomainReason

__all__ = ["DEFAULT_QUANTILE", "NEAR_ZERO", "DomainAssessment", "DomainModel"]

DEFAULT_QUANTILE = 0.995
"""Quantile of the held-out scores that becomes each check's threshold."""
NEAR_ZERO = 1.0
"""log2(TPM + 1) below which a measured gene counts as near zero (the platform check)."""
_FOLDS = 5
_MIN_SPREAD = np.array([0.05, 0.05, 0.01])  # mean, sd, near-zero share: floors of the spread
_FITTED_CHECKS: tuple[DomainReason, ...] = (
    "distance",
    "feature_range",
    "platform",
    "unseen_lineage",
    "ambiguous_lineage",
)


def _profile(gene_values: np.ndarray) -> np.ndarray:
    """Mean, standard deviation and near-zero share of each sample's measured genes, (n, 3)."""
    n, k = gene_values.shape
    out = np.empty((n, 3))
    total = gene_values.sum(axis=1)
    if not np.isnan(total).any():  # the usual case: nothing unmeasured, no masks
        mean = total / k
        out[:, 0] = mean
        squares = np.einsum("ij,ij->i", gene_values, gene_values)
        out[:, 1] = np.sqrt(np.maximum(squares / k - mean * mean, 0.0))
        out[:, 2] = (gene_values < NEAR_ZERO).sum(axis=1) / k
        return out
    measured = ~np.isnan(gene_values)
    count = np.maximum(np.count_nonzero(measured, axis=1), 1).astype(np.float64)
    filled = np.where(measured, gene_values, 0.0)
    mean = filled.sum(axis=1) / count
    out[:, 0] = mean
    out[:, 1] = np.sqrt(np.maximum((filled * filled).sum(axis=1) / count - mean**2, 0.0))
    out[:, 2] = np.count_nonzero(measured & (filled < NEAR_ZERO), axis=1) / count
    return out


def _nan_max(values: Sequence[float]) -> float:
    """The largest of ``values``, NaN when one is NaN (as ``ndarray.max``)."""
    top = values[0]
    for value in values[1:]:
        if value != value:  # NaN
            return value
        if value > top:
            top = value
    return top


def _profile_one(gene_values: np.ndarray) -> tuple[float, float, float]:
    """:func:`_profile` of one sample (shape (1, k)): the same numbers, bit for bit, with
    the per-sample arithmetic on Python floats (a sum, a dot product and a count stay numpy
    reductions over the same contiguous row)."""
    k = gene_values.shape[1]
    total = float(gene_values.sum(axis=1)[0])
    if total == total:  # no NaN: nothing unmeasured
        mean = total / k
        squares = float(np.einsum("ij,ij->i", gene_values, gene_values)[0])
        near_zero = int(np.count_nonzero(gene_values < NEAR_ZERO))
        return mean, math.sqrt(max(squares / k - mean * mean, 0.0)), near_zero / k
    row = _profile(gene_values)[0].tolist()
    return row[0], row[1], row[2]


@dataclass
class _Reference:
    """What the checks compare with: statistics of a set of training samples."""

    mean: np.ndarray
    scale: np.ndarray
    low: np.ndarray
    high: np.ndarray
    precision: np.ndarray
    profile_center: np.ndarray
    profile_spread: np.ndarray
    lineage: LineageRecognizer | None

    def __post_init__(self) -> None:
        # the same checks in the features' own units (fewer array operations per request)
        self._inverse_scale = 1.0 / self.scale
        self._raw_precision = self.precision * np.outer(self._inverse_scale, self._inverse_scale)
        self._raw_low = self.mean + self.low * self.scale
        self._raw_high = self.mean + self.high * self.scale
        self._inverse_spread = 1.0 / self.profile_spread

    @classmethod
    def fit(
        cls,
        features: np.ndarray,
        gene_values: np.ndarray,
        programs: np.ndarray | None,
        program_names: list[str],
        lineages: Sequence[str] | None,
    ) -> _Reference:
        mean = features.mean(axis=0)
        scale = features.std(axis=0)
        scale[scale == 0] = 1.0
        z = (features - mean) / scale
        precision = LedoitWolf().fit(z).precision_
        profile = _profile(gene_values)
        center = np.median(profile, axis=0)
        spread = np.maximum(1.4826 * np.median(np.abs(profile - center), axis=0), _MIN_SPREAD)
        lineage = None
        if programs is not None and lineages is not None:
            lineage = LineageRecognizer.fit(programs, program_names, lineages)
        return cls(mean, scale, z.min(axis=0), z.max(axis=0), precision, center, spread, lineage)

    def scores(
        self, features: np.ndarray, gene_values: np.ndarray, programs: np.ndarray | None
    ) -> tuple[np.ndarray, list[str] | None, np.ndarray | None]:
        """Each check's score per sample, shape (n, n_checks) in :data:`_FITTED_CHECKS` order
        (the lineage columns only when there is a lineage recognizer), the recognised lineages
        and their probability."""
        if features.shape[0] == 1:
            return self._scores_one(features, gene_values, programs)
        return self._scores_many(features, gene_values, programs)

    def _scores_many(
        self, features: np.ndarray, gene_values: np.ndarray, programs: np.ndarray | None
    ) -> tuple[np.ndarray, list[str] | None, np.ndarray | None]:
        """:meth:`scores` of any number of samples, on arrays."""
        centred = features - self.mean
        beyond = np.maximum(features - self._raw_high, self._raw_low - features)
        beyond = np.maximum((beyond * self._inverse_scale).max(axis=1), 0.0)
        distance = np.sqrt(np.maximum(((centred @ self._raw_precision) * centred).sum(axis=1), 0))
        profile = np.abs(_profile(gene_values) - self.profile_center) * self._inverse_spread
        with_lineage = self.lineage is not None and programs is not None
        scores = np.empty((features.shape[0], 5 if with_lineage else 3))
        scores[:, 0], scores[:, 1], scores[:, 2] = distance, beyond, profile.max(axis=1)
        if self.lineage is None or programs is None:
            return scores, None, None
        names, probability, nearest = self.lineage.recognise(programs)
        scores[:, 3], scores[:, 4] = nearest, 1.0 - probability
        return scores, names, probability

    def _scores_one(
        self, features: np.ndarray, gene_values: np.ndarray, programs: np.ndarray | None
    ) -> tuple[np.ndarray, list[str] | None, np.ndarray | None]:
        """:meth:`scores` of one sample (shape (1, ...)): the same numbers, bit for bit, in
        about a third of the array operations (what a single-sample request pays per call).

        The vector steps are the same numpy operations on the same row (the matrix product
        and the reductions see the same shapes); the scalar steps after them are Python
        float arithmetic, which rounds each operation as numpy does."""
        centred = features - self.mean
        beyond = np.maximum(features - self._raw_high, self._raw_low - features)
        beyond *= self._inverse_scale
        furthest = max(float(beyond.max()), 0.0)
        squared = float(((centred @ self._raw_precision) * centred).sum(axis=1)[0])
        distance = math.sqrt(max(squared, 0.0))
        center = self.profile_center.tolist()
        spread = self._inverse_spread.tolist()
        profile = [
            abs(value - c) * inverse
            for value, c, inverse in zip(_profile_one(gene_values), center, spread, strict=True)
        ]
        values = [distance, furthest, _nan_max(profile)]
        if self.lineage is None or programs is None:
            return np.array([values]), None, None
        names, probability, nearest = self.lineage.recognise(programs)
        values += [float(nearest[0]), float(1.0 - probability[0])]
        return np.array([values]), names, probability


@dataclass
class DomainAssessment:
    """The domain check of each sample.

    Attributes
    ----------
    out_of_domain : ndarray of bool, shape (n_samples,)
    reasons : list of list of str
        The checks each sample failed (empty when in domain).
    lineage : list of str or None
        The recognised lineage of each sample (None when the model knows no lineages).
    lineage_probability : ndarray or None
        Its probability.
    """

    out_of_domain: np.ndarray
    reasons: list[list[str]]
    lineage: list[str] | None
    lineage_probability: np.ndarray | None


@dataclass
class DomainModel:
    """Fitted domain checks of one model (see the module docstring).

    Attributes
    ----------
    columns : ndarray of int
        Positions of the checked features in the model's feature matrix (the coverage feature
        is left out: it has its own rule).
    program_columns : ndarray of int
        Positions of the lineage-program features.
    thresholds : dict of str to float
        Each fitted check's threshold.
    quantile : float
    """

    columns: np.ndarray
    program_columns: np.ndarray
    reference: _Reference
    thresholds: dict[str, float]
    quantile: float = DEFAULT_QUANTILE
    held_out_rate: float = field(default=float("nan"))

    def __post_init__(self) -> None:
        self._features = as_selector(self.columns)
        self._programs = as_selector(self.program_columns)
        self._cut = np.array([self.thresholds[c] for c in _FITTED_CHECKS if c in self.thresholds])
        self._cut_list: list[float] = self._cut.tolist()

    @classmethod
    def fit(
        cls,
        features: np.ndarray,
        feature_names: Sequence[str],
        gene_values: np.ndarray,
        lineages: Sequence[str] | None = None,
        groups: Sequence[Any] | None = None,
        quantile: float = DEFAULT_QUANTILE,
        random_state: int = 0,
    ) -> DomainModel:
        """Fit the checks and their thresholds on the training samples.

        Parameters
        ----------
        features : ndarray, shape (n_samples, n_features)
            The model's features of the training samples.
        feature_names : sequence of str
            Their names (finds the coverage and lineage-program features).
        gene_values : ndarray, shape (n_samples, n_genes)
            The model's input genes (log2(TPM+1), NaN where not measured).
        lineages : sequence of str, optional
            Each sample's lineage; enables the lineage checks when two or more occur.
        groups : sequence, optional
            Cell line or patient of each sample: held-out folds never split one.
        """
        names = list(feature_names)
        columns = np.array([i for i, n in enumerate(names) if not n.startswith("coverage:")])
        program_names = lineage_feature_names(names)
        program_columns = np.array([names.index(n) for n in program_names], dtype=int)
        if lineages is not None and len(set(map(str, lineages))) < 2:
            lineages = None
        if lineages is None:
            program_columns = np.array([], dtype=int)
        lineage_array = None if lineages is None else np.asarray(list(map(str, lineages)))
        values = np.asarray(features, dtype=np.float64)
        genes = np.asarray(gene_values, dtype=np.float64)

        def reference(rows: np.ndarray) -> _Reference:
            return _Reference.fit(
                values[rows][:, columns],
                genes[rows],
                values[rows][:, program_columns] if program_columns.size else None,
                program_names,
                None if lineage_array is None else lineage_array[rows],
            )

        n = values.shape[0]
        splitter: Any = (
            KFold(_FOLDS, shuffle=True, random_state=random_state)
            if groups is None
            else GroupKFold(_FOLDS)
        )
        held_out = []
        for train, test in splitter.split(values, groups=None if groups is None else list(groups)):
            scores, _, _ = reference(train).scores(
                values[test][:, columns],
                genes[test],
                values[test][:, program_columns] if program_columns.size else None,
            )
            held_out.append(scores)
        pooled = np.vstack(held_out)
        cut = np.quantile(pooled, quantile, axis=0)
        thresholds: dict[str, float] = {
            str(c): float(v) for c, v in zip(_FITTED_CHECKS, cut.tolist(), strict=False)
        }
        model = cls(columns, program_columns, reference(np.arange(n)), thresholds, quantile)
        model.held_out_rate = float((pooled > cut).any(axis=1).mean())
        return model

    def assess(
        self, features: np.ndarray, gene_values: np.ndarray, coverage: np.ndarray
    ) -> DomainAssessment:
        """The domain check of samples: their model features (n, n_features), input genes
        (n, n_genes) and catalogue-gene coverage (n,)."""
        values = np.asarray(features, dtype=np.float64)
        programs = values[:, self._programs] if self.program_columns.size else None
        scores, lineage, probability = self.reference.scores(
            values[:, self._features], np.asarray(gene_values, dtype=np.float64), programs
        )
        if scores.shape[0] == 1:
            return self._assessment_one(scores, coverage, lineage, probability)
        return self._assessment_many(scores, coverage, lineage, probability)

    def _assessment_one(
        self,
        scores: np.ndarray,
        coverage: np.ndarray,
        lineage: list[str] | None,
        probability: np.ndarray | None,
    ) -> DomainAssessment:
        """:meth:`_assessment_many` of one sample's ``scores`` (1, n_checks): the same
        comparisons on Python floats."""
        checks = _FITTED_CHECKS[: scores.shape[1]]
        cuts = self._cut_list
        reasons: list[str] = [
            c for c, v, cut in zip(checks, scores[0].tolist(), cuts, strict=False) if v > cut
        ]
        if float(coverage[0]) < LOW_COVERAGE_WARNING:
            reasons.append("low_coverage")
        return DomainAssessment(np.array([bool(reasons)]), [reasons], lineage, probability)

    def _assessment_many(
        self,
        scores: np.ndarray,
        coverage: np.ndarray,
        lineage: list[str] | None,
        probability: np.ndarray | None,
    ) -> DomainAssessment:
        """The failed checks of samples from their ``scores`` (n, n_checks) and coverage."""
        checks = _FITTED_CHECKS[: scores.shape[1]]
        failed = np.empty((scores.shape[0], scores.shape[1] + 1), dtype=bool)
        np.greater(scores, self._cut[: scores.shape[1]], out=failed[:, :-1])
        np.less(coverage, LOW_COVERAGE_WARNING, out=failed[:, -1])
        flagged: np.ndarray = np.asarray(failed.any(axis=1))
        if not flagged.any():
            return DomainAssessment(
                flagged, [[] for _ in range(len(flagged))], lineage, probability
            )
        names: tuple[str, ...] = (*checks, "low_coverage")
        reasons: list[list[str]] = [[] for _ in range(len(flagged))]
        rows, checks_failed = np.nonzero(failed)  # row-major: each row's checks in order
        for row, check in zip(rows.tolist(), checks_failed.tolist(), strict=True):
            reasons[row].append(names[check])
        return DomainAssessment(flagged, reasons, lineage, probability)

    def describe(self) -> dict[str, Any]:
        """What ``/v1/model`` and the report show: thresholds, quantile, held-out rate and the
        lineages recognised."""
        lineage = self.reference.lineage
        return {
            "thresholds": self.thresholds,
            "quantile": self.quantile,
            "held_out_rate": self.held_out_rate,
            "low_coverage_below": LOW_COVERAGE_WARNING,
            "lineages": None if lineage is None else lineage.lineages,
        }

    # ------------------------------------------------------------------ persistence
    def to_dict(self) -> dict[str, Any]:
        """Plain JSON data."""
        ref = self.reference
        return {
            "quantile": self.quantile,
            "held_out_rate": self.held_out_rate,
            "thresholds": self.thresholds,
            "columns": self.columns.tolist(),
            "program_columns": self.program_columns.tolist(),
            "mean": ref.mean.tolist(),
            "scale": ref.scale.tolist(),
            "low": ref.low.tolist(),
            "high": ref.high.tolist(),
            "precision": ref.precision.round(8).tolist(),
            "profile_center": ref.profile_center.tolist(),
            "profile_spread": ref.profile_spread.tolist(),
            "lineage": None if ref.lineage is None else ref.lineage.to_dict(),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DomainModel:
        """Rebuild a domain model written by :meth:`to_dict`."""
        arrays = {
            k: np.asarray(data[k], dtype=np.float64)
            for k in (
                "mean",
                "scale",
                "low",
                "high",
                "precision",
                "profile_center",
                "profile_spread",
            )
        }
        lineage = None if data["lineage"] is None else LineageRecognizer.from_dict(data["lineage"])
        reference = _Reference(lineage=lineage, **arrays)
        model = cls(
            np.asarray(data["columns"], dtype=int),
            np.asarray(data["program_columns"], dtype=int),
            reference,
            {k: float(v) for k, v in data["thresholds"].items()},
            float(data["quantile"]),
        )
        model.held_out_rate = float(data["held_out_rate"])
        return model
