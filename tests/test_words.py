"""Explanations in words: the value, where it sits in the training cohort, the push and the
probability with the gene at its median; imputed genes kept out; readable names."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from nkpredict.catalog import load_catalog
from nkpredict.explain.attributions import Driver, attributions, explain, unit_label
from nkpredict.explain.words import (
    SENTENCES_FILE,
    UNIT_NOTES,
    explanation_words,
    level_word,
    position_words,
    sample_words,
)
from nkpredict.model.fitted import MODEL_FILE, NKResistanceModel
from nkpredict.vocabulary import LEVELS
from service.app import create_app
from service.config import ServiceSettings
from training.cli import app as cli

if TYPE_CHECKING:
    from nkpredict.simulate.cohort import Cohort

UPPER_SNAKE = re.compile(r"^[A-Z0-9]+(_[A-Z0-9]+)+$")
SENTENCE = re.compile(
    r"^(?P<name>.+) is (very low|low|typical|high|very high) here \((?P<where>[^)]+)\): "
    r"[+-]\d+\.\d{2} log-odds toward (resistance|sensitivity); probability "
    r"(<0\.01|>0\.99|\d\.\d{2}) at the training median -> (<0\.01|>0\.99|\d\.\d{2}) at this value$"
)


@pytest.fixture(scope="module")
def model(service_model_dir: Path) -> NKResistanceModel:
    return NKResistanceModel.load(service_model_dir)


@pytest.fixture(scope="module")
def counts(service_cohort: Cohort) -> pd.DataFrame:
    return service_cohort.counts


def _words(model: NKResistanceModel, frame: pd.DataFrame, n: int = 3) -> tuple[np.ndarray, list]:
    genes = model.scorer.gene_values(model.prepare(frame))
    result = attributions(model, model.scorer.features(genes))
    return genes, sample_words(model, genes, result, n)


def test_words_for_positions() -> None:
    assert [level_word(p) for p in (2, 5, 30, 80, 99)] == [
        "very low",
        "low",
        "typical",
        "high",
        "very high",
    ]
    assert position_words(5.2) == "5th percentile of the training cohort"
    assert position_words(22) == "22nd percentile of the training cohort"
    assert position_words(0) == "below every training sample"
    assert position_words(100) == "above every training sample"


def test_sentences_give_the_value_its_percentile_and_the_median_counterfactual(
    model: NKResistanceModel, counts: pd.DataFrame
) -> None:
    training = model.scorer.gene_values(model.prepare(counts))
    position = {g: j for j, g in enumerate(model.feature_builder.genes_in_)}
    frame = counts.iloc[:6]
    genes, said = _words(model, frame)
    predicted = model.predict_table(model.prepare(frame))["probability"].to_numpy()
    catalog = load_catalog()
    for i, sample in enumerate(said):
        assert len(sample.genes) == 3
        sizes = [abs(g.contribution) for g in sample.genes]
        assert sizes == sorted(sizes, reverse=True)
        for words in sample.genes:
            match = SENTENCE.match(words.sentence)
            assert match, words.sentence
            assert match["name"] == catalog.gene_name(words.gene)
            column = training[:, position[words.gene]]
            below = 100 * np.mean(column < words.value)
            at_or_below = 100 * np.mean(column <= words.value)
            assert below - 1.5 <= words.percentile <= at_or_below + 1.5, words.gene
            if 1 <= words.percentile <= 99:
                assert position_words(words.percentile) in words.sentence
            assert words.value == genes[i, position[words.gene]]
            assert words.output == pytest.approx(predicted[i], rel=1e-6)
            # the probability with the gene at its training median, everything else as measured
            changed = genes[i : i + 1].copy()
            changed[0, position[words.gene]] = model.gene_reference_.median(words.gene)  # type: ignore[union-attr]
            margin = float(model.scorer.margins(model.scorer.features(changed))[0])
            assert words.output_at_median == pytest.approx(1 / (1 + np.exp(-margin)), rel=1e-5)


def test_imputed_genes_are_named_once_and_never_a_sentence(
    model: NKResistanceModel, counts: pd.DataFrame
) -> None:
    _, full = _words(model, counts.iloc[:1])
    top = full[0].genes[0].gene
    _, partial = _words(model, counts.iloc[:1].drop(columns=[top]))
    sample = partial[0]
    assert top in sample.imputed
    assert top not in [g.gene for g in sample.genes] and len(sample.genes) == 3
    sentences = sample.sentences()
    name = load_catalog().gene_name(top)
    assert sum(name in s or top in s for s in sentences) == 1
    assert sentences[-1].startswith("Not measured here") and top in sentences[-1]


def test_non_biological_units_are_explained_where_they_appear(
    model: NKResistanceModel, counts: pd.DataFrame
) -> None:
    genes = model.scorer.gene_values(model.prepare(counts.iloc[:1]))
    result = attributions(model, model.scorer.features(genes))
    drivers = [[Driver("LINEAGE", "Lineage programs", 0.3, "toward resistant")]]
    said = sample_words(model, genes, result, 2, drivers)[0]
    assert said.notes == [UNIT_NOTES["LINEAGE"]]
    assert UNIT_NOTES["LINEAGE"] in said.sentences()
    plain = sample_words(model, genes, result, 2, [[Driver("NKp30", "NKp30 / B7-H6", 0.3, "x")]])
    assert plain[0].notes == []


def test_readable_names_everywhere(model: NKResistanceModel, counts: pd.DataFrame) -> None:
    assert unit_label("pathway", "IFNG_SIGNALING") == "IFN-gamma signalling"
    assert unit_label("pathway", "NK_LIGANDS") == "NK ligands (no pathway)"
    assert unit_label("gene", "NCR3LG1") == "B7-H6 (NCR3LG1)"
    assert unit_label("feature", "pathway:MYELOID_PROGRAM") == "Myeloid lineage program score"
    explanation = explain(model, model.prepare(counts.iloc[:30]))
    for level in LEVELS:
        labels = explanation.global_importance(level)["label"]
        snake = [label for label in labels if UPPER_SNAKE.match(label)]
        assert not snake, (level, snake)


def test_models_saved_without_the_gene_reference_say_the_value(
    service_model_dir: Path, counts: pd.DataFrame, tmp_path: Path
) -> None:
    older = tmp_path / "older"
    shutil.copytree(service_model_dir, older)
    document = json.loads((older / MODEL_FILE).read_text())
    del document["gene_reference"]
    (older / MODEL_FILE).write_text(json.dumps(document))
    _, said = _words(NKResistanceModel.load(older), counts.iloc[:1])
    assert re.search(r" is \d+\.\d{2} log2\(TPM\+1\) here: ", said[0].genes[0].sentence)


def test_the_explain_answer_and_command_carry_the_sentences(
    service_model_dir: Path, model: NKResistanceModel, counts: pd.DataFrame, tmp_path: Path
) -> None:
    frame = counts.iloc[:3]
    settings = ServiceSettings(
        model_uri=str(service_model_dir), api_key=None, admin_api_key=None, cors_origins=[]
    )
    body = {"samples": {str(s): row.to_dict() for s, row in frame.iterrows()}, "n_drivers": 2}
    with TestClient(create_app(settings)) as client:
        response = client.post("/v1/explain", json=body)
    assert response.status_code == 200, response.text
    explanation = explain(model, model.prepare(frame))
    expected = explanation_words(model, explanation, 2)
    for item, words in zip(response.json()["explanations"], expected, strict=True):
        assert item["top_drivers"] and item["driver_sentences"][:2] == [
            g.sentence for g in words.genes
        ]
    expression = tmp_path / "expression.csv"
    frame.to_csv(expression)
    out = tmp_path / "explained"
    args = ["explain", "--model", str(service_model_dir), "--expression", str(expression)]
    result = CliRunner().invoke(cli, [*args, "--out", str(out), "--quiet"])
    assert result.exit_code == 0, result.output
    table = pd.read_csv(out / SENTENCES_FILE)
    assert list(table.columns)[:3] == ["sample_id", "rank", "gene"]
    first = table[table["sample_id"] == frame.index[0]]
    assert first["sentence"].tolist()[:3] == [
        g.sentence for g in explanation_words(model, explanation, 3)[0].genes
    ]


def test_top_genes_of_one_sample_equal_those_of_a_batch() -> None:
    """The one-sample ranking keeps the batch's order, ties and 1e-12 floor."""
    from nkpredict.explain.words import _top_genes

    rng = np.random.default_rng(3)
    for _ in range(300):
        ranked = np.abs(rng.normal(size=(4, int(rng.integers(1, 200)))))
        ranked[rng.random(ranked.shape) < 0.2] = -1.0  # unmeasured
        ranked[rng.random(ranked.shape) < 0.1] = 0.0
        ranked[:, : ranked.shape[1] // 3] = np.round(ranked[:, : ranked.shape[1] // 3], 1)
        n = int(rng.integers(0, 6))
        sample, column = _top_genes(ranked, n)
        for i in range(4):
            one_sample, one_column = _top_genes(ranked[i : i + 1], n)
            assert one_sample.tolist() == [0] * one_column.size
            assert one_column.tolist() == column[sample == i].tolist()
