"""XGBoost tree ensembles evaluated with numpy: the same margins, without the per-call cost.

Every XGBoost prediction call (``inplace_predict``, ``predict``) pays a fixed cost of about
70 microseconds before it looks at a tree: it builds a fresh ``Context`` (which reads the
cgroup CPU-quota files from disk), compiles a regular expression for the device ordinal and
parses a JSON configuration. For one sample and 300 depth-2 trees that is nine tenths of the
time. :class:`CompiledTrees` reads the trees once (from the booster's own JSON model) into
flat arrays and walks all trees of all rows at once with numpy, which costs a few
microseconds for a request-sized input.

The margins are bitwise identical to ``Booster.inplace_predict(..., predict_type="margin")``:

- a split sends a row left when ``float32(x) < split_condition`` (both float32), and
  follows ``default_left`` when ``x`` is NaN (XGBoost's ``missing``);
- leaf values are summed tree by tree, in tree order, into a float32 accumulator that starts
  at the base margin (``np.cumsum`` with ``dtype=float32`` accumulates sequentially, like
  XGBoost's CPU predictor does per row);
- the base margin (the objective's link of ``base_score``) is taken from XGBoost itself, by
  predicting with a copy of the first tree whose leaves are all 0.

:func:`compile_trees` only accepts what it can reproduce (a ``gbtree`` booster with one
output, numerical splits, one of those two objectives) and then *proves* the equality on
probe rows built from the model's own split thresholds (each threshold, its float32
neighbours and NaN); any mismatch, or any other kind of model, returns ``None`` and callers
keep using XGBoost. XGBoost itself stays the reference (and the faster choice for large
inputs, where its per-call cost no longer matters and it can use several threads).
"""

from __future__ import annotations

import copy
import json
import logging
from dataclasses import dataclass
from typing import Any

import numpy as np
import xgboost as xgb

from nkpredict.fast.cache import PerObject

__all__ = [
    "PROBE_ROWS",
    "SUPPORTED_OBJECTIVES",
    "CompiledTrees",
    "compile_trees",
    "compiled_trees_for",
    "float32_rows",
    "probe_rows",
]

logger = logging.getLogger(__name__)

SUPPORTED_OBJECTIVES = ("binary:logistic", "reg:squarederror")
PROBE_ROWS = 256
"""Rows of the equality check run by :func:`compile_trees`."""
_PROBE_SEED = 20240611
_PROBE_MISSING = 0.1


def float32_rows(values: np.ndarray, n_features: int) -> np.ndarray:
    """``values`` as a C-ordered float32 matrix (n_rows, n_features), as XGBoost converts them.

    Raises
    ------
    ValueError
        ``values`` is not 2-d with ``n_features`` columns.
    """
    x = np.ascontiguousarray(values, dtype=np.float32)
    if x.ndim != 2 or x.shape[1] != n_features:
        raise ValueError(f"expected shape (n, {n_features}), got {x.shape}")
    return x


@dataclass(frozen=True, eq=False)
class CompiledTrees:
    """A tree ensemble as flat node arrays (all trees' nodes concatenated).

    Attributes
    ----------
    roots : ndarray of intp, shape (n_trees,)
        Index of each tree's root node.
    feature : ndarray of intp, shape (n_nodes,)
        Split feature (0 for leaves).
    threshold : ndarray of float32, shape (n_nodes,)
        Split condition; for leaves the leaf value.
    children : ndarray of intp, shape (2 * n_nodes,)
        ``children[2 * i]`` is node ``i``'s right child, ``children[2 * i + 1]`` its left
        child (so ``children[2 * i + went_left]``); leaves point to themselves.
    default_left : ndarray of bool, shape (n_nodes,)
        Direction of a missing value.
    depth : int
        Longest root-to-leaf path (number of splits).
    base_margin : float32
        Starting value of the margin.
    n_features : int
    """

    roots: np.ndarray
    feature: np.ndarray
    threshold: np.ndarray
    children: np.ndarray
    default_left: np.ndarray
    depth: int
    base_margin: np.float32
    n_features: int

    def predict_margin(self, values: np.ndarray) -> np.ndarray:
        """Raw model output, bitwise equal to XGBoost's margin.

        Parameters
        ----------
        values : ndarray, shape (n_samples, n_features)
            Converted to float32 like XGBoost does; NaN is a missing value.

        Returns
        -------
        ndarray of float32, shape (n_samples,)
        """
        x = float32_rows(values, self.n_features)
        n_rows = x.shape[0]
        n_trees = self.roots.size
        if n_rows == 0:
            return np.empty(0, dtype=np.float32)
        flat = x.ravel()
        missing = bool(np.isnan(flat).any())
        node = self._leaf_of_row(flat, missing) if n_rows == 1 else self._leaves(x, missing)
        terms = np.empty((n_rows, n_trees + 1), dtype=np.float32)
        terms[:, 0] = self.base_margin
        terms[:, 1:] = self.threshold[node]
        return np.cumsum(terms, axis=1, dtype=np.float32)[:, -1]

    def _split_left(self, value: np.ndarray, node: np.ndarray | slice, missing: bool) -> np.ndarray:
        """Whether ``value`` goes left at ``node`` (NaN follows the default direction)."""
        went_left = value < self.threshold[node]
        if missing:
            went_left |= np.isnan(value) & self.default_left[node]
        return went_left

    def _leaf_of_row(self, row: np.ndarray, missing: bool) -> np.ndarray:
        """Leaf of every tree for one row: every node's direction in one pass (fewer, larger
        numpy calls than a walk level by level; the answer of a request of one sample)."""
        went_left = self._split_left(row[self.feature], slice(None), missing)
        node = self.roots
        for _ in range(self.depth):
            node = self.children[2 * node + went_left[node]]
        return node

    def _leaves(self, x: np.ndarray, missing: bool) -> np.ndarray:
        """Leaf of every tree for every row, shape (n_rows, n_trees): a walk level by level."""
        n_rows = x.shape[0]
        flat = x.ravel()
        node = np.broadcast_to(self.roots, (n_rows, self.roots.size))
        offsets = (np.arange(n_rows, dtype=np.intp) * self.n_features)[:, None]
        for _ in range(self.depth):
            went_left = self._split_left(flat[offsets + self.feature[node]], node, missing)
            node = self.children[2 * node + went_left]
        return node


def _base_margin(document: dict[str, Any]) -> np.float32:
    """XGBoost's own base margin: the model's first tree with every leaf set to 0, predicted.

    The link function is applied inside XGBoost (in float32, with the C library's ``logf``
    for the logistic objective), so the value is taken from XGBoost rather than recomputed.
    """
    learner = document["learner"]
    model = learner["gradient_booster"]["model"]
    first = copy.deepcopy(model["trees"][0])
    leaf = [child == -1 for child in first["left_children"]]
    for key in ("split_conditions", "base_weights"):
        first[key] = [0.0 if is_leaf else v for is_leaf, v in zip(leaf, first[key], strict=True)]
    stub = copy.deepcopy(
        {key: value for key, value in learner.items() if key != "gradient_booster"}
    )
    stub["gradient_booster"] = {
        **{k: v for k, v in learner["gradient_booster"].items() if k != "model"},
        "model": {
            **{
                k: v
                for k, v in model.items()
                if k not in ("trees", "tree_info", "iteration_indptr")
            },
            "gbtree_model_param": {**model["gbtree_model_param"], "num_trees": "1"},
            "trees": [first],
            "tree_info": [0],
            "iteration_indptr": [0, 1],
        },
    }
    booster = xgb.Booster()
    booster.load_model(bytearray(json.dumps({**document, "learner": stub}).encode()))
    n_features = int(learner["learner_model_param"]["num_feature"])
    zeros = np.zeros((1, n_features), dtype=np.float32)
    return np.float32(booster.inplace_predict(zeros, predict_type="margin")[0])


def _tree_depth(left: list[int], right: list[int]) -> int:
    depth = {0: 0}
    deepest = 0
    for node in range(len(left)):  # XGBoost numbers children after their parent
        if left[node] != -1:
            for child in (left[node], right[node]):
                depth[child] = depth[node] + 1
                deepest = max(deepest, depth[child])
    return deepest


def _supported(learner: dict[str, Any]) -> str | None:
    """Why the model cannot be compiled, or ``None`` when it can."""
    objective = learner.get("objective", {}).get("name")
    if objective not in SUPPORTED_OBJECTIVES:
        return f"objective {objective!r}"
    params = learner.get("learner_model_param", {})
    if str(params.get("num_class", "0")) != "0" or str(params.get("num_target", "1")) != "1":
        return "several outputs"
    booster = learner.get("gradient_booster", {})
    if booster.get("name") != "gbtree":
        return f"booster {booster.get('name')!r}"
    model = booster.get("model", {})
    if str(model.get("gbtree_model_param", {}).get("num_parallel_tree", "1")) != "1":
        return "parallel trees"
    for tree in model.get("trees", []):
        if any(tree.get("split_type", [])) or tree.get("categories"):
            return "categorical splits"
        if str(tree.get("tree_param", {}).get("size_leaf_vector", "1")) not in ("0", "1"):
            return "vector leaves"
    return None


def _compile(document: dict[str, Any]) -> CompiledTrees:
    learner = document["learner"]
    trees = learner["gradient_booster"]["model"]["trees"]
    roots, feature, threshold, left_of, right_of, default_left = [], [], [], [], [], []
    depth = 0
    offset = 0
    for tree in trees:
        left = [int(c) for c in tree["left_children"]]
        right = [int(c) for c in tree["right_children"]]
        n_nodes = len(left)
        own = np.arange(n_nodes, dtype=np.intp)
        leaf = np.asarray(left) == -1
        roots.append(offset)
        feature.append(np.where(leaf, 0, np.asarray(tree["split_indices"], dtype=np.intp)))
        threshold.append(np.asarray(tree["split_conditions"], dtype=np.float32))
        left_of.append(np.where(leaf, own, np.asarray(left)) + offset)
        right_of.append(np.where(leaf, own, np.asarray(right)) + offset)
        default_left.append(np.asarray(tree["default_left"], dtype=bool))
        depth = max(depth, _tree_depth(left, right))
        offset += n_nodes
    children = np.empty(2 * offset, dtype=np.intp)
    children[0::2] = np.concatenate(right_of) if right_of else []
    children[1::2] = np.concatenate(left_of) if left_of else []
    params = learner["learner_model_param"]
    return CompiledTrees(
        roots=np.asarray(roots, dtype=np.intp),
        feature=np.concatenate(feature) if feature else np.empty(0, np.intp),
        threshold=np.concatenate(threshold) if threshold else np.empty(0, np.float32),
        children=children,
        default_left=np.concatenate(default_left) if default_left else np.empty(0, bool),
        depth=depth,
        base_margin=_base_margin(document),
        n_features=int(params["num_feature"]),
    )


def probe_rows(compiled: CompiledTrees, n_rows: int = PROBE_ROWS) -> np.ndarray:
    """Rows whose values sit on, just below and just above the model's split thresholds.

    Returns
    -------
    ndarray of float32, shape (n_rows, n_features)
        About :data:`_PROBE_MISSING` of the cells are NaN.
    """
    rng = np.random.default_rng(_PROBE_SEED)
    internal = compiled.children[0::2] != np.arange(compiled.feature.size)
    rows = rng.normal(0.0, 1.0, size=(n_rows, compiled.n_features)).astype(np.float32)
    for j in range(compiled.n_features):
        cuts = compiled.threshold[internal & (compiled.feature == j)]
        if cuts.size:
            picked = rng.choice(cuts, size=n_rows)
            step = rng.integers(-1, 2, size=n_rows)
            toward = np.where(step < 0, -np.inf, np.inf).astype(np.float32)
            nudged = np.where(step == 0, picked, np.nextafter(picked, toward))
            rows[:, j] = nudged.astype(np.float32)
    rows[rng.random(rows.shape) < _PROBE_MISSING] = np.nan
    return rows


def compile_trees(booster: xgb.Booster) -> CompiledTrees | None:
    """Compile ``booster`` for numpy evaluation, or ``None`` when that cannot be exact.

    The compiled trees are returned only if their margins equal XGBoost's bit for bit on
    :func:`probe_rows` (and on an empty row of NaN).
    """
    try:
        document = json.loads(bytes(booster.save_raw("json")))
        learner = document["learner"]
    except (xgb.core.XGBoostError, ValueError, KeyError) as exc:
        logger.info("trees not compiled: cannot read the model (%s)", exc)
        return None
    reason = _supported(learner)
    if reason is not None:
        logger.info("trees not compiled: %s is not supported", reason)
        return None
    try:
        compiled = _compile(document)
    except (KeyError, ValueError, TypeError, IndexError, xgb.core.XGBoostError) as exc:
        logger.info("trees not compiled: unexpected model layout (%s)", exc)
        return None
    probes = np.vstack([probe_rows(compiled), np.full((1, compiled.n_features), np.nan)])
    probes = probes.astype(np.float32)
    expected = np.asarray(booster.inplace_predict(probes, predict_type="margin"))
    got = compiled.predict_margin(probes)
    if expected.shape != got.shape or not np.array_equal(expected, got):
        logger.warning("compiled trees differ from XGBoost on probe rows: using XGBoost only")
        return None
    return compiled


compiled_trees_for: PerObject[xgb.Booster, CompiledTrees | None] = PerObject(compile_trees)
""":func:`compile_trees` of a booster, once per booster."""
