"""How much the planted non-additive structure can add: the prior given the planted truth.

Each non-additive scenario of the simulator plants a structure that a linear model on the NK
features does not hold. This script measures, on the accuracy panel's folds, the
cross-validated ROC AUC of

- ``model``: the default model (prior + trees, as the panel runs it);
- ``linear``: the panel's linear baseline (``LogisticRegression(C=0.1)`` on the NK features);
- ``prior``: the model's biological prior alone on the NK features (its score weights and
  signed catalogue genes);
- ``prior + visible truth``: the same prior given extra features in the exact form of the planted
  structure, built from the simulator's own state wherever that state shows in a tumour's
  expression profile, which no learner is told:

  - ``lineage-restricted``: ``CD48 x [B-cell]`` and ``[B-cell]`` (CD48 loss acts in B-cell
    lines only);
  - ``interactions``: ``NKG2D axis x [sheddases high]`` and ``[sheddases high]`` (NKG2D-ligand
    loss acts only where ADAM10/ADAM17 are high; the gate is the simulator's, computed from the
    true, noise-free expression);
  - ``cnv``: the focal NCR3LG1 deletion and the 6p21 loss calls (both lower mRNA);
- ``prior + all truth``: also the planted state that no expression profile shows
  (``interactions``: ``HLA-E x [donor NKG2A-high]``, a property of the donor's NK cells;
  ``cnv``: the B2M and JAK1 loss-of-function calls, invisible in mRNA), so the rest of the gap to
  the oracle is measurement noise.

So the gain that any learner could get from finding the visible structure is bounded by
``prior + visible truth`` minus ``prior`` (and its gain over the linear baseline by
``prior + visible truth`` minus ``linear``).

Usage::

    python benchmarks/structure_ceiling.py --scenarios lineage-restricted interactions cnv --n 300
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

from nkpredict.data.expression import prepare_expression
from nkpredict.evaluate.baselines import baseline_estimators
from nkpredict.evaluate.folds import CVConfig, make_folds
from nkpredict.evaluate.metrics import score
from nkpredict.model.fitted import NKResistanceModel
from nkpredict.model.prior import KnowledgePrior
from nkpredict.simulate.cohort import Cohort, simulate_cohort
from nkpredict.simulate.scenarios import RESTRICTED_GENE, RESTRICTED_LINEAGE

TruthFeatures = Callable[
    [Cohort, pd.DataFrame], tuple[dict[str, np.ndarray], dict[str, np.ndarray]]
]
"""``(cohort, NK features) -> (visible truth features, invisible truth features)``."""


def _state(cohort: Cohort, column: str) -> np.ndarray:
    return cohort.metadata[column].to_numpy(dtype=float)


def _lineage_restricted(cohort: Cohort, features: pd.DataFrame) -> tuple[dict, dict]:
    inside = (cohort.labels["lineage"].astype(str) == RESTRICTED_LINEAGE).to_numpy(float)
    gene = features[f"gene:{RESTRICTED_GENE}"].to_numpy()
    return {"restricted": gene * inside, "inside": inside}, {}


def _interactions(cohort: Cohort, features: pd.DataFrame) -> tuple[dict, dict]:
    high = _state(cohort, "shedding_high")
    donor = _state(cohort, "donor_nkg2a_high")
    visible = {"nkg2d_x_shedding": features["axis:NKG2D"].to_numpy() * high, "shedding": high}
    hla_e = features["gene:HLA-E"].to_numpy()
    return visible, {"hla_e_x_donor": hla_e * donor, "donor": donor}


def _cnv(cohort: Cohort, features: pd.DataFrame) -> tuple[dict, dict]:
    visible = {name: _state(cohort, name) for name in ("cnv_ncr3lg1_del", "cnv_hla_6p21_loss")}
    return visible, {name: _state(cohort, name) for name in ("cnv_b2m_lof", "cnv_jak1_lof")}


TRUTHS: dict[str, TruthFeatures] = {
    "lineage-restricted": _lineage_restricted,
    "interactions": _interactions,
    "cnv": _cnv,
}
COLUMNS = ("model", "linear", "prior", "prior + visible truth", "prior + all truth")


def ceiling(scenario: str, n: int, seed: int, n_genes: int) -> dict[str, float]:
    """Pooled out-of-fold ROC AUC of the estimators on one cohort, and its oracle."""
    cohort = simulate_cohort(n_samples=n, n_genes=n_genes, seed=seed, scenario=scenario)
    matrix = prepare_expression(cohort.counts).matrix
    y = cohort.labels["resistant"]
    folds = make_folds(y, None, CVConfig(5, 1, seed), "classification")
    linear = baseline_estimators("classification", random_state=seed)["linear"]
    predicted = {name: np.zeros(len(y)) for name in COLUMNS}
    for fold in folds:
        train, test = fold.train, fold.test
        core = NKResistanceModel().core().fit(matrix.iloc[train], y.iloc[train])
        predicted["model"][test] = core.predict_proba(matrix.iloc[test])[:, 1]
        baseline = linear().fit(matrix.iloc[train], y.iloc[train])
        predicted["linear"][test] = baseline.predict_proba(matrix.iloc[test])[:, 1]
        features = core[0].transform(matrix)
        trees = core[-1]
        weights, signs = trees.prior_weights(), trees.prior_signs()
        visible, invisible = TRUTHS[scenario](cohort, features)
        frames = {
            "prior": features,
            "prior + visible truth": features.assign(**visible),
            "prior + all truth": features.assign(**visible, **invisible),
        }
        for name, frame in frames.items():
            values = frame.to_numpy()
            extra = values.shape[1] - features.shape[1]  # the truth: weight 1, no sign
            prior = KnowledgePrior().fit(
                values[train],
                y.iloc[train].to_numpy(),
                feature_weights=np.concatenate([weights, np.ones(extra)]),
                feature_signs=np.concatenate([signs, np.zeros(extra, dtype=np.int8)]),
            )
            predicted[name][test] = prior.margin(values[test])
    aucs = {name: float(roc_auc_score(y, p)) for name, p in predicted.items()}
    aucs["oracle"] = score("classification", y, cohort.labels["true_probability"])["roc_auc"]
    return aucs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenarios", nargs="+", choices=sorted(TRUTHS), default=sorted(TRUTHS))
    parser.add_argument("--n", type=int, default=300)
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2, 3, 4, 5])
    parser.add_argument("--n-genes", type=int, default=1000)
    args = parser.parse_args(argv)
    for scenario in args.scenarios:
        rows = {seed: ceiling(scenario, args.n, seed, args.n_genes) for seed in args.seeds}
        table = pd.DataFrame(rows).T.rename_axis("seed")
        table.loc["mean"] = table.mean()
        table["visible truth - prior"] = table["prior + visible truth"] - table["prior"]
        table["visible truth - linear"] = table["prior + visible truth"] - table["linear"]
        print(f"\n{scenario}, n = {args.n}")
        print(table.round(3).to_string())
    return 0


if __name__ == "__main__":
    sys.exit(main())
