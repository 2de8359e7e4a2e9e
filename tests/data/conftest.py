"""Fixture files in exactly the published layouts of Dufva et al. 2023, built from a simulated
cohort (never downloaded)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from nkpredict.simulate.cohort import simulate_cohort
from nkpredict.simulate.config import SimulationConfig

RATIOS = (0.625, 1.25, 2.5, 5.0)
"""The paper's E:T ratios."""
SUFFIX = "_HAEMATOPOIETIC_AND_LYMPHOID_TISSUE"


@dataclass(frozen=True)
class Screen:
    """A simulated screen: per-line truth and the five published files written from it."""

    lines: pd.DataFrame  # index DepMap_ID; cell_line, ccle_name, subtype, main, v_<r> (mean)
    replicates: np.ndarray  # (n_lines, 2, n_ratios) % viability of two replicates
    counts: pd.DataFrame  # expression, index DepMap_ID
    files: dict[str, Path]


def hand_auc_norm(viability: list[float], ratios: tuple[float, ...] = RATIOS) -> float:
    """The paper's formula written out: trapezoids from (0, 100) over linear E:T, / (max x 100)."""
    xs = [0.0, *ratios]
    ys = [100.0, *viability]
    area = 0.0
    for k in range(len(xs) - 1):
        area += (xs[k + 1] - xs[k]) * (ys[k] + ys[k + 1]) / 2.0
    return area / (max(ratios) * 100.0)


@pytest.fixture(scope="session")
def screen(tmp_path_factory: pytest.TempPathFactory) -> Screen:
    cohort = simulate_cohort(SimulationConfig(n_samples=24, n_genes=200, seed=3))
    n = len(cohort.labels)
    rng = np.random.default_rng(0)
    simulated = cohort.labels[[c for c in cohort.labels if c.startswith("viability_et_")]]
    mean = simulated.to_numpy(dtype=float)
    mean[0, 0] = 112.0  # more growth than the control: kept, not clipped
    noise = rng.normal(0.0, 3.0, size=(n, len(RATIOS)))
    replicates = np.stack([mean + noise, mean - noise], axis=1)
    ids = [f"ACH-{900000 + i:06d}" for i in range(n)]
    names = [f"Line-{i:02d}" for i in range(n)]
    lines = pd.DataFrame(
        {
            "cell_line": names,
            "ccle_name": [n.replace("-", "").upper() + SUFFIX for n in names],
            "subtype": cohort.labels["lineage"].to_numpy(),
            "main": np.where(cohort.labels["lineage"] == "myeloid", "Myeloid", "Lymphoid"),
        },
        index=pd.Index(ids, name="DepMap_ID"),
    )
    for j, r in enumerate(RATIOS):
        lines[f"v_{r:g}"] = mean[:, j]
    out = tmp_path_factory.mktemp("dufva2023")

    long_rows = []
    for i, line in enumerate(lines.itertuples()):
        for rep in range(2):
            long_rows.append((line.cell_line, line.Index, line.subtype, "CTRL", 100.0))
            for j, r in enumerate(RATIOS):
                # both spellings of the paper: D1_NK_<E:T> and D1_<E:T>
                condition = f"D1_NK_{r:g}" if (i + j) % 2 else f"D1_{r:g}"
                long_rows.append(
                    (line.cell_line, line.Index, line.subtype, condition, replicates[i, rep, j])
                )
    long = pd.DataFrame(
        long_rows, columns=["cell_line", "DepMap_ID", "Subtype", "Condition", "pctviability"]
    )
    files = {"nk-prism": out / "NK_PRISM_heme_pctviability.txt"}
    long.to_csv(files["nk-prism"], sep="\t", index=False)

    auc_norm = {line: hand_auc_norm(list(mean[i])) for i, line in enumerate(ids)}
    with_auc = long.assign(
        auc=long["DepMap_ID"].map(auc_norm) * 500.0, auc_norm=long["DepMap_ID"].map(auc_norm)
    )
    files["nk-prism-auc"] = out / "NK_PRISM_heme_pctviability_auc_norm.txt"
    with_auc.to_csv(files["nk-prism-auc"], sep="\t", index=False)

    wide = {"Condition": [], "Biological_replicate": []}
    columns: dict[str, list[float]] = {name: [] for name in lines["ccle_name"]}
    for rep in range(2):
        for j, condition in enumerate(["CTRL", *(f"D1_NK_{r:g}" for r in RATIOS)]):
            wide["Condition"].append(condition)
            wide["Biological_replicate"].append(rep + 1)
            for i, name in enumerate(lines["ccle_name"]):
                columns[name].append(100.0 if j == 0 else replicates[i, rep, j - 1])
    files["nk-prism-replicates"] = out / "NK_PRISM_heme_pctviability_biologicalreplicates.txt"
    pd.DataFrame({**wide, **columns}).to_csv(files["nk-prism-replicates"], sep="\t", index=False)

    s5a = pd.DataFrame(
        {
            "Cell_line": names,
            "AUC_normalized": [auc_norm[i] for i in ids],
            "DepMap_ID": ids,
            "CCLE_Name": lines["ccle_name"].to_numpy(),
            "COSMICID": [f"{700000 + i}" for i in range(n)],
            "RRID": [f"CVCL_{i:04d}" for i in range(n)],
            "Barcode": [f"BC{i:03d}" for i in range(n)],
            "Cancer_type": lines["subtype"].to_numpy(),
            "Cancer_type_simple": lines["subtype"].to_numpy(),
            "Cancer_type_main": lines["main"].to_numpy(),
            "Subtype": lines["subtype"].to_numpy(),
        }
    )
    files["dufva-s5a"] = out / "TableS5A.csv"
    s5a.to_csv(files["dufva-s5a"], index=False)

    s5b_rows = []
    for i, name in enumerate(names):
        for j, r in enumerate(RATIOS):
            for rep in range(2):
                s5b_rows.append((name, f"{r:g}", rep + 1, replicates[i, rep, j], mean[i, j]))
    files["dufva-s5b"] = out / "TableS5B.csv"
    pd.DataFrame(
        s5b_rows,
        columns=[
            "Cell_line",
            "Effector_target_ratio",
            "Replicate",
            "Percent_viability_replicate",
            "Percent_viability_mean",
        ],
    ).to_csv(files["dufva-s5b"], index=False)

    counts = cohort.counts.set_axis(pd.Index(ids, name="DepMap_ID"))
    return Screen(lines, replicates, counts, files)
