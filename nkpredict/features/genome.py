"""Genome-wide genes beyond the catalogue: which non-catalogue genes join the model.

The catalogue holds what is known of NK escape; a cohort can carry a strong driver outside it.
:func:`select_genome_genes` looks for such genes inside ``fit`` (so cross-validation that refits
per fold never leaks), in one of two ways:

*Residual screen* (``alpha`` given, the default model's): a gene joins only when its
expression is associated with what the catalogue features **do not** explain, i.e. with the
cross-fitted residual of a linear model of the catalogue features alone (the ridge form of
:class:`~nkpredict.model.prior.KnowledgePrior`), and the association passes a
Bonferroni-corrected correlation test at family-wise level ``alpha`` over all candidate genes.
Genes that merely track the lineage, which the lineage programs already describe, are not
associated with that residual and stay out; on the simulator's cohorts without an
off-catalogue driver no gene passes, with one the driver is found (``benchmarks/
accuracy_panel.py``).

*Top correlation* (``alpha=None``, the behaviour before the residual screen): the ``n``
genes most correlated with the label itself, whatever their strength.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import stats

from nkpredict.exceptions import InputError

__all__ = ["DEFAULT_GENOME_ALPHA", "DEFAULT_GENOME_GENES", "select_genome_genes"]

DEFAULT_GENOME_GENES = 5
"""Most genome-wide genes the default model adds (only those passing the residual screen)."""
DEFAULT_GENOME_ALPHA = 0.05
"""Family-wise error level of the residual screen (Bonferroni over the candidate genes)."""


_CHUNK_COLUMNS = 2048
"""Candidate genes whose correlations are computed at once: a float64 copy of one chunk, never
of the whole matrix (20,000 genes x 5,000 samples would be 800 MB per fit)."""


def _filled(values: np.ndarray) -> np.ndarray:
    """``values`` with each column's NaN replaced by that column's median (0 if all NaN)."""
    if not np.isnan(values).any():
        return values
    with np.errstate(all="ignore"):
        median = np.nanmedian(values, axis=0)
    median = np.where(np.isfinite(median), median, 0.0)
    return np.where(np.isnan(values), median, values)


def _abs_correlation(values: np.ndarray, columns: np.ndarray, target: np.ndarray) -> np.ndarray:
    """|Pearson correlation| with ``target`` of each column of ``values`` at positions
    ``columns`` (0 where undefined), computed chunk by chunk."""
    t_centred = target - target.mean()
    t_norm = np.sqrt((t_centred**2).sum())
    out = np.empty(columns.size, dtype=np.float64)
    for start in range(0, columns.size, _CHUNK_COLUMNS):
        chunk = columns[start : start + _CHUNK_COLUMNS]
        block = _filled(np.take(values, chunk, axis=1).astype(np.float64))
        centred = block - block.mean(axis=0)
        denom = np.sqrt((centred**2).sum(axis=0)) * t_norm
        with np.errstate(invalid="ignore", divide="ignore"):
            out[start : start + chunk.size] = np.abs(t_centred @ centred) / denom
    return np.nan_to_num(out, nan=0.0)


def _bonferroni_passing(corr: np.ndarray, n_samples: int, alpha: float) -> np.ndarray:
    """Which correlations pass a two-sided t test at family-wise level ``alpha``
    (Bonferroni over ``corr.size`` tests)."""
    dof = n_samples - 2
    if dof < 1:
        return np.zeros(corr.shape, dtype=bool)
    r = np.clip(corr, 0.0, 1.0 - 1e-12)
    t = r * np.sqrt(dof / (1.0 - r * r))
    p_values = 2.0 * stats.t.sf(t, dof)
    return np.asarray(p_values * corr.size < alpha)


def _numeric_target(y: np.ndarray) -> np.ndarray:
    """``y`` as floats: two distinct values are a class label (1.0 for the second sorted one,
    as :func:`~nkpredict.estimator.binary_target` reads labels), anything else a readout."""
    labels = np.unique(y)
    if labels.size == 2:
        return (y == labels[1]).astype(np.float64)
    try:
        return y.astype(np.float64)
    except (TypeError, ValueError) as exc:
        raise InputError(
            f"the genome-wide screen needs a 0/1 label or a numeric readout; got {labels.size} "
            "distinct non-numeric labels"
        ) from exc


def _prior_residual(features: np.ndarray, y: np.ndarray) -> np.ndarray:
    """What a linear model of ``features`` leaves unexplained, cross-fitted: ``y`` minus the
    out-of-fold prediction of the prior's ridge form (for a label, a linear probability model
    of the 0/1 values). Ridge solves in closed form, for a fraction of the logistic prior's
    cost (with the logistic form the model's fit at n = 120 took a fifth longer)."""
    from nkpredict.model.prior import KnowledgePrior  # here: the model package imports this one

    target = _numeric_target(y)
    prior = KnowledgePrior(task="regression").fit(features, target)
    return target - prior.oof_margin_


def select_genome_genes(
    values: np.ndarray,
    genes: Sequence[str],
    exclude: set[str],
    y: np.ndarray,
    n_genes: int,
    alpha: float | None,
    catalogue_features: np.ndarray | None = None,
) -> list[str]:
    """The genome-wide genes (at most ``n_genes``) that join the model, strongest first.

    Parameters
    ----------
    values : ndarray, shape (n_samples, n_columns)
        The expression matrix (any float dtype, a memory map too: it is read chunk by chunk);
        NaN is unmeasured.
    genes : sequence of str, length n_columns
        Its column symbols.
    exclude : set of str
        Symbols that are no candidates (the catalogue genes of the model).
    y : ndarray, shape (n_samples,)
        The label (two values) or readout.
    n_genes : int
        Most genes to return (0: none).
    alpha : float or None
        Family-wise level of the residual screen; ``None``: the ``n_genes`` genes most
        correlated with ``y``, without a test.
    catalogue_features : ndarray, shape (n_samples, n_features), optional
        The catalogue features; required with ``alpha``.

    Raises
    ------
    InputError
        ``alpha`` given without ``catalogue_features``, or a non-numeric multi-class ``y``.
    """
    columns = np.array([i for i, gene in enumerate(genes) if gene not in exclude], dtype=np.intp)
    if n_genes <= 0 or columns.size == 0:
        return []
    target = np.asarray(y)
    if alpha is None:
        corr = _abs_correlation(values, columns, _numeric_target(target))
        order = np.argsort(-corr, kind="stable")[:n_genes]
    else:
        if catalogue_features is None:
            raise InputError("the residual genome-wide screen needs the catalogue features")
        residual = _prior_residual(catalogue_features, target)
        corr = _abs_correlation(values, columns, residual)
        passing = np.flatnonzero(_bonferroni_passing(corr, values.shape[0], alpha))
        order = passing[np.argsort(-corr[passing], kind="stable")][:n_genes]
    return [genes[columns[i]] for i in order]
