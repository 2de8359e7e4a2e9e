"""Cross-validation members: the fold models kept with a model, saved, loaded, used by what-if."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from nkpredict.data.expression import prepare_expression
from nkpredict.evaluate.cv import MODEL_NAME, cross_validate
from nkpredict.evaluate.folds import CVConfig, make_folds
from nkpredict.model.fitted import MEMBERS_DIR, NKResistanceModel
from nkpredict.simulate.cohort import simulate_cohort
from nkpredict.whatif.counterfactual import whatif
from nkpredict.whatif.interventions import builtin_intervention

BOOSTER = {"n_estimators": 8, "early_stopping_rounds": None, "n_jobs": 1}


@pytest.fixture(scope="module")
def fitted() -> tuple[NKResistanceModel, object]:
    cohort = simulate_cohort(n_samples=120, n_genes=400, seed=5)
    prepared = prepare_expression(cohort.counts)
    y = cohort.labels["resistant"]
    model = NKResistanceModel(booster=BOOSTER)
    folds = make_folds(y, None, CVConfig(n_splits=3, n_repeats=2), "classification")
    result = cross_validate(
        {MODEL_NAME: model.core}, prepared.matrix, y, folds, "classification", keep=MODEL_NAME
    )
    model.fit_prepared(prepared, y)
    return model.keep_members(result.models), prepared


def test_the_first_repeats_fold_models_are_kept(fitted: tuple[NKResistanceModel, object]) -> None:
    model, _ = fitted
    assert len(model.members) == 3  # 3 folds of the first of 2 repeats
    assert all(m.members == () for m in model.members)


def test_members_score_like_fold_models_and_survive_saving(
    fitted: tuple[NKResistanceModel, object], tmp_path: Path
) -> None:
    model, prepared = fitted
    loaded = NKResistanceModel.load(model.save(tmp_path / "m"))
    assert sorted(p.name for p in (tmp_path / "m" / MEMBERS_DIR).iterdir()) == ["0", "1", "2"]
    for before, after in zip(model.members, loaded.members, strict=True):
        assert np.array_equal(
            before.predict_margin(prepared.matrix), after.predict_margin(prepared.matrix)
        )
    assert not np.array_equal(
        model.members[0].predict_margin(prepared.matrix), model.predict_margin(prepared.matrix)
    )


def test_whatif_spread_comes_from_the_members(fitted: tuple[NKResistanceModel, object]) -> None:
    model, prepared = fitted
    result = whatif(model, prepared, [builtin_intervention("b7h6_restoration")])
    columns = result.columns()
    spread = columns["delta_log_odds_spread"]
    assert np.isfinite(spread).all() and (spread >= 0).all() and spread.max() > 0
    assert result.n_models == 3
