"""How much the planted lineage restriction can add: the prior given the true interaction.

In the ``lineage-restricted`` scenario CD48 loss drives resistance in B-cell lines only, and a
lineage offset hides its marginal association. This script measures, on the accuracy panel's
folds, the cross-validated ROC AUC of

- ``model``: the default model (prior + trees, as the panel runs it);
- ``prior``: the biological prior alone on the NK features;
- ``prior + truth``: the same prior given two extra features built from the simulator's own
  lineage labels, ``CD48 x [B-cell]`` and ``[B-cell]``, i.e. the exact form of the planted
  interaction, which no learner is told;

so the gain that any learner could get from finding the interaction is bounded by
``prior + truth`` minus ``prior``.

Usage::

    python benchmarks/interaction_ceiling.py --n 300 --seeds 0 1 2 3 4 5
"""

from __future__ import annotations

import argparse
import sys

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

from nkpredict.data.expression import prepare_expression
from nkpredict.evaluate.folds import CVConfig, make_folds
from nkpredict.model.fitted import NKResistanceModel
from nkpredict.model.prior import KnowledgePrior
from nkpredict.simulate.cohort import simulate_cohort
from nkpredict.simulate.scenarios import RESTRICTED_GENE, RESTRICTED_LINEAGE


def ceiling(n: int, seed: int, n_genes: int) -> dict[str, float]:
    """Pooled out-of-fold ROC AUC of the three estimators on one cohort."""
    cohort = simulate_cohort(n_samples=n, n_genes=n_genes, seed=seed, scenario="lineage-restricted")
    matrix = prepare_expression(cohort.counts).matrix
    y = cohort.labels["resistant"]
    inside = (cohort.labels["lineage"].astype(str) == RESTRICTED_LINEAGE).to_numpy(float)
    folds = make_folds(y, None, CVConfig(5, 1, seed), "classification")
    predicted = {name: np.zeros(len(y)) for name in ("model", "prior", "prior + truth")}
    for fold in folds:
        train, test = fold.train, fold.test
        core = NKResistanceModel().core().fit(matrix.iloc[train], y.iloc[train])
        predicted["model"][test] = core.predict_proba(matrix.iloc[test])[:, 1]
        features = core[0].transform(matrix)
        truth = features.assign(
            restricted=features[f"gene:{RESTRICTED_GENE}"].to_numpy() * inside, inside=inside
        )
        for name, frame in (("prior", features), ("prior + truth", truth)):
            values = frame.to_numpy()
            prior = KnowledgePrior().fit(values[train], y.iloc[train].to_numpy())
            predicted[name][test] = prior.margin(values[test])
    return {name: float(roc_auc_score(y, p)) for name, p in predicted.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=300)
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2, 3, 4, 5])
    parser.add_argument("--n-genes", type=int, default=1000)
    args = parser.parse_args(argv)
    rows = {seed: ceiling(args.n, seed, args.n_genes) for seed in args.seeds}
    table = pd.DataFrame(rows).T.rename_axis("seed")
    table["truth gain"] = table["prior + truth"] - table["prior"]
    print(table.round(3).to_string())
    print(f"\nmean (n = {args.n}):")
    print(table.mean().round(3).to_string())
    return 0


if __name__ == "__main__":
    sys.exit(main())
