"""Coverage stated: every prediction carries its coverage, warnings and imputed genes, and the
plain-language drivers never name an imputed gene."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from nkpredict.explain.attributions import explain
from nkpredict.model.fitted import NKResistanceModel
from nkpredict.settings import LOW_COVERAGE_WARNING
from nkpredict.simulate.cohort import Cohort


@pytest.fixture(scope="module")
def model(service_model_dir: Path) -> NKResistanceModel:
    return NKResistanceModel.load(service_model_dir)


def _partial(cohort: Cohort, drop: list[str]) -> pd.DataFrame:
    return cohort.counts.iloc[:4].drop(columns=drop)


def test_a_clean_call_has_no_warning(model: NKResistanceModel, service_cohort: Cohort) -> None:
    table = model.predict_table(model.prepare(service_cohort.counts.iloc[:3]))
    assert (table["warnings"] == "").all() and (table["imputed_genes"] == "").all()


def test_imputed_genes_are_named_per_sample(
    model: NKResistanceModel, service_cohort: Cohort
) -> None:
    records = model.scorer.predict(model.prepare(_partial(service_cohort, ["NCR3LG1"])))
    assert all(g == ["NCR3LG1"] for g in records.imputed_genes)
    assert all(w == ["imputed_genes"] for w in records.warnings)


def test_low_coverage_is_a_warning(model: NKResistanceModel, service_cohort: Cohort) -> None:
    genes = list(model.feature_builder.genes_in_)
    drop = [g for g in genes[: int(len(genes) * 0.3)] if g in service_cohort.counts.columns]
    predictions = model.scorer.predict(model.prepare(_partial(service_cohort, drop)))
    assert (predictions.coverage < LOW_COVERAGE_WARNING).all()
    assert all("low_coverage" in w and "imputed_genes" in w for w in predictions.warnings)


def test_drivers_never_name_an_imputed_gene(
    model: NKResistanceModel, service_cohort: Cohort
) -> None:
    full = explain(model, model.prepare(service_cohort.counts.iloc[:4]))
    sample = str(full.shap.index[0])
    top_gene = full.top_drivers(sample, level="gene", n=1)[0].unit
    partial = explain(model, model.prepare(_partial(service_cohort, [top_gene])))
    assert partial.imputed_genes(sample) == [top_gene]
    for level in ("gene", "feature"):
        named = [d.unit for d in partial.top_drivers(sample, level=level, n=20)]
        assert top_gene not in named and f"gene:{top_gene}" not in named
    assert np.isfinite(partial.level("gene").loc[sample, top_gene])  # still attributed


def test_explanation_tables_mark_imputed_genes(
    model: NKResistanceModel, service_cohort: Cohort
) -> None:
    explanation = explain(model, model.prepare(_partial(service_cohort, ["NCR3LG1", "HLA-E"])))
    table = explanation.table("gene")
    assert set(table["imputed_genes"]) == {"HLA-E;NCR3LG1"} or set(table["imputed_genes"]) == {
        "NCR3LG1;HLA-E"
    }
