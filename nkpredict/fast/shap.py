"""XGBoost's TreeSHAP values computed with numpy from precomputed tables.

``Booster.predict(DMatrix(x), pred_contribs=True)`` (path-dependent TreeSHAP) pays about
200 microseconds per call before it looks at a tree (a ``DMatrix``, a fresh ``Context``,
JSON configuration parsing), which is most of the time of an explanation of one sample.
:class:`CompiledShap` computes the same values for a request-sized input in a few tens of
microseconds (one sample, 300 trees of depth 2: under 20 microseconds).

Method (the path decomposition of GPUTreeShap)
----------------------------------------------
Path-dependent TreeSHAP is a sum over the root-to-leaf paths of all trees. On a path to a
leaf of value ``v``, the nodes that split on the same feature are merged: each of the
path's ``m`` unique features ``j`` has a *zero fraction* ``z_j`` (the product, over the
path's nodes splitting on ``j``, of ``cover(child on the path) / cover(node)``, with
XGBoost's covers ``sum_hessian``) and a *one fraction* ``o_j``, 1 when the sample follows
the path at every node that splits on ``j`` and 0 otherwise. The path's game is
``g(S) = v * prod_{j in S} o_j * prod_{j not in S} z_j`` and its Shapley values are what
the path adds to each feature's SHAP value.

The zero fractions are fixed by the model and the one fractions are bits, so everything is
computed at compile time: for every path and every pattern of "followed" bits of its
(at most :data:`MAX_DEPTH`) splits, the Shapley values of its unique features, in float64.
Scoring then only compares each row with every split of every path, turns the bits of a
path into an index into its table, gathers the precomputed values and sums them per
feature. The bias (XGBoost's last column) is the base margin plus every tree's expected
value ``sum_leaves v * prod_path z``.

Exactness
---------
XGBoost computes each tree's values in float32 with the recursive TreeSHAP algorithm and
accumulates them in float32; the tables here are exact float64 values of the same
quantities, so the two agree within rounding only. :func:`compile_shap` proves that they
agree within :data:`SHAP_TOLERANCE` on probe rows built from the model's own split
thresholds (each threshold, its float32 neighbours, NaN), an all-missing row and a few
random rows; otherwise it returns ``None`` and callers keep using XGBoost.

Limits
------
The node arrays come from :func:`nkpredict.fast.trees.compile_trees`, so only what it
supports can be compiled (one output, numerical splits, ``binary:logistic`` or
``reg:squarederror``), and trees may be at most :data:`MAX_DEPTH` splits deep: a path of
``L`` splits has a table of ``2**L`` rows (300 trees of depth 6: tens of MB, compiled in
about a second). Inputs are processed in chunks of rows, so memory stays bounded; for
large inputs XGBoost, which can use several threads, may be the faster choice.
"""

from __future__ import annotations

import json
import logging
from collections import defaultdict
from dataclasses import dataclass
from math import factorial
from typing import Any

import numpy as np
import xgboost as xgb

from nkpredict.fast.trees import CompiledTrees, compile_trees, float32_rows, probe_rows

__all__ = [
    "CHUNK_CELLS",
    "MAX_DEPTH",
    "RANDOM_ROWS",
    "SHAP_TOLERANCE",
    "CompiledShap",
    "compile_shap",
]

logger = logging.getLogger(__name__)

MAX_DEPTH = 6
"""Deepest supported tree (number of splits on a root-to-leaf path)."""
SHAP_TOLERANCE = 1e-5
"""Largest absolute difference from XGBoost's ``pred_contribs`` accepted at compile time."""
RANDOM_ROWS = 16
"""Random rows (probe values shuffled column by column) added to the compile-time check."""
CHUNK_CELLS = 1 << 17
"""Rows are processed in chunks of about this many (row, split or table entry) cells.

It keeps the temporaries near 1 MB: bounded memory for any input, and (measured) larger
chunks are several times slower, their fresh allocations costing page faults.
"""
_RANDOM_SEED = 20240612


@dataclass(frozen=True, eq=False)
class CompiledShap:
    """Precomputed path tables of a tree ensemble.

    The "steps" are the splits of the paths (of at least one split): ``step_*[s, p]``
    describes the ``s``-th split of path ``p``, and paths shorter than the deepest one are
    padded with steps of weight 0. The "entries" are the (path, unique feature) pairs,
    sorted by feature. A path's table has one row per pattern of followed steps (bit ``s``
    set when the sample follows the path at its ``s``-th step) and one column per unique
    feature of the path; the tables are flattened one after the other into :attr:`table`.

    Attributes
    ----------
    base_value : float
        What ``pred_contribs`` puts in its last column: the base margin plus the expected
        value of every tree.
    n_features : int
    step_feature : ndarray of intp, shape (depth, n_paths)
        Feature the step's node splits on.
    step_threshold : ndarray of float32, shape (depth, n_paths)
        The node's split condition (a row goes left when ``x < threshold``).
    step_default_left : ndarray of bool, shape (depth, n_paths)
        Direction of a missing value at the node.
    step_weight : ndarray of int16, shape (depth, n_paths)
        ``2**s * m`` if the path goes left at its ``s``-th step and ``-2**s * m`` if it goes
        right, ``m`` being the length of the path's table rows (0 for padding): summed over
        the steps where the sample goes left, it gives the position of the sample's table
        row up to a constant of the path (folded into :attr:`entry_base`). At most
        ``(2**MAX_DEPTH - 1) * MAX_DEPTH`` in absolute value, so int16 is enough.
    entry_path : ndarray of intp, shape (n_entries,)
        Path of the entry.
    entry_base : ndarray of intp, shape (n_entries,)
        Position in :attr:`table` of the entry's value, minus the path's weighted sum.
    feature_start : ndarray of intp, shape (n_used,)
        First entry of each feature that has entries.
    used_features : ndarray of intp, shape (n_used,)
        Features that have entries (the others' SHAP values are 0).
    table : ndarray of float64, shape (n_table,)
        Every path's Shapley values, for every pattern of followed steps.
    """

    base_value: float
    n_features: int
    step_feature: np.ndarray
    step_threshold: np.ndarray
    step_default_left: np.ndarray
    step_weight: np.ndarray
    entry_path: np.ndarray
    entry_base: np.ndarray
    feature_start: np.ndarray
    used_features: np.ndarray
    table: np.ndarray

    def contributions(self, values: np.ndarray) -> np.ndarray:
        """SHAP values equal (within :data:`SHAP_TOLERANCE`) to XGBoost's ``pred_contribs``.

        Parameters
        ----------
        values : ndarray, shape (n_samples, n_features)
            Converted to float32 like XGBoost does; NaN is a missing value.

        Returns
        -------
        ndarray of float64, shape (n_samples, n_features)
            Without the bias column: that is :attr:`base_value`, the same for every row.
        """
        x = float32_rows(values, self.n_features)
        out = np.zeros((x.shape[0], self.n_features), dtype=np.float64)
        if self.used_features.size == 0:
            return out
        chunk = max(1, CHUNK_CELLS // max(self.step_weight.size, self.entry_path.size))
        for start in range(0, x.shape[0], chunk):
            stop = start + chunk
            out[start:stop, self.used_features] = self._feature_sums(x[start:stop])
        return out

    def _feature_sums(self, x: np.ndarray) -> np.ndarray:
        """SHAP values of :attr:`used_features`, shape (n_rows, n_used).

        ``np.take`` is used rather than ``x[:, index]``, whose result is not C-ordered (every
        following operation would then loop over rows innermost).
        """
        value = np.take(x, self.step_feature, axis=1)  # (row, step, path)
        went_left = value < self.step_threshold
        if np.isnan(x).any():
            went_left |= np.isnan(value) & self.step_default_left
        position = (went_left * self.step_weight).sum(axis=1, dtype=np.int16)  # (row, path)
        index = np.take(position, self.entry_path, axis=1) + self.entry_base
        return np.add.reduceat(np.take(self.table, index), self.feature_start, axis=1)


@dataclass(frozen=True)
class _Path:
    """One root-to-leaf path of a tree, its splits merged by feature.

    Attributes
    ----------
    nodes : tuple of int
        The path's split nodes (global indices of :class:`CompiledTrees`), root first.
    went_left : tuple of bool
        Whether the path goes left at each of them.
    slots : tuple of int
        For each split, the position of its feature among the path's unique features.
    features : tuple of int
        The unique features, in order of first appearance.
    zero : ndarray of float64, shape (m,)
        Zero fraction of each unique feature.
    leaf_value : float
    """

    nodes: tuple[int, ...]
    went_left: tuple[bool, ...]
    slots: tuple[int, ...]
    features: tuple[int, ...]
    zero: np.ndarray
    leaf_value: float


def _path(
    trees: CompiledTrees, cover: np.ndarray, steps: list[tuple[int, bool]], leaf: int
) -> _Path:
    """The :class:`_Path` through ``steps`` (split node, went left) to ``leaf``."""
    nodes = tuple(node for node, _ in steps)
    went_left = tuple(left for _, left in steps)
    position: dict[int, int] = {}
    slots = tuple(position.setdefault(int(trees.feature[n]), len(position)) for n in nodes)
    zero = np.ones(len(position), dtype=np.float64)
    for (node, left), slot in zip(steps, slots, strict=True):
        zero[slot] *= cover[trees.children[2 * node + left]] / cover[node]
    leaf_value = float(trees.threshold[leaf])
    return _Path(nodes, went_left, slots, tuple(position), zero, leaf_value)


def _tree_paths(trees: CompiledTrees, cover: np.ndarray, root: int) -> list[_Path]:
    """Every root-to-leaf path of the tree at ``root``, leaves left to right."""
    paths = []
    pending: list[tuple[int, list[tuple[int, bool]]]] = [(root, [])]
    while pending:
        node, steps = pending.pop()
        left, right = int(trees.children[2 * node + 1]), int(trees.children[2 * node])
        if left == node:
            paths.append(_path(trees, cover, steps, node))
        else:
            pending.append((right, [*steps, (node, False)]))
            pending.append((left, [*steps, (node, True)]))
    return paths


def _bits(n_bits: int) -> np.ndarray:
    """Bit ``k`` of every integer below ``2**n_bits``, shape (2**n_bits, n_bits), bool."""
    return (np.arange(1 << n_bits)[:, None] >> np.arange(n_bits) & 1).astype(bool)


def _shapley_kernel(m: int) -> np.ndarray:
    """Linear map from a path's ``prod_{j not in S} z_j`` to its Shapley values.

    Returns
    -------
    ndarray of float64, shape (2**m, 2**m * m)
        ``K[S, b * m + i]`` is ``[S subset of b] * c_i(S)`` with the Shapley weights
        ``c_i(S) = w(|S| - 1)`` if ``i`` is in ``S`` else ``-w(|S|)``, where
        ``w(s) = s! (m - s - 1)! / m!``: for one fractions ``o = bits(b)`` the game is
        ``g(S) = [S subset of b] * prod_{j not in S} z_j`` (times the leaf value), so
        ``phi_i = sum_S c_i(S) g(S)``.
    """
    members = _bits(m)  # members[S, i]: is i in S
    size = members.sum(axis=1)
    w = np.asarray([factorial(s) * factorial(m - s - 1) / factorial(m) for s in range(m)] + [0.0])
    coefficient = np.where(members, w[size - 1][:, None], -w[size][:, None])  # (S, i)
    subset = (np.arange(1 << m)[:, None] & ~np.arange(1 << m)[None, :]) == 0  # (S, b)
    return (subset[:, :, None] * coefficient[:, None, :]).reshape(1 << m, -1)


def _slot_patterns(slots: tuple[int, ...]) -> np.ndarray:
    """Unique-feature bit pattern of every pattern of followed splits.

    A unique feature's one fraction is 1 when every split on it is followed.
    """
    followed = _bits(len(slots))
    n_slots = max(slots) + 1
    one = np.stack([followed[:, np.asarray(slots) == k].all(axis=1) for k in range(n_slots)])
    return (one.T * (1 << np.arange(n_slots))).sum(axis=1)


def _group_tables(paths: list[_Path]) -> list[np.ndarray]:
    """Shapley values of paths that share their ``slots``, for every pattern of followed splits.

    Returns
    -------
    list of ndarray of float64, shape (2**len(slots), m) each
        ``[c, i]``: value of unique feature ``i`` when split ``s`` is followed iff bit ``s``
        of ``c`` is set.
    """
    slots = paths[0].slots
    zero = np.stack([path.zero for path in paths])
    leaf_value = np.asarray([path.leaf_value for path in paths])
    n_paths, m = zero.shape
    absent = ~_bits(m)  # absent[S, j]: j not in S
    zero_products = np.prod(np.where(absent, zero[:, None, :], 1.0), axis=2)  # (p, S)
    shapley = (zero_products @ _shapley_kernel(m)).reshape(n_paths, 1 << m, m)
    shapley *= leaf_value[:, None, None]
    return list(shapley[:, _slot_patterns(slots), :])


def _tables(paths: list[_Path]) -> list[np.ndarray]:
    """The table of every path (paths grouped by ``slots`` to tabulate them together)."""
    groups: dict[tuple[int, ...], list[int]] = defaultdict(list)
    for p, path in enumerate(paths):
        groups[path.slots].append(p)
    tables: dict[int, np.ndarray] = {}
    for members in groups.values():
        tables.update(zip(members, _group_tables([paths[p] for p in members]), strict=True))
    return [tables[p] for p in range(len(paths))]


def _steps(trees: CompiledTrees, paths: list[_Path]) -> dict[str, np.ndarray]:
    """Step arrays of :class:`CompiledShap`, and each path's weighted-sum constant.

    A path's row of followed steps starts at ``sum_s followed_s * 2**s * m`` in its table; a
    left step is followed when the row goes left, a right step when it does not, hence
    ``sum_s went_left_s * step_weight_s + constant`` with ``constant = sum_right 2**s * m``.
    """
    depth = max(len(path.nodes) for path in paths)
    nodes = np.zeros((depth, len(paths)), dtype=np.intp)
    weight = np.zeros((depth, len(paths)), dtype=np.int16)
    for p, path in enumerate(paths):
        nodes[: len(path.nodes), p] = path.nodes
        power = (1 << np.arange(len(path.nodes))) * path.zero.size
        weight[: len(path.nodes), p] = np.where(path.went_left, power, -power)
    padding = np.arange(depth)[:, None] >= [len(path.nodes) for path in paths]
    return {
        "step_feature": np.where(padding, 0, trees.feature[nodes]),
        "step_threshold": trees.threshold[nodes],
        "step_default_left": trees.default_left[nodes],
        "step_weight": weight,
        "constant": np.where(weight < 0, -weight, 0).sum(axis=0, dtype=np.intp),
    }


def _entries(paths: list[_Path], path_base: np.ndarray) -> dict[str, np.ndarray]:
    """Entry arrays of :class:`CompiledShap` (one entry per path and unique feature).

    ``path_base`` is each path's table offset plus its weighted-sum constant.
    """
    entries = sorted(
        (feature, p, k) for p, path in enumerate(paths) for k, feature in enumerate(path.features)
    )
    feature, entry_path, slot = np.asarray(entries, dtype=np.intp).reshape(-1, 3).T
    used, feature_start = np.unique(feature, return_index=True)
    return {
        "entry_path": entry_path,
        "entry_base": path_base[entry_path] + slot,
        "feature_start": feature_start.astype(np.intp),
        "used_features": used.astype(np.intp),
    }


def _build(trees: CompiledTrees, paths: list[_Path]) -> CompiledShap:
    """The :class:`CompiledShap` of ``paths`` (every root-to-leaf path of ``trees``)."""
    expected = sum(path.leaf_value * float(np.prod(path.zero)) for path in paths)
    split = [path for path in paths if path.nodes]  # single-leaf trees: only the bias
    if not split:
        return _bias_only(trees, expected)
    tables = _tables(split)
    sizes = np.asarray([table.size for table in tables], dtype=np.intp)
    steps = _steps(trees, split)
    path_base = np.cumsum(sizes) - sizes + steps.pop("constant")
    return CompiledShap(
        base_value=float(trees.base_margin) + expected,
        n_features=trees.n_features,
        **steps,
        **_entries(split, path_base),
        table=np.concatenate([table.ravel() for table in tables]),
    )


def _bias_only(trees: CompiledTrees, expected: float) -> CompiledShap:
    """The :class:`CompiledShap` of trees that are all single leaves (no SHAP values)."""
    none = np.empty(0, dtype=np.intp)
    return CompiledShap(
        base_value=float(trees.base_margin) + expected,
        n_features=trees.n_features,
        step_feature=none.reshape(0, 0),
        step_threshold=np.empty((0, 0), dtype=np.float32),
        step_default_left=np.empty((0, 0), dtype=bool),
        step_weight=np.empty((0, 0), dtype=np.int16),
        entry_path=none,
        entry_base=none,
        feature_start=none,
        used_features=none,
        table=np.empty(0),
    )


def _covers(booster: xgb.Booster, n_nodes: int) -> np.ndarray | None:
    """XGBoost's node covers, in the node order of :class:`CompiledTrees`."""
    try:
        document: dict[str, Any] = json.loads(bytes(booster.save_raw("json")))
        trees = document["learner"]["gradient_booster"]["model"]["trees"]
        cover = np.concatenate([np.asarray(t["sum_hessian"], dtype=np.float64) for t in trees])
    except (xgb.core.XGBoostError, ValueError, KeyError, TypeError) as exc:
        logger.info("SHAP not compiled: cannot read the node covers (%s)", exc)
        return None
    if cover.size != n_nodes:
        logger.info("SHAP not compiled: %d covers for %d nodes", cover.size, n_nodes)
        return None
    return cover


def _unsupported(trees: CompiledTrees, cover: np.ndarray) -> str | None:
    """Why the trees cannot be tabulated, or ``None`` when they can."""
    if trees.depth > MAX_DEPTH:
        return f"depth {trees.depth} (at most {MAX_DEPTH})"
    split = trees.children[0::2] != np.arange(trees.feature.size)
    if not np.all(cover[split] > 0):
        return "a split without cover"
    return None


def _check_rows(trees: CompiledTrees) -> np.ndarray:
    """Probe rows, an all-NaN row and random rows (probe values shuffled per column)."""
    probes = probe_rows(trees)
    shuffled = np.random.default_rng(_RANDOM_SEED).permuted(probes, axis=0)[:RANDOM_ROWS]
    missing = np.full((1, trees.n_features), np.nan, dtype=np.float32)
    return np.vstack([probes, missing, shuffled])


def _matches_xgboost(compiled: CompiledShap, booster: xgb.Booster, rows: np.ndarray) -> bool:
    """Whether contributions and bias equal ``pred_contribs`` within the tolerance."""
    matrix = xgb.DMatrix(
        rows, nthread=1, feature_names=booster.feature_names, feature_types=booster.feature_types
    )
    expected = np.asarray(booster.predict(matrix, pred_contribs=True), dtype=np.float64)
    if expected.shape != (rows.shape[0], compiled.n_features + 1):
        return False
    got = compiled.contributions(rows)
    feature_error = float(np.max(np.abs(got - expected[:, :-1]), initial=0.0))
    bias_error = float(np.max(np.abs(compiled.base_value - expected[:, -1])))
    logger.debug("SHAP check: feature error %.3g, bias error %.3g", feature_error, bias_error)
    return max(feature_error, bias_error) <= SHAP_TOLERANCE


def compile_shap(booster: xgb.Booster) -> CompiledShap | None:
    """Compile ``booster``'s TreeSHAP, or ``None`` when that cannot be done exactly.

    The result is returned only if its contributions and :attr:`CompiledShap.base_value`
    equal ``booster.predict(DMatrix(x, nthread=1), pred_contribs=True)`` within
    :data:`SHAP_TOLERANCE` on :func:`nkpredict.fast.trees.probe_rows`, an all-NaN row
    and a few random rows.
    """
    trees = compile_trees(booster)
    if trees is None:
        logger.info("SHAP not compiled: the trees could not be compiled")
        return None
    cover = _covers(booster, trees.feature.size)
    if cover is None:
        return None
    reason = _unsupported(trees, cover)
    if reason is not None:
        logger.info("SHAP not compiled: %s is not supported", reason)
        return None
    paths = [path for root in trees.roots for path in _tree_paths(trees, cover, int(root))]
    compiled = _build(trees, paths)
    if not _matches_xgboost(compiled, booster, _check_rows(trees)):
        logger.warning("compiled SHAP differs from XGBoost on probe rows: using XGBoost only")
        return None
    return compiled
