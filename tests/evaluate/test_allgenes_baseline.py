"""The all-genes baseline is plain early-stopped XGBoost: no biological prior."""

from __future__ import annotations

import numpy as np

from nkpredict.evaluate.baselines import baseline_estimators


def test_all_genes_baseline_has_no_prior() -> None:
    factory = baseline_estimators("classification")["xgb_allgenes"]
    trees = factory()
    rng = np.random.default_rng(0)
    X = rng.normal(size=(80, 30))
    y = (X[:, 0] + rng.normal(size=80) > 0).astype(int)
    trees.fit(X, y)
    assert trees.prior is False and trees.prior_ is None
    assert 0 < trees.n_rounds_ <= trees.n_estimators
