"""Recognise a sample's lineage from its lineage-program scores.

NK resistance depends on lineage (DESIGN.md), and a prediction for a lineage the model never saw
is an extrapolation. The training labels name each sample's lineage; the feature builder scores
the catalogue's lineage programs (myeloid, B-cell, T-cell, plasma-cell, erythroid). A
multinomial logistic regression on those standardized scores recognises the lineage of a new
sample, and how far it lies from every training lineage says whether it looks like any of them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.linear_model import LogisticRegression

from nkpredict.catalog import load_catalog
from nkpredict.exceptions import InputError

__all__ = ["LineageRecognizer", "lineage_feature_names"]


def lineage_feature_names(feature_names: Sequence[str]) -> list[str]:
    """The lineage-program features among ``feature_names`` (``pathway:<program>``)."""
    programs = {f"pathway:{s.name}" for s in load_catalog().gene_sets if s.category == "lineage"}
    return [name for name in feature_names if name in programs]


@dataclass
class LineageRecognizer:
    """Lineage of a sample from its lineage-program feature values.

    Attributes
    ----------
    features : list of str
        The lineage-program features used, in the columns' order.
    lineages : list of str
        The training lineages (the classes).
    mean, scale : ndarray, shape (n_programs,)
        Standardization of the program scores.
    coef : ndarray, shape (n_lineages, n_programs)
    intercept : ndarray, shape (n_lineages,)
    centroids : ndarray, shape (n_lineages, n_programs)
        Mean standardized scores of each training lineage.
    """

    features: list[str]
    lineages: list[str]
    mean: np.ndarray
    scale: np.ndarray
    coef: np.ndarray
    intercept: np.ndarray
    centroids: np.ndarray

    def __post_init__(self) -> None:
        # logits and centroid products of standardized scores as one affine map of the raw
        # scores: [logits | z.c] = values @ weights + offset
        inverse = 1.0 / self.scale
        weights = np.hstack([self.coef.T, self.centroids.T]) * inverse[:, None]
        offset = np.concatenate([self.intercept, np.zeros(len(self.lineages))])
        self._weights = weights
        self._offset = offset - (self.mean * inverse) @ np.hstack([self.coef.T, self.centroids.T])
        self._inverse_scale = inverse
        self._norms = (self.centroids * self.centroids).sum(axis=1)

    @classmethod
    def fit(
        cls, values: np.ndarray, features: list[str], lineages: Sequence[str]
    ) -> LineageRecognizer:
        """Fit on program scores ``values`` (n_samples, n_programs) and the samples' lineages.

        Raises
        ------
        InputError
            Fewer than two lineages, or no lineage-program feature.
        """
        names = np.asarray([str(v) for v in lineages], dtype=object)
        classes = sorted(set(names.tolist()))
        if len(classes) < 2 or not features:
            raise InputError("recognising lineages needs two or more lineages and their programs")
        mean = values.mean(axis=0)
        scale = values.std(axis=0)
        scale[scale == 0] = 1.0
        z = (values - mean) / scale
        model = LogisticRegression(C=1.0, max_iter=1000).fit(z, names)
        coef, intercept = model.coef_, model.intercept_
        if len(classes) == 2:  # sklearn stores one row for two classes: make it one per class
            coef = np.vstack([-coef[0] / 2, coef[0] / 2])
            intercept = np.array([-intercept[0] / 2, intercept[0] / 2])
        centroids = np.vstack([z[names == c].mean(axis=0) for c in classes])
        return cls(list(features), classes, mean, scale, coef, intercept, centroids)

    def standardize(self, values: np.ndarray) -> np.ndarray:
        """Program scores (n_samples, n_programs) in training standard deviations."""
        return (values - self.mean) / self.scale

    def probabilities(self, values: np.ndarray) -> np.ndarray:
        """P(lineage) per sample, shape (n_samples, n_lineages)."""
        logits = self.standardize(values) @ self.coef.T + self.intercept
        logits -= logits.max(axis=1, keepdims=True)
        expd = np.exp(logits)
        return expd / expd.sum(axis=1, keepdims=True)

    def recognise(self, values: np.ndarray) -> tuple[list[str], np.ndarray, np.ndarray]:
        """Most probable lineage, its probability and the distance to the nearest training
        lineage's centroid (standardized units) of each sample."""
        k = len(self.lineages)
        both = values @ self._weights + self._offset
        logits, products = both[:, :k], both[:, k:]
        best = logits.argmax(axis=1)
        top = logits.max(axis=1, keepdims=True)
        probability = 1.0 / np.exp(logits - top).sum(axis=1)
        z = (values - self.mean) * self._inverse_scale
        squared = (z * z).sum(axis=1)[:, None] - 2.0 * products + self._norms
        nearest = np.sqrt(np.maximum(squared.min(axis=1), 0.0))
        return [self.lineages[k] for k in best.tolist()], probability, nearest

    # ------------------------------------------------------------------ persistence
    def to_dict(self) -> dict[str, Any]:
        """Plain JSON data."""
        return {
            "features": self.features,
            "lineages": self.lineages,
            "mean": self.mean.tolist(),
            "scale": self.scale.tolist(),
            "coef": self.coef.tolist(),
            "intercept": self.intercept.tolist(),
            "centroids": self.centroids.tolist(),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LineageRecognizer:
        """Rebuild a recognizer written by :meth:`to_dict`."""
        return cls(
            list(data["features"]),
            list(data["lineages"]),
            *(
                np.asarray(data[k], dtype=np.float64)
                for k in ("mean", "scale", "coef", "intercept", "centroids")
            ),
        )
