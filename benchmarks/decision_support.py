"""Uncertainty and domain checks on cohorts the model never saw (issue targets of calibration,
conformal sets and out-of-domain warnings).

For each seed: a training cohort is simulated, cross-validated and fitted exactly as
``nkpredict train`` does (:func:`training.pipeline.evaluate_model_cv`, the final fit with the
training lineages, :func:`training.pipeline.calibrate_from_cv`); then scored on

- a *fresh* cohort of the same distribution from another seed: empirical coverage of the
  conformal sets (overall and per true lineage with >= 30 samples), the share of samples
  flagged out of domain, and the Brier score of raw and calibrated probabilities;
- the ``platform-shift`` scenario's external cohort (microarray-like intensities): share flagged;
- carcinoma-like profiles (:func:`nkpredict.simulate.nonblood.solid_tumour_profiles`): share
  flagged.

Example::

    python benchmarks/decision_support.py --n-train 300 --n-test 1000 --seeds 0 1 2
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import brier_score_loss

from nkpredict.data.expression import prepare_expression
from nkpredict.data.labels import LabelDefinition
from nkpredict.evaluate.folds import CVConfig
from nkpredict.model.fitted import NKResistanceModel
from nkpredict.simulate.cohort import simulate_cohort
from nkpredict.simulate.nonblood import solid_tumour_profiles
from training.pipeline import TrainingData, calibrate_from_cv, evaluate_model_cv

MIN_LINEAGE = 30
N_GENES = 2000


def _fit(n_train: int, seed: int) -> NKResistanceModel:
    cohort = simulate_cohort(n_samples=n_train, n_genes=N_GENES, seed=seed)
    prepared = prepare_expression(cohort.counts)
    y = cohort.labels["resistant"]
    definition = LabelDefinition(column="resistant")
    lineages = cohort.labels["lineage"].astype(str)
    data = TrainingData(prepared, cohort.labels, y, definition, None, lineages)
    model = NKResistanceModel()
    result = evaluate_model_cv(model, data, CVConfig(random_state=seed), False, None)
    model.fit_prepared(prepared, y, definition, lineages=lineages)
    calibrate_from_cv(model, data, result, 0.9)
    return model


def _scored(model: NKResistanceModel, expression: pd.DataFrame) -> pd.DataFrame:
    return model.predict_table(model.prepare(expression)).set_index("sample_id")


def run_seed(n_train: int, n_test: int, seed: int) -> dict[str, Any]:
    """Every measurement of one seed."""
    started = time.perf_counter()
    model = _fit(n_train, seed)
    fresh = simulate_cohort(n_samples=n_test, n_genes=N_GENES, seed=seed + 1000)
    table = _scored(model, fresh.counts)
    truth = fresh.labels["resistant"].map({1: "resistant", 0: "sensitive"})
    covered = pd.Series(
        [t in s.split(";") for t, s in zip(truth, table["prediction_set"], strict=True)],
        index=table.index,
    )
    lineage = fresh.labels["lineage"]
    per_lineage = {
        str(name): {"n": int(part.size), "coverage": float(part.mean())}
        for name, part in covered.groupby(lineage)
        if part.size >= MIN_LINEAGE
    }
    shifted = simulate_cohort(
        n_samples=n_test, n_genes=N_GENES, seed=seed + 2000, scenario="platform-shift"
    )
    external = _scored(model, shifted.external.expression)
    solid = _scored(model, solid_tumour_profiles(fresh.tpm, seed))
    y = fresh.labels["resistant"].to_numpy()
    uncertainty = model.uncertainty
    assert uncertainty is not None and uncertainty.calibrator is not None
    return {
        "seed": seed,
        "n_train": n_train,
        "n_test": n_test,
        "calibration": uncertainty.calibrator.method_,
        "coverage": float(covered.mean()),
        "per_lineage": per_lineage,
        "uncertain_share": float((table["call"] == "uncertain").mean()),
        "flagged_fresh": float(table["out_of_domain"].mean()),
        "flagged_platform_shift": float(external["out_of_domain"].mean()),
        "flagged_non_blood": float(solid["out_of_domain"].mean()),
        "brier_raw": float(brier_score_loss(y, table["probability"])),
        "brier_calibrated": float(brier_score_loss(y, table["calibrated_probability"])),
        "seconds": round(time.perf_counter() - started, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-train", type=int, nargs="+", default=[300])
    parser.add_argument("--n-test", type=int, default=1000)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    args = parser.parse_args()
    rows = []
    for n_train in args.n_train:
        for seed in args.seeds:
            row = run_seed(n_train, args.n_test, seed)
            print(json.dumps(row), flush=True)
            rows.append(row)
    worst = min((v["coverage"], k, r["seed"]) for r in rows for k, v in r["per_lineage"].items())
    print(
        "coverage overall: "
        + ", ".join(f"{r['coverage']:.3f}" for r in rows)
        + f"; worst lineage {worst[1]} (seed {worst[2]}): {worst[0]:.3f}"
    )
    for key in ("flagged_fresh", "flagged_platform_shift", "flagged_non_blood"):
        print(f"{key}: " + ", ".join(f"{r[key]:.3f}" for r in rows))
    raw = np.mean([r["brier_raw"] for r in rows])
    calibrated = np.mean([r["brier_calibrated"] for r in rows])
    print(f"mean Brier raw/calibrated: {raw:.4f} / {calibrated:.4f}")


if __name__ == "__main__":
    main()
