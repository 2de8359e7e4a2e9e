"""Readers for public formats: DepMap expression, NK PRISM tables, labels, and the killing AUC."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from nkpredict.data.public import (
    is_nk_prism_table,
    join_labels,
    killing_auc,
    parse_condition,
    read_depmap_expression,
    read_labels,
    read_nk_prism,
    viability_column,
)
from nkpredict.exceptions import ExpressionFormatError, LabelError, ScaleError

# ---------------------------------------------------------------------------------------------
# killing AUC
# ---------------------------------------------------------------------------------------------

# E:T 0.5, 1, 2, 4 -> log2 = -1, 0, 1, 2; killed 0, .2, .5, .8
# trapezoids: (0 + .2) / 2 + (.2 + .5) / 2 + (.5 + .8) / 2 = 1.1 over a span of 3
HAND_AUC = 1.1 / 3


def test_killing_auc_hand_computed() -> None:
    assert killing_auc({4.0: 20.0, 0.5: 100.0, 1.0: 80.0, 2.0: 50.0}) == pytest.approx(HAND_AUC)


def test_killing_auc_bounds_and_clipping() -> None:
    assert killing_auc({1.0: 100.0, 2.0: 130.0}) == 0.0
    assert killing_auc({1.0: 0.0, 2.0: -5.0}) == 1.0


def test_killing_auc_frame_uses_viability_columns_only() -> None:
    frame = pd.DataFrame(
        {
            "lineage": ["B-cell", "myeloid", "T-cell"],
            "viability_et_0.5": [100.0, 0.0, 100.0],
            "viability_et_1": [80.0, 0.0, np.nan],
            "viability_et_2": [50.0, 0.0, 40.0],
            "viability_et_4": [20.0, 0.0, 10.0],
        },
        index=["a", "b", "c"],
    )
    auc = killing_auc(frame)
    assert isinstance(auc, pd.Series)
    assert auc.name == "killing_auc"
    assert auc["a"] == pytest.approx(HAND_AUC)
    assert auc["b"] == pytest.approx(1.0)
    assert np.isnan(auc["c"])


def test_killing_auc_needs_two_ratios() -> None:
    with pytest.raises(LabelError, match="two distinct positive"):
        killing_auc({1.0: 50.0})


@pytest.mark.parametrize(
    ("condition", "ratio"),
    [
        ("CTRL", None),
        ("D1_NK_0.5", 0.5),
        ("D1_NK_1", 1.0),
        ("D1_NK_2.5", 2.5),
        ("D1_NK_1:2", 0.5),
        ("D2_NK_4:1", 4.0),
        ("NK_0", None),
        ("2", 2.0),
    ],
)
def test_parse_condition(condition: str, ratio: float | None) -> None:
    assert parse_condition(condition) == ratio


def test_viability_column_names() -> None:
    assert [viability_column(r) for r in (0.5, 1.0, 2, 2.5)] == [
        "viability_et_0.5",
        "viability_et_1",
        "viability_et_2",
        "viability_et_2.5",
    ]


# ---------------------------------------------------------------------------------------------
# DepMap expression
# ---------------------------------------------------------------------------------------------

DEPMAP_CSV = """\
,TSPAN6 (7105),HLA-E (3133),NCR3LG1 (374383)
ACH-000001,4.33,8.12,0.0
ACH-000002,0.0,9.5,2.25
ACH-000003,1.5,7.0,3.1
"""


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_read_depmap_expression_classic_layout(tmp_path: Path) -> None:
    frame = read_depmap_expression(_write(tmp_path / "expr.csv", DEPMAP_CSV))
    assert frame.shape == (3, 3)
    assert frame.index.name == "sample_id"
    assert list(frame.index) == ["ACH-000001", "ACH-000002", "ACH-000003"]
    assert list(frame.columns) == ["TSPAN6 (7105)", "HLA-E (3133)", "NCR3LG1 (374383)"]
    assert frame.loc["ACH-000002", "HLA-E (3133)"] == pytest.approx(9.5)


def test_read_depmap_expression_model_id_with_metadata(tmp_path: Path) -> None:
    text = (
        "SequencingID,ModelID,IsDefaultEntryForModel,TSPAN6 (7105),B2M (567)\n"
        "CDS-aaa,ACH-000010,Yes,1.0,12.0\n"
        "CDS-bbb,ACH-000010,No,2.0,11.0\n"
        "CDS-ccc,ACH-000011,Yes,3.0,10.0\n"
    )
    frame = read_depmap_expression(_write(tmp_path / "expr.csv", text))
    assert list(frame.index) == ["ACH-000010", "ACH-000011"]
    assert list(frame.columns) == ["TSPAN6 (7105)", "B2M (567)"]
    assert frame.loc["ACH-000010", "TSPAN6 (7105)"] == 1.0


def test_read_depmap_expression_bad_id_names_line(tmp_path: Path) -> None:
    text = DEPMAP_CSV.replace("ACH-000002", "K562")
    with pytest.raises(LabelError, match=r"line 3 has 'K562'"):
        read_depmap_expression(_write(tmp_path / "expr.csv", text))


def test_read_depmap_expression_bad_gene_column(tmp_path: Path) -> None:
    text = DEPMAP_CSV.replace("HLA-E (3133)", "HLA-E")
    with pytest.raises(ExpressionFormatError, match=r"SYMBOL \(ENTREZ\).*'HLA-E'"):
        read_depmap_expression(_write(tmp_path / "expr.csv", text))


def test_read_depmap_expression_non_numeric_names_column_and_line(tmp_path: Path) -> None:
    text = DEPMAP_CSV.replace("9.5", "high")
    with pytest.raises(ExpressionFormatError, match=r"'HLA-E \(3133\)' line 3.*'high'"):
        read_depmap_expression(_write(tmp_path / "expr.csv", text))


def test_read_depmap_expression_negative_is_scale_error(tmp_path: Path) -> None:
    text = DEPMAP_CSV.replace("3.1", "-3.1")
    with pytest.raises(ScaleError, match="NCR3LG1"):
        read_depmap_expression(_write(tmp_path / "expr.csv", text))


def test_read_depmap_expression_duplicated_ids(tmp_path: Path) -> None:
    text = DEPMAP_CSV.replace("ACH-000003", "ACH-000001")
    with pytest.raises(ExpressionFormatError, match="duplicated model ids 'ACH-000001'"):
        read_depmap_expression(_write(tmp_path / "expr.csv", text))


# ---------------------------------------------------------------------------------------------
# NK PRISM
# ---------------------------------------------------------------------------------------------


def _prism_rows() -> list[tuple[str, str, str, object, str]]:
    rows: list[tuple[str, str, str, object, str]] = []
    for condition, values in [
        ("CTRL", (100.0, 100.0)),
        ("D1_NK_0.5", (98.0, 102.0)),
        ("D1_NK_1", (75.0, 85.0)),
        ("D1_NK_2", (45.0, 55.0)),
        ("D1_NK_4", (15.0, 25.0)),
    ]:
        rows += [("K562", "ACH-000551", condition, v, "CML") for v in values]
    # a line measured with CTRL at 80 % is rescaled so that CTRL = 100 %
    for condition, value in [
        ("CTRL", 80.0),
        ("D1_NK_0.5", 80.0),
        ("D1_NK_1", 72.0),
        ("D1_NK_2", 64.0),
        ("D1_NK_4", 40.0),
    ]:
        rows.append(("MM1S", "ACH-000789", condition, value, "MM"))
    rows.append(("MM1S", "ACH-000789", "D1_NK_8", "", "MM"))  # missing value: dropped
    return rows


def _prism_text(rows: list[tuple[str, str, str, object, str]], sep: str = "\t") -> str:
    header = sep.join(["cell_line", "DepMap_ID", "Condition", "pctviability", "Subtype"])
    return "\n".join([header, *(sep.join(map(str, row)) for row in rows)]) + "\n"


def test_read_nk_prism(tmp_path: Path) -> None:
    table = read_nk_prism(
        _write(tmp_path / "NK_PRISM_heme_pctviability.txt", _prism_text(_prism_rows())),
        auc="log2-killing",
    )
    assert table.index.name == "line"
    assert list(table.columns) == [
        "DepMap_ID",
        "cell_line",
        "lineage",
        "viability_et_0.5",
        "viability_et_1",
        "viability_et_2",
        "viability_et_4",
        "killing_auc",
        "Subtype",
    ]
    assert table["lineage"].tolist() == ["CML", "MM"]
    k562 = table.loc["ACH-000551"]
    assert k562["cell_line"] == "K562"
    assert k562["viability_et_1"] == pytest.approx(80.0)  # mean of replicates 75 and 85
    assert k562["killing_auc"] == pytest.approx(HAND_AUC)
    mm1s = table.loc["ACH-000789"]
    assert mm1s[
        ["viability_et_0.5", "viability_et_1", "viability_et_2", "viability_et_4"]
    ].tolist() == (pytest.approx([100.0, 90.0, 80.0, 50.0]))


def test_read_nk_prism_ratio_strings(tmp_path: Path) -> None:
    rows = [
        ("697", "ACH-000070", "CTRL", 100.0, "B-ALL"),
        ("697", "ACH-000070", "D1_NK_1:2", 90.0, "B-ALL"),
        ("697", "ACH-000070", "D1_NK_1:1", 60.0, "B-ALL"),
    ]
    table = read_nk_prism(
        _write(tmp_path / "prism.csv", _prism_text(rows, sep=",")), auc="log2-killing"
    )
    assert list(table.columns) == [
        "DepMap_ID",
        "cell_line",
        "lineage",
        "viability_et_0.5",
        "viability_et_1",
        "killing_auc",
        "Subtype",
    ]
    # killed 0.1 and 0.4 over log2 E:T from -1 to 0
    assert table.loc["ACH-000070", "killing_auc"] == pytest.approx(0.25)


def test_read_nk_prism_bad_condition_names_row(tmp_path: Path) -> None:
    rows = _prism_rows()
    rows[3] = ("K562", "ACH-000551", "D1_NK_lots", 80.0, "CML")
    path = _write(tmp_path / "prism.txt", _prism_text(rows))
    with pytest.raises(LabelError, match=r"line 5 \(cell_line='K562', DepMap_ID='ACH-000551'\)"):
        read_nk_prism(path)


def test_read_nk_prism_non_numeric_viability_names_row(tmp_path: Path) -> None:
    rows = _prism_rows()
    rows[12] = ("MM1S", "ACH-000789", "D1_NK_1", "dead", "MM")
    path = _write(tmp_path / "prism.txt", _prism_text(rows))
    with pytest.raises(LabelError, match=r"line 14 .*MM1S.*'dead' is not a number"):
        read_nk_prism(path)


def test_is_nk_prism_table() -> None:
    prism = pd.DataFrame(
        _prism_rows(), columns=["cell_line", "DepMap_ID", "Condition", "pctviability", "x"]
    )
    assert is_nk_prism_table(prism)
    assert not is_nk_prism_table(prism.drop(columns="Condition"))


# ---------------------------------------------------------------------------------------------
# Generic labels and joining
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "sep"),
    [("labels.csv", ","), ("labels.tsv", "\t"), ("labels.txt", "\t"), ("labels.txt", ",")],
)
def test_read_labels_by_extension(tmp_path: Path, name: str, sep: str) -> None:
    text = sep.join(["sample_id", "resistant", "killing_auc"]) + "\n"
    text += "\n".join(sep.join(row) for row in [("001", "1", "0.2"), ("S2", "0", "0.7")]) + "\n"
    labels = read_labels(_write(tmp_path / name, text))
    assert labels.index.name == "sample_id"
    assert list(labels.index) == ["001", "S2"]  # ids stay strings
    assert list(labels.columns) == ["resistant", "killing_auc"]
    assert labels.loc["S2", "killing_auc"] == pytest.approx(0.7)


def test_read_labels_custom_id_column(tmp_path: Path) -> None:
    path = _write(tmp_path / "l.csv", "patient,resistant\nP1,1\nP2,0\n")
    assert list(read_labels(path, id_column="patient").index) == ["P1", "P2"]


def test_read_labels_missing_id_column_lists_columns(tmp_path: Path) -> None:
    path = _write(tmp_path / "l.csv", "patient,resistant\nP1,1\n")
    with pytest.raises(LabelError, match="available columns: patient, resistant"):
        read_labels(path)


def test_read_labels_duplicated_ids(tmp_path: Path) -> None:
    path = _write(tmp_path / "l.csv", "sample_id,resistant\nP1,1\nP2,0\nP1,0\n")
    with pytest.raises(LabelError, match=r"duplicated ids.*'P1'"):
        read_labels(path)


def test_read_labels_delegates_nk_prism(tmp_path: Path) -> None:
    path = _write(tmp_path / "prism.tsv", _prism_text(_prism_rows()))
    labels = read_labels(path, auc="log2-killing")
    assert labels.index.name == "line"
    assert labels.loc["ACH-000551", "killing_auc"] == pytest.approx(HAND_AUC)
    # the paper's tables default to the paper's AUC
    assert "auc_norm" in read_labels(path) and "killing_auc" not in read_labels(path)


def test_read_labels_unknown_extension(tmp_path: Path) -> None:
    with pytest.raises(LabelError, match="extension"):
        read_labels(_write(tmp_path / "labels.xlsx", "x"))


def test_read_labels_missing_file(tmp_path: Path) -> None:
    with pytest.raises(LabelError, match="no such file"):
        read_labels(tmp_path / "absent.csv")


def test_join_labels_keeps_expression_order(caplog: pytest.LogCaptureFixture) -> None:
    expression = pd.DataFrame(
        {"NCR3LG1": [1.0, 2.0, 3.0, 4.0]}, index=pd.Index(["d", "a", "c", "x"], name="sample_id")
    )
    labels = pd.DataFrame({"resistant": [0, 1, 1, 0]}, index=["a", "c", "d", "z"])
    with caplog.at_level("INFO", logger="nkpredict.data.public"):
        kept, joined = join_labels(expression, labels)
    assert list(kept.index) == ["d", "a", "c"]
    assert list(joined.index) == ["d", "a", "c"]
    assert joined["resistant"].tolist() == [1, 0, 1]
    assert "dropped 1 expression sample(s) without labels and 1 label row(s)" in caplog.text
    assert "without expression ('z')" in caplog.text


def test_join_labels_no_overlap() -> None:
    expression = pd.DataFrame({"g": [1.0]}, index=["a"])
    with pytest.raises(LabelError, match="no sample id is shared"):
        join_labels(expression, pd.DataFrame({"resistant": [1]}, index=["b"]))
