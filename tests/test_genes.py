"""Gene identifier harmonization: every accepted identifier form, the report, the merge rule."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from nkpredict.data.annotation import load_annotation
from nkpredict.data.identifiers import gene_like_fraction, harmonize_matrix, map_identifiers
from nkpredict.exceptions import GeneMappingError

SYMBOLS = ["NCR3LG1", "NECTIN2", "VSIR", "RAET1E", "TP53"]
FORMS = {
    "symbol": SYMBOLS,
    "alias": ["B7-H6", "PVRL2", "C10orf54", "ULBP4", "TP53"],
    "ensembl": [
        "ENSG00000188211",
        "ENSG00000130202",
        "ENSG00000107738",
        "ENSG00000164520",
        "ENSG00000141510",
    ],
    "ensembl_version": [
        "ENSG00000188211.5",
        "ENSG00000130202.9",
        "ENSG00000107738.19",
        "ENSG00000164520.10",
        "ENSG00000141510.16",
    ],
    "entrez": ["374383", "5819", "64115", "135250", "7157"],
    "depmap": [
        "NCR3LG1 (374383)",
        "NECTIN2 (5819)",
        "VSIR (64115)",
        "RAET1E (135250)",
        "TP53 (7157)",
    ],
    "mixed_case": ["ncr3lg1", " Nectin2 ", "vsir", "Raet1e", "tp53"],
}


@pytest.fixture
def log_matrix() -> pd.DataFrame:
    rng = np.random.default_rng(7)
    values = rng.uniform(0.0, 12.0, size=(6, len(SYMBOLS)))
    return pd.DataFrame(values, index=[f"sample_{i}" for i in range(6)], columns=SYMBOLS)


@pytest.mark.parametrize("form", sorted(FORMS))
def test_every_identifier_form_gives_the_same_matrix(form: str, log_matrix: pd.DataFrame) -> None:
    renamed = log_matrix.set_axis(FORMS[form], axis=1)
    harmonized, report = harmonize_matrix(renamed)
    pd.testing.assert_frame_equal(harmonized, log_matrix)
    assert report.mapped == dict(zip(FORMS[form], SYMBOLS, strict=True))
    assert not report.unmapped and not report.ambiguous and not report.collided


def test_depmap_name_falls_back_to_symbol_when_entrez_is_unknown() -> None:
    mapping, _ = map_identifiers(["NCR3LG1 (999999999)", "B7-H6 (999999998)"])
    assert mapping == {"NCR3LG1 (999999999)": "NCR3LG1", "B7-H6 (999999998)": "NCR3LG1"}


def test_current_symbol_wins_over_an_alias_of_another_gene() -> None:
    annotation = load_annotation()
    alias = next(
        name
        for name, owners in annotation.aliases.items()
        if name in annotation.symbols and annotation.symbols[name] not in owners
    )
    mapping, report = map_identifiers([annotation.symbols[alias]])
    assert mapping == {annotation.symbols[alias]: annotation.symbols[alias]}
    assert report.renamed == {}


def test_report_lists_renamed_unmapped_ambiguous_and_collided() -> None:
    ids = ["NCR3LG1", "B7-H6", "TP53", "not_a_gene", "ENSG99999999999", "GCS", "PVRL2", "TP53"]
    mapping, report = map_identifiers(ids)
    assert report.n_input == len(ids)
    assert mapping == {"NCR3LG1": "NCR3LG1", "B7-H6": "NCR3LG1", "TP53": "TP53", "PVRL2": "NECTIN2"}
    assert report.mapped == mapping
    assert report.renamed == {"B7-H6": "NCR3LG1", "PVRL2": "NECTIN2"}
    assert report.unmapped == ["not_a_gene", "ENSG99999999999"]
    assert set(report.ambiguous) == {"GCS"}
    assert {"GCLC", "UGCG"} <= set(report.ambiguous["GCS"])
    assert report.collided == {"NCR3LG1": ["NCR3LG1", "B7-H6"], "TP53": ["TP53", "TP53"]}
    assert report.symbols == ["NCR3LG1", "TP53", "NECTIN2"]
    assert report.missing(["TP53", "MICA", "NECTIN2", "HLA-E"]) == ["MICA", "HLA-E"]
    assert json.loads(json.dumps(report.to_dict()))["unmapped"] == report.unmapped
    assert report.summary() == (
        "8 input ids: 4 mapped (2 renamed), 1 ambiguous, 2 unmapped, 2 collisions"
    )


def test_unmapped_and_ambiguous_columns_are_dropped_and_order_kept(
    log_matrix: pd.DataFrame,
) -> None:
    matrix = log_matrix.set_axis(["TP53", "junk", "GCS", "VSIR", "B7-H6"], axis=1)
    harmonized, report = harmonize_matrix(matrix)
    assert list(harmonized.columns) == ["TP53", "VSIR", "NCR3LG1"]
    assert harmonized.index.equals(matrix.index)
    np.testing.assert_array_equal(harmonized["NCR3LG1"], matrix["B7-H6"])
    assert report.unmapped == ["junk"] and list(report.ambiguous) == ["GCS"]


def test_colliding_columns_are_summed_on_the_linear_scale() -> None:
    first = np.array([3.0, 0.0, np.nan, np.nan, 5.0])
    second = np.array([1.0, 2.0, 4.0, np.nan, 5.0])
    matrix = pd.DataFrame(
        {"NCR3LG1": first, "HLA-E": 1.0, "b7-h6": second},
        index=[f"s{i}" for i in range(5)],
    )
    harmonized, report = harmonize_matrix(matrix)
    expected = np.log2((2**first - 1) + (2**second - 1) + 1)
    expected[2], expected[3] = 4.0, np.nan
    assert list(harmonized.columns) == ["NCR3LG1", "HLA-E"]
    np.testing.assert_allclose(harmonized["NCR3LG1"], expected)
    np.testing.assert_array_equal(harmonized["HLA-E"], 1.0)
    assert report.collided == {"NCR3LG1": ["NCR3LG1", "b7-h6"]}


def test_duplicated_identical_columns_double_the_linear_value() -> None:
    matrix = pd.DataFrame([[1.0, 1.0], [3.0, 3.0]], columns=["TP53", "TP53"])
    harmonized, _ = harmonize_matrix(matrix)
    np.testing.assert_allclose(harmonized["TP53"], np.log2(2 * (2 ** np.array([1.0, 3.0]) - 1) + 1))


def test_nothing_mappable_raises() -> None:
    matrix = pd.DataFrame([[1.0, 2.0]], columns=["junk_1", "junk_2"])
    with pytest.raises(GeneMappingError, match="junk_1"):
        harmonize_matrix(matrix)


def test_gene_like_fraction_separates_genes_from_sample_names() -> None:
    assert gene_like_fraction(FORMS["ensembl_version"] + FORMS["depmap"]) == 1.0
    assert gene_like_fraction([f"patient_{i:03d}" for i in range(20)]) == 0.0
    assert gene_like_fraction([]) == 0.0
