"""Tests for the NK feature builder."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from nkpredict.catalog import EVIDENCE_LEVELS, GeneSet, load_catalog
from nkpredict.exceptions import InputError, NotFittedError
from nkpredict.features.builder import NKFeatureBuilder
from nkpredict.vocabulary import AGGREGATE_LEVELS


@pytest.fixture(scope="module")
def matrix() -> pd.DataFrame:
    genes = [*load_catalog().all_genes(), "GAPDH", "ACTB", "FILLER1"]
    rng = np.random.default_rng(0)
    values = rng.normal(5.0, 1.0, (60, len(genes)))
    return pd.DataFrame(values, columns=genes, index=[f"S{i}" for i in range(60)])


def test_feature_names_map_back_to_catalogue(matrix: pd.DataFrame) -> None:
    catalog = load_catalog()
    builder = NKFeatureBuilder().fit(matrix)
    names = list(builder.get_feature_names_out())
    axes = {a.name for a in catalog.axes}
    sets = {s.name for s in catalog.gene_sets}
    for name in names:
        kind, _, unit = name.partition(":")
        if kind == "gene":
            assert catalog.gene(unit).symbol == unit
        elif kind == "axis":
            assert unit in axes
        elif kind == "pathway":
            assert unit in sets
        else:
            assert name in {
                "load:activating",
                "load:inhibitory",
                "load:balance",
                "coverage:catalog",
            }
    assert {f"gene:{s}" for s in catalog.symbols} <= set(names)
    assert {f"pathway:{s}" for s in sets} <= set(names)


def test_scores_are_means_of_standardized_genes(matrix: pd.DataFrame) -> None:
    builder = NKFeatureBuilder().fit(matrix)
    features = builder.transform(matrix)
    genes = load_catalog().axis_genes("NKG2D")
    z = (matrix[list(genes)] - matrix[list(genes)].mean()) / matrix[list(genes)].std(ddof=0)
    np.testing.assert_allclose(features["axis:NKG2D"], z.mean(axis=1), atol=1e-9)
    activating = features[[f"axis:{a.name}" for a in load_catalog().axes if a.kind == "activating"]]
    inhibitory = features[[f"axis:{a.name}" for a in load_catalog().axes if a.kind == "inhibitory"]]
    np.testing.assert_allclose(
        features["load:balance"], activating.mean(axis=1) - inhibitory.mean(axis=1), atol=1e-9
    )
    np.testing.assert_allclose(features["gene:NCR3LG1"], matrix["NCR3LG1"])


def test_single_sample_scored_alone_equals_cohort_scoring(matrix: pd.DataFrame) -> None:
    builder = NKFeatureBuilder().fit(matrix)
    together = builder.transform(matrix)
    alone = builder.transform(matrix.iloc[[7]])
    pd.testing.assert_frame_equal(alone, together.iloc[[7]])


def test_missing_genes_filled_with_training_median_and_coverage_drops(
    matrix: pd.DataFrame,
) -> None:
    builder = NKFeatureBuilder().fit(matrix)
    partial = matrix.drop(columns=["NCR3LG1", "HLA-E"])
    features = builder.transform(partial)
    assert features["gene:NCR3LG1"].nunique() == 1
    assert features["gene:NCR3LG1"].iloc[0] == pytest.approx(matrix["NCR3LG1"].median())
    assert (features["coverage:catalog"] < 1.0).all()
    assert set(builder.missing_genes(partial)) == {"NCR3LG1", "HLA-E"}
    assert not features.isna().any().any()


def test_gene_absent_from_training_is_left_out(matrix: pd.DataFrame) -> None:
    builder = NKFeatureBuilder().fit(matrix.drop(columns=["NCR3LG1"]))
    assert "gene:NCR3LG1" not in builder.get_feature_names_out()
    assert "NCR3LG1" in builder.absent_genes_
    assert "axis:NKp30" in builder.get_feature_names_out()  # BAG6 still measured


@pytest.mark.parametrize("level", AGGREGATE_LEVELS)
def test_allocation_rows_sum_to_one(matrix: pd.DataFrame, level: str) -> None:
    allocation = NKFeatureBuilder().fit(matrix).allocation(level)  # type: ignore[arg-type]
    np.testing.assert_allclose(allocation.sum(axis=1), 1.0)


def test_allocation_units(matrix: pd.DataFrame) -> None:
    builder = NKFeatureBuilder().fit(matrix)
    axis = builder.allocation("axis")
    assert axis.loc["gene:HLA-E", "NKG2A_HLA_E"] == 1.0
    assert axis.loc["pathway:IFNG_SIGNALING", "IFNG_RESPONSE"] == 1.0
    pathway = builder.allocation("pathway")
    assert pathway.loc["gene:NCR3LG1", "NK_LIGANDS"] == 1.0
    assert pathway.loc["gene:TAP1", "ANTIGEN_PRESENTATION"] == 1.0


def test_genome_genes_selected_in_fit(matrix: pd.DataFrame) -> None:
    y = (matrix["FILLER1"] > matrix["FILLER1"].median()).astype(int)
    builder = NKFeatureBuilder(n_genome_genes=1).fit(matrix, y)
    assert builder.genome_genes_ == ("FILLER1",)
    with pytest.raises(InputError):
        NKFeatureBuilder(n_genome_genes=1).fit(matrix)


def test_user_gene_sets_and_round_trip(matrix: pd.DataFrame) -> None:
    user = GeneSet("MY_SET", ("GAPDH", "ACTB", "NOT_MEASURED"))
    builder = NKFeatureBuilder(gene_sets=(user,)).fit(matrix)
    assert "pathway:MY_SET" in builder.get_feature_names_out()
    restored = NKFeatureBuilder.from_dict(builder.to_dict())
    pd.testing.assert_frame_equal(restored.transform(matrix), builder.transform(matrix))


def test_errors() -> None:
    with pytest.raises(NotFittedError):
        NKFeatureBuilder().transform(pd.DataFrame({"A": [1.0]}))
    with pytest.raises(InputError):
        NKFeatureBuilder().fit(pd.DataFrame())


def test_identifier_styles_give_identical_features() -> None:
    """Symbols, aliases, Ensembl (versioned), Entrez and DepMap columns: the same features."""
    from nkpredict.data.annotation import load_annotation
    from nkpredict.data.expression import prepare_expression

    annotation = load_annotation()
    ensembl_of = {symbol: ens for ens, symbol in annotation.ensembl.items()}
    entrez_of = {symbol: ent for ent, symbol in annotation.entrez.items()}
    genes = [g for g in load_catalog().all_genes() if g in ensembl_of and g in entrez_of]
    rng = np.random.default_rng(4)
    counts = pd.DataFrame(
        rng.poisson(30, (25, len(genes))), columns=genes, index=[f"S{i}" for i in range(25)]
    )
    styles = {
        "ensembl": {g: f"{ensembl_of[g]}.7" for g in genes},
        "entrez": {g: entrez_of[g] for g in genes},
        "depmap": {g: f"{g} ({entrez_of[g]})" for g in genes},
        "alias": {"NCR3LG1": "B7-H6", "NECTIN2": "PVRL2", "RAET1E": "ULBP4", "HLA-E": "hla-e"},
    }
    reference = prepare_expression(counts).matrix
    builder = NKFeatureBuilder().fit(reference)
    expected = builder.transform(reference)
    for name, renaming in styles.items():
        renamed = prepare_expression(counts.rename(columns=renaming)).matrix
        pd.testing.assert_frame_equal(builder.transform(renamed), expected, obj=name)


# ---------------------------------------------------------------------------- signed scores


@pytest.mark.parametrize(
    ("feature", "raised", "moves"),
    [
        ("pathway:DEATH_RECEPTORS", "FAS", +1),
        ("pathway:DEATH_RECEPTORS", "TNFRSF10C", -1),  # a decoy receptor counts against
        ("pathway:IFNG_SIGNALING", "STAT1", +1),
        ("pathway:IFNG_SIGNALING", "SOCS1", -1),  # a negative regulator counts against
        ("axis:IFNG_RESPONSE", "PTPN2", -1),
        ("axis:NKG2D_SHEDDING", "ADAM17", +1),
    ],
)
def test_signed_scores_move_the_right_way(
    matrix: pd.DataFrame, feature: str, raised: str, moves: int
) -> None:
    builder = NKFeatureBuilder().fit(matrix)
    before = builder.transform(matrix.iloc[[3]])[feature].iloc[0]
    changed = matrix.iloc[[3]].copy()
    changed[raised] += 2.0
    after = builder.transform(changed)[feature].iloc[0]
    assert np.sign(after - before) == moves


def test_sets_of_one_direction_stay_plain_means(matrix: pd.DataFrame) -> None:
    catalog = load_catalog()
    genes = catalog.gene_set("DEATH_RECEPTORS").genes
    weights = dict(zip(genes, catalog.signed_weights(genes), strict=True))
    assert weights["FAS"] == weights["TNFRSF1A"] == -weights["TNFRSF10D"] == 1 / len(genes)
    ligands = catalog.axis_genes("NKG2D")
    assert set(catalog.signed_weights(ligands)) == {1 / len(ligands)}


def test_every_catalogue_gene_has_its_evidence() -> None:
    catalog = load_catalog()
    assert catalog.version >= "2026.12.0"
    for gene in catalog.genes:
        assert gene.evidence in EVIDENCE_LEVELS, gene.symbol
        assert gene.lineage_context and gene.reference, gene.symbol
        if gene.contested:
            assert gene.note, gene.symbol
    contested = {g.symbol for g in catalog.genes if g.contested}
    assert {"CD274", "PVR", "NECTIN2", "BAG6", "NFKBIA", "TNFAIP3"} <= contested
    dufva = {"SPN", "SELPLG", "CD44", "GMDS", "FUT8", "SLC35C1", "SPPL3", "B3GNT2", "MUC1"}
    dufva |= {"MUC21", "RFXAP", "RFXANK", "NLRC5", "ADAM10", "ADAM17", "SOCS1", "SOCS3"}
    dufva |= {"PTPN2", "TRAF3", "CFLAR"}
    assert dufva <= set(catalog.symbols)
    assert {catalog.gene(g).effect for g in ("SOCS1", "SOCS3", "PTPN2")} == {-1}
    assert catalog.gene("TRAF3").lineage_context == "multiple myeloma"
