"""Large /v1/predict and /v1/explain requests are scored in chunks and streamed (issue 15,
item 2): the same answer, byte for byte, as the whole one; refusals still come first."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from service_settings import make_settings

from nkpredict.exceptions import NKPredictError
from nkpredict.model.fitted import NKResistanceModel
from nkpredict.registry import ModelReference
from service.answers import EXPLAIN_CHUNK, Answer, explain_json, predict_json
from service.app import create_app
from service.bodies import SparseRows, parse_samples_body
from service.errors import ServiceError
from service.schemas import PredictOptions
from service.state import LoadedModel, make_loaded


@pytest.fixture(scope="module")
def loaded(service_model_dir: Path) -> LoadedModel:
    model = NKResistanceModel.load(service_model_dir)
    return make_loaded(model, ModelReference(str(service_model_dir)))


def _text(answer: Answer) -> bytes:
    return answer if isinstance(answer, bytes) else b"".join(answer)


def _mixed_body(service_cohort: Any, n_samples: int, **options: Any) -> bytes:
    """Whole profiles, profiles with genes left out, a decoy gene per sample and a sample
    of one model gene: coverage, imputed genes and the identifier report all vary."""
    counts = service_cohort.counts
    rng = np.random.default_rng(3)
    samples: dict[str, dict[str, Any]] = {}
    for i in range(n_samples):
        row = counts.iloc[i % len(counts)]
        kept = row[rng.random(len(row)) > (i % 4) * 0.3]
        genes = {str(g): float(v) for g, v in kept.items()}
        genes[f"DECOY{i}"] = float(i % 5)
        samples[f"S{i}"] = genes
    samples["lonely"] = {str(counts.columns[0]): 12.0}
    return json.dumps({"samples": samples, "min_coverage": 0, **options}).encode()


@pytest.mark.parametrize("chunk", [1, 7, 40])
def test_a_chunked_prediction_is_the_whole_answer_byte_for_byte(
    loaded: LoadedModel, service_model_dir: Path, service_cohort: Any, chunk: int
) -> None:
    raw = _mixed_body(service_cohort, 60)
    whole, n_whole = predict_json(
        loaded, raw, make_settings(service_model_dir, answer_chunk_samples=10_000)
    )
    chunked, n_chunked = predict_json(
        loaded, raw, make_settings(service_model_dir, answer_chunk_samples=chunk)
    )
    assert isinstance(whole, bytes)
    assert isinstance(chunked, Iterator)
    assert n_whole == n_chunked == 61
    text = _text(chunked)
    assert text == whole
    answer = json.loads(text)
    assert answer["n_samples"] == len(answer["predictions"]) == 61
    assert answer["harmonization"]["n_missing_model_genes"] == 0


def test_missing_genes_are_gathered_over_the_chunks(
    loaded: LoadedModel, service_model_dir: Path, service_cohort: Any
) -> None:
    """Genes measured by a sample of one chunk only are not missing from the request."""
    genes = list(loaded.model.feature_builder.genes_in_)
    samples = {f"S{i}": {genes[i % 3]: 5.0 + i} for i in range(12)}
    raw = json.dumps({"samples": samples, "min_coverage": 0}).encode()
    whole, _ = predict_json(
        loaded, raw, make_settings(service_model_dir, answer_chunk_samples=10_000)
    )
    chunked, _ = predict_json(loaded, raw, make_settings(service_model_dir, answer_chunk_samples=2))
    text = _text(chunked)
    assert text == whole
    missing = json.loads(text)["harmonization"]["missing_model_genes"]
    assert not set(genes[:3]) & set(missing) and len(missing) == len(genes) - 3


def test_a_chunked_explanation_is_the_whole_answer_byte_for_byte(
    loaded: LoadedModel, service_model_dir: Path, service_cohort: Any
) -> None:
    """Explained in slices of ``EXPLAIN_CHUNK`` samples either way; two chunks here."""
    raw = _mixed_body(service_cohort, 2 * EXPLAIN_CHUNK + 20, level="all", n_drivers=2)
    whole, _ = explain_json(
        loaded, raw, make_settings(service_model_dir, answer_chunk_samples=10_000)
    )
    chunked, n_samples = explain_json(
        loaded, raw, make_settings(service_model_dir, answer_chunk_samples=5)
    )
    assert isinstance(whole, bytes) and isinstance(chunked, Iterator)
    assert _text(chunked) == whole and n_samples == 2 * EXPLAIN_CHUNK + 21


def test_low_coverage_is_refused_before_the_first_byte(
    loaded: LoadedModel, service_model_dir: Path, service_cohort: Any
) -> None:
    raw = _mixed_body(service_cohort, 30, min_coverage=0.9)
    settings = make_settings(service_model_dir, answer_chunk_samples=4)
    for compute in (predict_json, explain_json):
        with pytest.raises(ServiceError) as refused:
            compute(loaded, raw, settings)  # raised by the call, not while iterating
        assert refused.value.status_code == 422 and refused.value.code == "coverage_too_low"
        with pytest.raises(ServiceError) as whole:
            compute(loaded, raw, make_settings(service_model_dir, answer_chunk_samples=10_000))
        assert whole.value.details == refused.value.details


def test_a_large_sparse_request_answers_every_sample_over_http(
    service_model_dir: Path, loaded: LoadedModel
) -> None:
    """3,000 samples naming one gene each (min_coverage 0): streamed in chunks of 256."""
    genes = list(loaded.model.feature_builder.genes_in_)
    samples = {f"S{i}": {genes[i % len(genes)]: 1 + i % 97} for i in range(3_000)}
    settings = make_settings(service_model_dir)
    assert settings.answer_chunk_samples < 3_000
    with TestClient(create_app(settings)) as client:
        response = client.post("/v1/predict", json={"samples": samples, "min_coverage": 0})
        assert response.status_code == 200, response.text[:300]
        assert "content-length" not in response.headers  # streamed
        assert response.headers["content-type"] == "application/json"
        answer = response.json()
        assert answer["n_samples"] == 3_000
        assert [p["sample_id"] for p in answer["predictions"]] == list(samples)
        refused = client.post("/v1/predict", json={"samples": samples, "min_coverage": 0.5})
        assert refused.status_code == 422
        assert refused.json()["error"]["code"] == "coverage_too_low"
        small = client.post(
            "/v1/predict", json={"samples": {"a": samples["S0"]}, "min_coverage": 0}
        )
        assert small.status_code == 200 and small.headers["content-length"]


def _sparse_body(loaded: LoadedModel, n_samples: int, **options: Any) -> dict[str, Any]:
    """Each sample: 5 of the model's genes and 3 genes of its own (the body is reduced)."""
    genes = list(loaded.model.feature_builder.genes_in_)
    rng = np.random.default_rng(5)
    samples = {}
    for i in range(n_samples):
        row = {genes[k]: int(rng.poisson(40)) for k in rng.choice(len(genes), 5, replace=False)}
        row.update({f"OWN{i}_{k}": int(rng.poisson(40)) for k in range(3)})
        samples[f"S{i}"] = row
    return {"samples": samples, "min_coverage": 0, **options}


@pytest.mark.parametrize("scale", [None, "counts", "tpm"])
def test_a_reduced_sparse_body_is_prepared_a_chunk_at_a_time_with_the_same_answer(
    loaded: LoadedModel, service_model_dir: Path, scale: str | None
) -> None:
    body = _sparse_body(loaded, 300, **({} if scale is None else {"scale": scale}))
    raw = json.dumps(body).encode()
    samples, _ = parse_samples_body(raw, 10_000, PredictOptions, loaded.model_genes)
    assert isinstance(samples.stored, SparseRows)  # never dense in the chunked answer
    assert np.array_equal(samples.rows(40, 90), samples.values[40:90], equal_nan=True)
    whole, _ = predict_json(
        loaded, raw, make_settings(service_model_dir, answer_chunk_samples=10_000)
    )
    chunked, _ = predict_json(
        loaded, raw, make_settings(service_model_dir, answer_chunk_samples=64)
    )
    assert isinstance(chunked, Iterator)
    assert _text(chunked) == whole


@pytest.mark.parametrize("bad", [-3, 0])
def test_a_bad_value_in_a_late_chunk_gives_the_whole_answers_error(
    loaded: LoadedModel, service_model_dir: Path, bad: int
) -> None:
    """A negative count, or a sample of zero counts, in the last chunk: the same 422 as the
    whole answer, raised before any byte."""
    body = _sparse_body(loaded, 300, scale="counts")
    body["samples"]["S290"] = dict.fromkeys(body["samples"]["S290"], bad)
    raw = json.dumps(body).encode()
    errors = []
    for chunk in (10_000, 64):
        with pytest.raises(NKPredictError) as refused:
            predict_json(loaded, raw, make_settings(service_model_dir, answer_chunk_samples=chunk))
        errors.append(str(refused.value))
    assert errors[0] == errors[1] and "S290" in errors[0]
