"""Cross-validation folds that respect groups (cell line, patient, lineage).

:func:`make_folds` is the one place folds are made: grouped folds never split a group between
train and test, plain folds are stratified for classification, and every repeat reshuffles
with its own seed. All estimators of one cross-validation share the same folds, which makes
their comparison paired.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.model_selection import (
    GroupKFold,
    LeaveOneGroupOut,
    RepeatedKFold,
    RepeatedStratifiedKFold,
    StratifiedGroupKFold,
)

from nkpredict.evaluate.metrics import check_binary
from nkpredict.exceptions import InputError, LabelError
from nkpredict.vocabulary import TASKS, Task, check_choice

__all__ = [
    "CVConfig",
    "Fold",
    "align_groups",
    "leave_one_group_out_folds",
    "make_folds",
    "target_values",
]

logger = logging.getLogger(__name__)


def target_values(y: pd.Series, task: Task) -> np.ndarray:
    """Validated target values, shape (n_samples,): no missing value, 0/1 for classification."""
    task = check_choice(task, TASKS, "task")
    values = y.to_numpy()
    if pd.isna(values).any():
        raise LabelError("the target has missing values; drop those samples first")
    if task == "classification":
        check_binary(values)
    return values


@dataclass(frozen=True)
class CVConfig:
    """Cross-validation layout: ``n_repeats`` reshuffled rounds of ``n_splits`` folds."""

    n_splits: int = 5
    n_repeats: int = 3
    random_state: int = 0

    def __post_init__(self) -> None:
        if self.n_splits < 2 or self.n_repeats < 1:
            raise InputError(
                f"cross-validation needs n_splits >= 2 and n_repeats >= 1, "
                f"got {self.n_splits} and {self.n_repeats}"
            )


@dataclass(frozen=True, eq=False)
class Fold:
    """One train/test split; ``train`` and ``test`` are sample positions, shape (n,)."""

    repeat: int
    fold: int
    train: np.ndarray
    test: np.ndarray


def align_groups(groups: pd.Series, y: pd.Series) -> np.ndarray:
    """Group labels in the order of ``y``, shape (n_samples,)."""
    if not isinstance(groups, pd.Series):
        raise InputError("groups must be a pandas Series indexed by sample")
    aligned = groups.reindex(y.index)
    if aligned.isna().any():
        missing = aligned.index[aligned.isna()]
        raise InputError(
            f"{missing.size} sample(s) have no group (first: {missing[0]!r}); "
            "every sample needs a group label"
        )
    return aligned.to_numpy()


def leave_one_group_out_folds(groups: np.ndarray) -> list[Fold]:
    """One fold per group (one repeat), holding out that group; ``groups`` of shape (n_samples,)."""
    splits = LeaveOneGroupOut().split(np.zeros(groups.size), groups=groups)
    return [Fold(0, i, train, test) for i, (train, test) in enumerate(splits)]


def _repeat_seeds(config: CVConfig) -> list[int]:
    state = np.random.SeedSequence(config.random_state).generate_state(config.n_repeats)
    return [int(s) for s in state]


def _grouped_folds(y: np.ndarray, groups: np.ndarray, config: CVConfig, task: Task) -> list[Fold]:
    n_groups = np.unique(groups).size
    if n_groups < 2:
        raise InputError("grouped cross-validation needs at least two groups")
    if n_groups < config.n_splits:
        logger.warning(
            "only %d groups for %d folds: using leave-one-group-out (%d folds, one repeat, "
            "since repeating it would give identical folds)",
            n_groups,
            config.n_splits,
            n_groups,
        )
        return leave_one_group_out_folds(groups)
    folds = []
    for repeat, seed in enumerate(_repeat_seeds(config)):
        splitter = (
            StratifiedGroupKFold(config.n_splits, shuffle=True, random_state=seed)
            if task == "classification"
            else GroupKFold(config.n_splits, shuffle=True, random_state=seed)
        )
        splits = splitter.split(np.zeros(y.size), y, groups)
        folds += [Fold(repeat, i, train, test) for i, (train, test) in enumerate(splits)]
    return folds


def _plain_folds(y: np.ndarray, config: CVConfig, task: Task) -> list[Fold]:
    if y.size < config.n_splits:
        raise InputError(f"{y.size} samples cannot be split into {config.n_splits} folds")
    kind = RepeatedStratifiedKFold if task == "classification" else RepeatedKFold
    splitter = kind(
        n_splits=config.n_splits, n_repeats=config.n_repeats, random_state=config.random_state
    )
    return [
        Fold(i // config.n_splits, i % config.n_splits, train, test)
        for i, (train, test) in enumerate(splitter.split(np.zeros(y.size), y))
    ]


def make_folds(y: pd.Series, groups: pd.Series | None, config: CVConfig, task: Task) -> list[Fold]:
    """Cross-validation folds over the samples of ``y``.

    Parameters
    ----------
    y : Series, shape (n_samples,)
        Target (0/1 for classification); fold positions index into it.
    groups : Series or None
        Group of each sample (lineage, patient, cell line), indexed like ``y``. No group is
        ever split between train and test: ``StratifiedGroupKFold`` (classification) or
        shuffled ``GroupKFold`` (regression), reshuffled with a different seed per repeat.
        With fewer groups than ``n_splits``, leave-one-group-out (one repeat).
        Without groups: ``RepeatedStratifiedKFold`` / ``RepeatedKFold``.
    config : CVConfig
    task : {"classification", "regression"}

    Returns
    -------
    list of Fold
        Each sample is in exactly one test fold per repeat.
    """
    values = target_values(y, task)
    if task == "classification" and np.unique(values).size < 2:
        raise LabelError("the target has a single class; nothing to cross-validate")
    if groups is None:
        folds = _plain_folds(values, config, task)
    else:
        folds = _grouped_folds(values, align_groups(groups, y), config, task)
    empty = [f for f in folds if f.test.size == 0]
    if empty:
        logger.warning("%d empty test fold(s) dropped", len(empty))
        folds = [f for f in folds if f.test.size]
    return folds
