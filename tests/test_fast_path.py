"""The request-sized fast path of the library: same answers as the general path, bit for bit.

Covers :mod:`nkpredict.fast.trees`, ``ArrayScorer.prepare`` /
``predictions``, and the remembered identifier mapping and column positions.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import pytest
import xgboost as xgb

from nkpredict.data.expression import prepare_expression, prepare_values
from nkpredict.data.identifiers import map_identifiers
from nkpredict.exceptions import ExpressionFormatError, ScaleError
from nkpredict.fast import trees as compiled_trees
from nkpredict.fast.scoring import COMPILED_MAX_ROWS
from nkpredict.fast.trees import compile_trees, probe_rows
from nkpredict.model.fitted import NKResistanceModel

if TYPE_CHECKING:
    from nkpredict.simulate.cohort import Cohort


def _booster(objective: str, depth: int, seed: int) -> tuple[xgb.Booster, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(400, 12)).astype(np.float32)
    signal = x[:, 0] - 0.5 * x[:, 1] * x[:, 2] + rng.normal(scale=0.5, size=400)
    y = signal if objective.startswith("reg") else (signal > 0.3).astype(np.float32)
    x[rng.random(x.shape) < 0.1] = np.nan
    params = {"objective": objective, "max_depth": depth, "nthread": 1, "seed": seed}
    return xgb.train(params, xgb.DMatrix(x, label=y), num_boost_round=40), x


@pytest.mark.parametrize(
    ("objective", "depth"),
    [("binary:logistic", 2), ("binary:logistic", 5), ("reg:squarederror", 3)],
)
def test_compiled_trees_equal_xgboost_bit_for_bit(objective: str, depth: int) -> None:
    booster, x = _booster(objective, depth, seed=depth)
    compiled = compile_trees(booster)
    assert compiled is not None
    rng = np.random.default_rng(0)
    inputs = [x, probe_rows(compiled, 300), x[:1], np.full((3, x.shape[1]), np.nan)]
    scaled = (x * rng.uniform(0.5, 2.0)).astype(np.float32)
    inputs.append(np.nan_to_num(scaled))  # no missing value: the other code branch
    for values in inputs:
        expected = booster.inplace_predict(values, predict_type="margin")
        got = compiled.predict_margin(values)
        assert got.dtype == np.float32
        np.testing.assert_array_equal(got, expected)


def test_unsupported_or_inexact_models_are_not_compiled(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    booster, _ = _booster("binary:logitraw", 2, seed=1)
    assert compile_trees(booster) is None
    logistic, _ = _booster("binary:logistic", 2, seed=1)
    real = compiled_trees._base_margin
    monkeypatch.setattr(compiled_trees, "_base_margin", lambda doc: np.float32(real(doc) + 1e-3))
    with caplog.at_level(logging.WARNING, logger="nkpredict.fast.trees"):
        assert compile_trees(logistic) is None
    assert "differ from XGBoost" in caplog.text


def test_shape_mismatch_is_refused() -> None:
    booster, _ = _booster("binary:logistic", 2, seed=2)
    compiled = compile_trees(booster)
    assert compiled is not None
    with pytest.raises(ValueError, match="expected shape"):
        compiled.predict_margin(np.zeros((1, 3), dtype=np.float32))
    assert compiled.predict_margin(np.zeros((0, 12), dtype=np.float32)).shape == (0,)


@pytest.fixture(scope="module")
def model(service_model_dir: Path) -> NKResistanceModel:
    return NKResistanceModel.load(service_model_dir)


def test_small_and_large_inputs_score_the_same(
    model: NKResistanceModel, service_cohort: Cohort
) -> None:
    counts = service_cohort.counts
    assert len(counts) > COMPILED_MAX_ROWS
    batch = model.predict_table(model.prepare(counts))  # XGBoost path
    one_by_one = pd.concat(
        [model.predict_table(model.prepare(counts.iloc[[i]])) for i in range(40)],
        ignore_index=True,
    )
    pd.testing.assert_frame_equal(one_by_one, batch.iloc[:40].reset_index(drop=True))
    margins = model.boosted_trees.predict_margin(model.features(model.prepare(counts.iloc[:5])))
    np.testing.assert_array_equal(model.predict_margin(counts.iloc[:5]), margins)


def test_predictions_are_the_table(model: NKResistanceModel, service_cohort: Cohort) -> None:
    prepared = model.prepare(service_cohort.counts.iloc[:7])
    predictions = model.predictions(prepared)
    table = model.predict_table(prepared)
    rows = table.to_dict(orient="records")
    for row in rows:  # the table joins each sample's lists with ";"
        for name in ("warnings", "imputed_genes", "domain_reasons"):
            row[name] = row[name].split(";") if row[name] else []
    records = predictions.to_records()
    for record in records:  # parts this model lacks are None in records, absent in tables
        for name in ("calibrated_probability", "prediction_set", "lineage"):
            assert record.pop(name) is None
    assert records == rows
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
    assert table["call"].dtype == object


def test_prepare_values_equals_prepare_expression(service_cohort: Cohort) -> None:
    counts = service_cohort.counts.iloc[:5, :300].copy()
    counts.columns = [("B7-H6" if c == "NCR3LG1" else c) for c in counts.columns]
    counts.iloc[1, 3] = np.nan
    for scale in ("auto", "counts", "tpm"):
        expected = prepare_expression(counts, scale=scale)  # type: ignore[arg-type]
        got = prepare_values(counts.to_numpy(), counts.index, list(counts.columns), scale)  # type: ignore[arg-type]
        pd.testing.assert_frame_equal(got.matrix, expected.matrix)
        assert got.scale == expected.scale
        assert got.report == expected.report


@pytest.mark.parametrize(
    ("values", "samples", "error", "match"),
    [
        ([[1.0, 2.0], [3.0, 4.0]], ["a", "a"], ExpressionFormatError, "duplicated sample IDs"),
        ([[np.nan, np.nan]], ["a"], ExpressionFormatError, "only missing values"),
        ([[np.inf, 1.0]], ["a"], ExpressionFormatError, "infinite"),
        ([[1.0, 2.0]], ["a", "b"], ExpressionFormatError, "do not match"),
        ([[-5.0, 200.0]], ["a"], ScaleError, "negative"),
    ],
)
def test_prepare_values_refuses_like_prepare_expression(
    values: list[list[float]], samples: list[str], error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match):
        prepare_values(np.array(values), samples, ["MICA", "TP53"])
    if len(samples) == len(values):
        frame = pd.DataFrame(values, index=samples, columns=["MICA", "TP53"])
        with pytest.raises(error, match=match):
            prepare_expression(frame)


def test_remembered_mapping_returns_fresh_objects() -> None:
    ids = ["NCR3LG1", "B7-H6", "not_a_gene", "TP53", "TP53"]
    mapping, report = map_identifiers(ids)
    mapping["X"] = "Y"
    report.renamed.clear()
    report.collided["TP53"].append("changed")
    again, report_again = map_identifiers(ids)
    assert "X" not in again
    assert report_again.renamed == {"B7-H6": "NCR3LG1"}
    assert report_again.collided == {"NCR3LG1": ["NCR3LG1", "B7-H6"], "TP53": ["TP53", "TP53"]}


def test_gene_values_follow_the_columns(model: NKResistanceModel) -> None:
    builder = model.feature_builder
    genes = list(builder.genes_in_)
    rng = np.random.default_rng(3)
    values = rng.uniform(0, 10, size=(2, len(genes)))
    frame = pd.DataFrame(values, columns=genes)
    np.testing.assert_array_equal(builder.gene_values(frame), values)
    shuffled = frame[genes[::-1]]
    np.testing.assert_array_equal(builder.gene_values(shuffled), values)  # other layout
    partial = frame.drop(columns=genes[:3]).assign(EXTRA=1.0)
    got = builder.gene_values(partial)
    assert np.isnan(got[:, :3]).all()
    np.testing.assert_array_equal(got[:, 3:], values[:, 3:])
    np.testing.assert_array_equal(builder.gene_values(frame), values)  # cached again
    duplicated = pd.concat([frame, frame[genes[:1]]], axis=1)
    with pytest.raises(ValueError):
        builder.gene_values(duplicated)  # like DataFrame.reindex
