"""Tests for the fitted model object: fit, predict, save, load."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from nkpredict.catalog import load_catalog
from nkpredict.data.labels import LabelDefinition
from nkpredict.exceptions import CoverageError, ModelLoadError, NotFittedError
from nkpredict.model.fitted import BOOSTER_FILE, MODEL_FILE, NKResistanceModel


@pytest.fixture(scope="module")
def data() -> tuple[pd.DataFrame, pd.Series]:
    genes = [*load_catalog().all_genes(), "GAPDH"]
    rng = np.random.default_rng(1)
    counts = rng.poisson(40, (160, len(genes)))
    frame = pd.DataFrame(counts, columns=genes, index=[f"S{i:03d}" for i in range(160)])
    logit = (frame["HLA-E"] - frame["NCR3LG1"]) / 6
    y = pd.Series((rng.random(160) < 1 / (1 + np.exp(-logit))).astype(int), index=frame.index)
    return frame, y


@pytest.fixture(scope="module")
def fitted(data: tuple[pd.DataFrame, pd.Series]) -> NKResistanceModel:
    frame, y = data
    return NKResistanceModel(booster={"n_estimators": 80}).fit(frame, y)


def test_predict_table(fitted: NKResistanceModel, data: tuple[pd.DataFrame, pd.Series]) -> None:
    frame, _ = data
    table = fitted.predict_table(fitted.prepare(frame))
    assert list(table.columns) == [
        "sample_id",
        "probability",
        "call",
        "coverage",
        "warnings",
        "imputed_genes",
        "out_of_domain",
        "domain_reasons",
    ]
    assert table["sample_id"].tolist() == frame.index.tolist()
    assert set(table["call"]) <= {"resistant", "sensitive"}
    np.testing.assert_allclose(table["probability"], fitted.predict_proba(frame)[:, 1])
    assert ((table["probability"] >= 0.5) == (table["call"] == "resistant")).all()


def test_save_load_round_trip_is_exact(
    fitted: NKResistanceModel, data: tuple[pd.DataFrame, pd.Series], tmp_path
) -> None:
    frame, _ = data
    directory = fitted.save(tmp_path / "model")
    assert sorted(p.name for p in directory.iterdir()) == [BOOSTER_FILE, MODEL_FILE]
    loaded = NKResistanceModel.load(directory)
    np.testing.assert_array_equal(loaded.predict_proba(frame), fitted.predict_proba(frame))
    assert loaded.label_definition_ == fitted.label_definition_
    fitted.save(directory)  # overwriting an existing model works
    assert not list(tmp_path.glob(".model*"))


def test_identifier_styles_give_identical_predictions(
    fitted: NKResistanceModel, data: tuple[pd.DataFrame, pd.Series]
) -> None:
    frame, _ = data
    renamed = frame.rename(columns={"NCR3LG1": "B7-H6", "NECTIN2": "PVRL2", "HLA-E": "hla-e"})
    np.testing.assert_allclose(fitted.predict_proba(renamed), fitted.predict_proba(frame))


def test_coverage_check(fitted: NKResistanceModel, data: tuple[pd.DataFrame, pd.Series]) -> None:
    frame, _ = data
    few = frame.iloc[:2, :20]
    prepared = fitted.prepare(few)
    with pytest.raises(CoverageError, match="missing: TNFRSF10B, HLA-A"):
        fitted.check_coverage(prepared, 0.5)
    assert (fitted.check_coverage(prepared, 0.0) < 0.5).all()


def test_regression_task(data: tuple[pd.DataFrame, pd.Series]) -> None:
    frame, _ = data
    readout = pd.Series(np.log1p(frame["NCR3LG1"].to_numpy()), index=frame.index)
    definition = LabelDefinition("killing_auc", task="regression")
    model = NKResistanceModel(task="regression", booster={"n_estimators": 50})
    model.fit(frame, readout, definition)
    table = model.predict_table(model.prepare(frame))
    assert "score" in table and (table["call"] == "n/a").all()
    assert np.corrcoef(table["score"], readout)[0, 1] > 0.5


def test_load_errors(fitted: NKResistanceModel, tmp_path) -> None:
    with pytest.raises(ModelLoadError, match="missing"):
        NKResistanceModel.load(tmp_path / "nowhere")
    directory = fitted.save(tmp_path / "model")
    (directory / BOOSTER_FILE).write_bytes(b"not a booster")
    with pytest.raises(ModelLoadError, match="booster"):
        NKResistanceModel.load(directory)
    (directory / MODEL_FILE).write_text("{broken")
    with pytest.raises(ModelLoadError):
        NKResistanceModel.load(directory)
    (directory / MODEL_FILE).write_text(json.dumps({"format_version": 99}))
    with pytest.raises(ModelLoadError, match="format"):
        NKResistanceModel.load(directory)


def test_unfitted_model_raises() -> None:
    with pytest.raises(NotFittedError):
        NKResistanceModel().predict_proba(pd.DataFrame({"A": [1.0]}))
