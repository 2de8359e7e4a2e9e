"""The five published layouts of Dufva et al. 2023 read exactly; their AUC reproduced; one
label table for `nkpredict labels` and `train --labels`."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import RATIOS, Screen, hand_auc_norm
from typer.testing import CliRunner

from nkpredict.data.labels import LabelDefinition, label_table
from nkpredict.data.public import (
    detect_label_format,
    dufva_auc,
    join_labels,
    read_labels,
    stripped_name,
)
from nkpredict.exceptions import LabelError
from training.cli import app
from training.pipeline import load_training_data

VIABILITY = [f"viability_et_{r:g}" for r in RATIOS]
LAYOUTS = ["nk-prism", "nk-prism-auc", "nk-prism-replicates", "dufva-s5a", "dufva-s5b"]


def test_the_paper_auc_by_hand_above_100_percent() -> None:
    # (0,100) (0.625,112) (1.25,80) (2.5,50) (5,20): 0.625*212/2 + 0.625*192/2 + 1.25*130/2
    # + 2.5*70/2 = 66.25 + 60 + 81.25 + 87.5 = 295 -> / 500
    viability = {0.625: 112.0, 1.25: 80.0, 2.5: 50.0, 5.0: 20.0}
    assert dufva_auc(viability) == pytest.approx(295.0 / 500.0)
    assert dufva_auc({5.0: 130.0, 2.5: 120.0}) > 1.0  # growth above the control is kept


@pytest.mark.parametrize("layout", LAYOUTS)
def test_each_layout_is_detected(screen: Screen, layout: str) -> None:
    header = pd.read_csv(screen.files[layout], sep=None, engine="python", nrows=0)
    assert detect_label_format(header.columns) == layout


@pytest.mark.parametrize("layout", ["nk-prism", "nk-prism-auc", "nk-prism-replicates", "dufva-s5b"])
def test_viability_layouts_give_the_lines_means_and_the_paper_auc(
    screen: Screen, layout: str
) -> None:
    table = read_labels(screen.files[layout])
    assert list(table.columns[:3]) == ["DepMap_ID", "cell_line", "lineage"]
    rest = [c for c in table.columns if c != "CCLE_Name"][3:8]
    assert rest == [*VIABILITY, "auc_norm"]
    by_name = table.set_axis([stripped_name(n) for n in table["cell_line"]])
    for _, row in screen.lines.iterrows():
        means = [float(row[f"v_{r:g}"]) for r in RATIOS]
        found = by_name.loc[stripped_name(row["cell_line"])]
        np.testing.assert_allclose(found[VIABILITY].to_numpy(dtype=float), means)
        assert found["auc_norm"] == pytest.approx(hand_auc_norm(means))
    assert by_name.loc["LINE00", "viability_et_0.625"] == pytest.approx(112.0)


def test_long_table_carries_ids_and_subtype_as_lineage(screen: Screen) -> None:
    table = read_labels(screen.files["nk-prism"])
    assert table.index.name == "line"
    assert table["DepMap_ID"].tolist() == screen.lines.index.tolist()
    assert table["lineage"].tolist() == screen.lines["subtype"].tolist()
    assert table["Subtype"].tolist() == screen.lines["subtype"].tolist()  # extras kept


def test_a_file_auc_norm_is_kept_and_checked(
    screen: Screen, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    table = read_labels(screen.files["nk-prism-auc"])
    assert {"auc", "auc_norm"} <= set(table)
    with caplog.at_level("INFO"):
        read_labels(screen.files["nk-prism-auc"])
    assert "matches its viabilities" in caplog.text
    frame = pd.read_csv(screen.files["nk-prism-auc"], sep="\t")
    first = frame["DepMap_ID"] == screen.lines.index[0]
    frame.loc[first, "auc_norm"] = 0.01
    path = tmp_path / "tampered.txt"
    frame.to_csv(path, sep="\t", index=False)
    caplog.clear()
    tampered = read_labels(path)
    assert tampered.loc[screen.lines.index[0], "auc_norm"] == 0.01  # as it is in the file
    assert "differs from a recomputation" in caplog.text and screen.lines.index[0] in caplog.text
    # asking for the project's AUC adds it next to the file's own
    both = read_labels(path, auc="log2-killing")
    assert {"auc_norm", "killing_auc"} <= set(both)


def test_replicates_layout_names_lines_ccle_style(screen: Screen) -> None:
    table = read_labels(screen.files["nk-prism-replicates"])
    assert table["cell_line"].tolist() == [
        n.replace("-", "").upper() for n in screen.lines["cell_line"]
    ]
    assert table["CCLE_Name"].tolist() == screen.lines["ccle_name"].tolist()
    assert table["DepMap_ID"].isna().all()


def test_s5a_keeps_the_paper_auc_and_every_column(screen: Screen) -> None:
    table = read_labels(screen.files["dufva-s5a"])
    expected = [
        hand_auc_norm([screen.lines.loc[i, f"v_{r:g}"] for r in RATIOS]) for i in screen.lines.index
    ]
    np.testing.assert_allclose(table["auc_norm"], expected)
    assert table["lineage"].tolist() == screen.lines["main"].tolist()  # Cancer_type_main
    for column in ("CCLE_Name", "COSMICID", "RRID", "Barcode", "Cancer_type", "Subtype"):
        assert column in table
    with pytest.raises(LabelError, match="needs % viability"):
        read_labels(screen.files["dufva-s5a"], auc="log2-killing")


def test_format_override(screen: Screen) -> None:
    generic = read_labels(screen.files["dufva-s5a"], id_column="DepMap_ID", fmt="table")
    assert "AUC_normalized" in generic and "auc_norm" not in generic
    with pytest.raises(LabelError, match="S5B table needs"):
        read_labels(screen.files["dufva-s5a"], fmt="dufva-s5b")


def test_direction_is_documented_never_guessed(screen: Screen) -> None:
    table = read_labels(screen.files["dufva-s5a"])
    _, definition = LabelDefinition("auc_norm", quantile=0.5).resolve(table)
    assert definition.resistant_when == "above"  # high auc_norm = cells survive = resistant
    generic = read_labels(screen.files["dufva-s5a"], id_column="DepMap_ID", fmt="table")
    _, definition = LabelDefinition("AUC_normalized", quantile=0.5).resolve(generic)
    assert definition.resistant_when == "above"
    renamed = generic.rename(columns={"AUC_normalized": "NK_score_auc"})
    with pytest.raises(LabelError, match="--resistant-when"):
        LabelDefinition("NK_score_auc", quantile=0.5).resolve(renamed)


def test_join_by_depmap_id_ccle_name_or_stripped_name(
    screen: Screen, caplog: pytest.LogCaptureFixture
) -> None:
    labels = read_labels(screen.files["dufva-s5a"])
    for ids in (
        screen.lines.index,
        pd.Index(screen.lines["ccle_name"]),
        pd.Index([n.replace("-", ".").lower() for n in screen.lines["cell_line"]]),
    ):
        expression = screen.counts.iloc[:-1].set_axis(ids[:-1])
        with caplog.at_level("INFO"):
            kept, joined = join_labels(expression, labels)
        assert len(kept) == len(ids) - 1
        assert joined["DepMap_ID"].tolist() == screen.lines.index[:-1].tolist()
        assert "'Line-23'" in caplog.text  # the line without expression, by name
        caplog.clear()
    assert stripped_name("MM.1S") == stripped_name("mm1s") == "MM1S"


def test_labels_command_writes_the_table_train_uses(screen: Screen, tmp_path: Path) -> None:
    out = tmp_path / "labels.csv"
    path = screen.files["nk-prism"]
    result = CliRunner().invoke(
        app, ["labels", "--labels", str(path), "--out", str(out), "--quantile", "0.5"]
    )
    assert result.exit_code == 0, result.output
    assert "above (documented for auc_norm)" in result.output
    written = pd.read_csv(out)
    assert list(written.columns) == [
        "DepMap_ID",
        "cell_line",
        "lineage",
        *VIABILITY,
        "auc_norm",
        "call",
        "Subtype",
    ]
    assert set(written["call"]) == {"resistant", "sensitive"}
    expression = tmp_path / "expression.csv"
    screen.counts.to_csv(expression)
    data = load_training_data(
        expression,
        path,
        LabelDefinition("auc_norm", quantile=0.5),
        "DepMap_ID",
        None,
        lineage_column="lineage",
    )
    calls = written.set_index("DepMap_ID")["call"].eq("resistant").astype(int)
    assert data.y.to_dict() == calls.loc[data.y.index].to_dict()
    assert data.lineages is not None and data.lineages.nunique() > 1
    table, _ = label_table(read_labels(path), LabelDefinition("auc_norm", quantile=0.5))
    assert table["call"].tolist() == written["call"].tolist()


def test_labels_command_options(screen: Screen, tmp_path: Path) -> None:
    out = tmp_path / "l.tsv"
    runner = CliRunner()
    result = runner.invoke(
        app,
        [
            "labels",
            "--labels",
            str(screen.files["dufva-s5b"]),
            "--out",
            str(out),
            "--auc",
            "log2-killing",
            "--threshold",
            "0.5",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "killing_auc" in pd.read_csv(out, sep="\t")
    assert "below (documented for killing_auc)" in result.output
    result = runner.invoke(
        app,
        [
            "labels",
            "--labels",
            str(screen.files["nk-prism"]),
            "--out",
            str(out),
            "--auc",
            "trapezoid",
        ],
    )
    assert result.exit_code == 2 and "dufva2023" in result.output
