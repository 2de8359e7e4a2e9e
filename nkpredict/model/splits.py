"""Inner splits of training samples: the one place validation samples are chosen.

Early stopping, the number of boosting rounds, the tuning search and the prior's penalty
search and cross-fitting all split the training samples of one fit; every one of them uses
:func:`inner_split` (one split) or :func:`inner_folds` (cross-validation folds). Given groups
(cell lines, patients) neither puts samples of one group on both sides.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.model_selection import (
    GroupKFold,
    GroupShuffleSplit,
    KFold,
    StratifiedGroupKFold,
    StratifiedKFold,
    train_test_split,
)

from nkpredict.exceptions import InputError

__all__ = ["inner_folds", "inner_split"]


def inner_split(
    target: np.ndarray,
    validation_fraction: float,
    seed: int,
    stratify: bool,
    groups: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Positions of the fitting and the validation samples of one inner split.

    Parameters
    ----------
    target : ndarray, shape (n_samples,)
    validation_fraction : float
        Share of samples (without groups) or of groups (with groups) held out.
    seed : int
    stratify : bool
        Keep the class balance (classification).
    groups : ndarray, shape (n_samples,), optional
        Group of each sample. No group is split: for classification
        ``StratifiedGroupKFold`` with ``round(1 / validation_fraction)`` folds (its first
        fold validates), otherwise ``GroupShuffleSplit``. Without groups the split is
        ``train_test_split`` (stratified for classification), as before groups existed.

    Returns
    -------
    fit, validation : ndarray of int
    """
    positions = np.arange(target.shape[0])
    if groups is None:
        fit, validation = train_test_split(
            positions,
            test_size=validation_fraction,
            random_state=seed,
            stratify=target if stratify else None,
        )
        return np.asarray(fit), np.asarray(validation)
    labels = np.asarray(groups, dtype=object)
    n_groups = np.unique(labels).size
    if n_groups < 2:
        raise InputError("an inner split by groups needs at least two groups")
    n_splits = min(n_groups, max(2, round(1.0 / validation_fraction)))
    splitter: Any
    if stratify and np.unique(target).size > 1:
        splitter = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    else:
        splitter = GroupShuffleSplit(n_splits=1, test_size=1.0 / n_splits, random_state=seed)
    fit, validation = next(splitter.split(positions, target, labels))
    return np.asarray(fit), np.asarray(validation)


def inner_folds(
    target: np.ndarray,
    n_folds: int,
    seed: int,
    stratify: bool,
    groups: np.ndarray | None = None,
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Inner cross-validation folds of the training samples, ``(fit, validation)`` each.

    Parameters
    ----------
    target : ndarray, shape (n_samples,)
    n_folds : int
        Wanted folds; fewer when there are fewer groups (or, stratified, fewer samples of the
        rarer class).
    seed : int
    stratify : bool
        Keep the class balance (classification).
    groups : ndarray, shape (n_samples,), optional
        No group is split across a fold's two sides.

    Returns
    -------
    list of (ndarray of int, ndarray of int)
        Empty when not even two folds can be made.
    """
    positions = np.arange(target.shape[0])
    splitter: Any
    if groups is not None:
        k = min(n_folds, np.unique(groups).size)
        if stratify and np.unique(target).size > 1:
            splitter = StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=seed)
        else:
            splitter = GroupKFold(n_splits=k)
    elif stratify:
        counts = np.unique(target, return_counts=True)[1]
        k = min(n_folds, int(counts.min()) if counts.size > 1 else 0)
        splitter = StratifiedKFold(n_splits=max(k, 2), shuffle=True, random_state=seed)
    else:
        k = min(n_folds, target.shape[0])
        splitter = KFold(n_splits=max(k, 2), shuffle=True, random_state=seed)
    if k < 2:
        return []
    labels = None if groups is None else np.asarray(groups, dtype=object)
    return [
        (np.asarray(fit), np.asarray(validation))
        for fit, validation in splitter.split(positions, target, labels)
    ]
