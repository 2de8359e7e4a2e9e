"""The genome-wide screen: off-catalogue drivers join the model, lineage proxies do not."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from nkpredict.data.expression import prepare_expression
from nkpredict.exceptions import InputError
from nkpredict.features import genome as genome_module
from nkpredict.features.builder import NKFeatureBuilder
from nkpredict.features.genome import select_genome_genes
from nkpredict.model.fitted import NKResistanceModel
from nkpredict.simulate.cohort import Cohort, simulate_cohort


def _cohort(scenario: str, seed: int = 0) -> tuple[pd.DataFrame, pd.Series, Cohort]:
    cohort = simulate_cohort(n_samples=200, n_genes=400, seed=seed, scenario=scenario)
    return prepare_expression(cohort.counts).matrix, cohort.labels["resistant"], cohort


def _planted_driver(cohort: Cohort) -> str:
    """The off-catalogue gene the simulator planted (named by its driver)."""
    prefix = "OFF_CATALOGUE_"
    (name,) = [c for c in cohort.contributions.columns if c.startswith(prefix)]
    return name.removeprefix(prefix)


def test_the_off_catalogue_driver_passes_the_residual_screen() -> None:
    matrix, y, cohort = _cohort("off-catalogue")
    builder = NKFeatureBuilder(n_genome_genes=5, genome_alpha=0.05).fit(matrix, y)
    driver = _planted_driver(cohort)
    assert builder.genome_genes_[:1] == (driver,)
    assert f"genome:{driver}" in builder.get_feature_names_out()
    assert builder.allocation("axis").loc[f"genome:{driver}", "GENOME_WIDE"] == 1.0


@pytest.mark.parametrize("seed", [0, 1])
def test_genes_that_track_the_lineage_stay_out(seed: int) -> None:
    """Without an off-catalogue driver, background genes correlated with the label through
    the lineages pass a plain correlation test but not the residual screen."""
    matrix, y, _ = _cohort("confounded", seed)
    screened = NKFeatureBuilder(n_genome_genes=5, genome_alpha=0.05).fit(matrix, y)
    assert screened.genome_genes_ == ()
    top = NKFeatureBuilder(n_genome_genes=5, genome_alpha=None).fit(matrix, y)
    assert len(top.genome_genes_) == 5  # the previous behaviour: always the top 5


def test_the_screen_refits_the_layout_with_the_genes() -> None:
    matrix, y, _ = _cohort("off-catalogue")
    builder = NKFeatureBuilder(n_genome_genes=5, genome_alpha=0.05).fit(matrix, y)
    features = builder.transform(matrix)
    gene = builder.genome_genes_[0]
    np.testing.assert_allclose(features[f"genome:{gene}"], matrix[gene])
    restored = NKFeatureBuilder.from_dict(builder.to_dict())
    assert restored.genome_alpha == 0.05
    pd.testing.assert_frame_equal(restored.transform(matrix), features)


def test_the_default_model_screens_and_saves_its_choice(tmp_path: Path) -> None:
    matrix, y, _ = _cohort("off-catalogue")
    model = NKResistanceModel(booster={"n_estimators": 20})
    model.fit_prepared(prepare_expression(matrix, scale="log"), y)
    genome = model.feature_builder.genome_genes_
    assert len(genome) >= 1
    model.save(tmp_path / "m")
    loaded = NKResistanceModel.load(tmp_path / "m")
    assert loaded.genome_alpha == model.genome_alpha
    assert loaded.feature_builder.genome_genes_ == genome


def test_screen_needs_the_catalogue_features_and_a_usable_label() -> None:
    values = np.random.default_rng(0).normal(size=(20, 3))
    genes = ["A", "B", "C"]
    with pytest.raises(InputError, match="catalogue features"):
        select_genome_genes(values, genes, set(), np.arange(20) % 2, 2, 0.05)
    with pytest.raises(InputError, match="non-numeric"):
        select_genome_genes(values, genes, set(), np.array(list("abc") * 6 + ["a", "b"]), 2, None)
    assert select_genome_genes(values, genes, set(), np.arange(20) % 2, 0, None) == []
    assert select_genome_genes(values, genes, set(genes), np.arange(20) % 2, 2, None) == []


def test_correlations_read_chunk_by_chunk_match_the_whole(monkeypatch: pytest.MonkeyPatch) -> None:
    """The chunked reading (float32 memory maps too) ranks genes like one pass over all."""
    rng = np.random.default_rng(1)
    values = rng.normal(size=(50, 40)).astype(np.float32)
    values[3, 5] = np.nan
    y = (values[:, 7] + 0.5 * values[:, 30] + rng.normal(size=50) > 0).astype(int)
    genes = [f"G{i}" for i in range(40)]
    whole = select_genome_genes(values, genes, {"G0"}, y, 6, None)
    monkeypatch.setattr(genome_module, "_CHUNK_COLUMNS", 7)
    assert select_genome_genes(values, genes, {"G0"}, y, 6, None) == whole
    assert whole[0] == "G7"
