"""The HTTP service in-process (FastAPI TestClient): every endpoint and every error path."""

from __future__ import annotations

import gzip
import io
import json
import math
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import pytest
from fastapi import APIRouter, Depends, Request, Response
from fastapi.testclient import TestClient
from pydantic import SecretStr
from service_settings import make_settings

from nkpredict.exceptions import ModelLoadError
from nkpredict.explain.attributions import explain
from nkpredict.model.fitted import NKResistanceModel
from nkpredict.registry import ModelReference, load_model
from nkpredict.settings import DEFAULT_MIN_COVERAGE, Settings
from service.api.direct import DirectRoute
from service.app import create_app
from service.config import ServiceSettings
from service.deps import get_loaded_model
from service.schemas import OTHER_UNIT, ExplainResponse, ModelInfo, PredictResponse
from service.server import access_log_shown, serve
from service.state import ModelHolder, default_loader, make_loaded

if TYPE_CHECKING:
    from nkpredict.simulate.cohort import Cohort

ADMIN_KEY = "admin-secret"
API_KEY = "api-secret"


# --------------------------------------------------------------------------- helpers


def body_of(frame: pd.DataFrame, **options: Any) -> dict[str, Any]:
    """A /v1/predict body from a samples x genes frame."""
    samples = {str(sid): row.to_dict() for sid, row in frame.iterrows()}
    return {"samples": samples, **options}


def error_of(response: Any, status: int, code: str) -> dict[str, Any]:
    """Assert the shared error shape and return its content."""
    assert response.status_code == status, response.text
    payload = response.json()
    assert set(payload) == {"error"}
    assert set(payload["error"]) == {"code", "message", "details"}
    assert payload["error"]["code"] == code, payload
    assert payload["error"]["message"]
    return payload["error"]


def probabilities(response: Any) -> dict[str, float]:
    return {p["sample_id"]: p["probability"] for p in response.json()["predictions"]}


@pytest.fixture(scope="module")
def model(service_model_dir: Path) -> NKResistanceModel:
    return NKResistanceModel.load(service_model_dir)


@pytest.fixture(scope="module")
def counts(service_cohort: Cohort) -> pd.DataFrame:
    return service_cohort.counts


@pytest.fixture(scope="module")
def client(service_model_dir: Path) -> Iterator[TestClient]:
    app = create_app(make_settings(service_model_dir, max_body_bytes=2_000_000, max_samples=50))
    with TestClient(app) as test_client:
        yield test_client


@pytest.fixture
def app_factory(service_model_dir: Path) -> Iterator[Callable[..., TestClient]]:
    """Start apps with custom settings; all are stopped at the end of the test."""
    clients: list[TestClient] = []

    def start(**overrides: Any) -> TestClient:
        test_client = TestClient(create_app(make_settings(service_model_dir, **overrides)))
        test_client.__enter__()
        clients.append(test_client)
        return test_client

    yield start
    for test_client in clients:
        test_client.__exit__(None, None, None)


# --------------------------------------------------------------------------- probes


def test_health_is_open_and_cheap(app_factory: Callable[..., TestClient]) -> None:
    client = app_factory(api_key=SecretStr(API_KEY))
    response = client.get("/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_ready_before_the_model_is_loaded(service_model_dir: Path) -> None:
    app = create_app(make_settings(service_model_dir))
    client = TestClient(app)  # no context manager: the lifespan (model loading) never runs
    error_of(client.get("/ready"), 503, "model_not_loaded")
    error_of(
        client.post("/v1/predict", json={"samples": {"a": {"MICA": 1}}}), 503, "model_not_loaded"
    )
    assert client.get("/health").status_code == 200


def test_ready_after_start(client: TestClient, service_model_dir: Path) -> None:
    response = client.get("/ready")
    assert response.status_code == 200
    assert response.json()["status"] == "ready"
    assert response.json()["model"]["uri"] == str(service_model_dir)


def test_startup_fails_with_a_clear_error(tmp_path: Path) -> None:
    app = create_app(make_settings(tmp_path / "missing"))
    with pytest.raises(ModelLoadError, match="missing"), TestClient(app):
        pass


def test_unknown_route_and_method_have_the_error_shape(client: TestClient) -> None:
    error = error_of(client.get("/v2/nothing"), 404, "not_found")
    assert "/v2/nothing" in error["message"]
    error_of(client.get("/v1/predict"), 405, "method_not_allowed")


# --------------------------------------------------------------------------- predict


def test_predict_equals_the_model_in_process(
    client: TestClient, model: NKResistanceModel, counts: pd.DataFrame
) -> None:
    frame = counts.iloc[:7]
    response = client.post("/v1/predict", json=body_of(frame))
    assert response.status_code == 200, response.text
    payload = PredictResponse.model_validate(response.json())
    expected = model.predict_table(model.prepare(frame))
    assert [p.sample_id for p in payload.predictions] == list(frame.index)
    np.testing.assert_allclose(
        [p.probability for p in payload.predictions], expected["probability"], rtol=1e-12
    )
    assert [p.call for p in payload.predictions] == expected["call"].tolist()
    np.testing.assert_allclose([p.coverage for p in payload.predictions], expected["coverage"])
    assert payload.scale == "counts"
    assert payload.task == "classification"
    assert payload.harmonization.n_mapped == frame.shape[1]
    assert payload.harmonization.missing_model_genes == []
    assert payload.model.uri.endswith("champion")


def test_predict_reports_renamed_unmapped_and_missing_genes(
    client: TestClient, model: NKResistanceModel, counts: pd.DataFrame
) -> None:
    frame = counts.iloc[:2].rename(columns={"NCR3LG1": "B7-H6", "NECTIN2": "PVRL2"})
    frame = frame.drop(columns=["MICB"]).assign(NOT_A_GENE_XYZ=5)
    response = client.post("/v1/predict", json=body_of(frame))
    assert response.status_code == 200, response.text
    report = response.json()["harmonization"]
    assert report["renamed"] == {"B7-H6": "NCR3LG1", "PVRL2": "NECTIN2"}
    assert report["unmapped"] == ["NOT_A_GENE_XYZ"]
    assert report["missing_model_genes"] == ["MICB"]
    expected = model.predict_table(model.prepare(frame))
    np.testing.assert_allclose(list(probabilities(response).values()), expected["probability"])


def test_predict_samples_with_different_genes(
    client: TestClient, model: NKResistanceModel, counts: pd.DataFrame
) -> None:
    frame = counts.iloc[:3]
    body = body_of(frame)
    body["samples"][frame.index[1]].pop("HLA-E")
    body["samples"][frame.index[2]]["HLA-E"] = None  # null = not measured
    response = client.post("/v1/predict", json=body, params={})
    assert response.status_code == 200, response.text
    expected_frame = frame.astype(float)
    expected_frame.loc[frame.index[1:], "HLA-E"] = np.nan
    expected = model.predict_table(model.prepare(expected_frame))
    np.testing.assert_allclose(list(probabilities(response).values()), expected["probability"])


def test_predict_declared_scales(
    client: TestClient, model: NKResistanceModel, service_cohort: Cohort
) -> None:
    tpm = service_cohort.tpm.iloc[:3]
    response = client.post("/v1/predict", json=body_of(tpm, scale="tpm"))
    assert response.status_code == 200, response.text
    assert response.json()["scale"] == "tpm"
    log = np.log2(tpm + 1)
    response = client.post("/v1/predict", json=body_of(log, scale="log"))
    assert response.status_code == 200
    assert response.json()["scale"] == "log"
    error_of(client.post("/v1/predict", json=body_of(tpm, scale="fpkm")), 422, "validation_error")


def test_negative_counts_are_refused(client: TestClient, counts: pd.DataFrame) -> None:
    frame = counts.iloc[:2].copy()
    frame.iloc[1, 3] = -4
    error = error_of(
        client.post("/v1/predict", json=body_of(frame, scale="counts")), 422, "invalid_scale"
    )
    assert "negative" in error["message"]
    error_of(client.post("/v1/predict", json=body_of(frame)), 422, "invalid_scale")


def test_low_coverage_names_the_missing_genes(client: TestClient, counts: pd.DataFrame) -> None:
    frame = counts.iloc[:2, :20]
    error = error_of(client.post("/v1/predict", json=body_of(frame)), 422, "coverage_too_low")
    details = error["details"]
    assert details["min_coverage"] == 0.5
    assert set(details["samples"]) == set(frame.index)
    assert "HLA-E" in details["missing_genes"] and "MICA" not in details["missing_genes"]
    response = client.post("/v1/predict", json=body_of(frame, min_coverage=0.0))
    assert response.status_code == 200
    assert all(p["coverage"] < 0.5 for p in response.json()["predictions"])
    error_of(
        client.post("/v1/predict", json=body_of(frame, min_coverage=1.5)), 422, "validation_error"
    )


@pytest.mark.parametrize(
    ("content", "status", "code"),
    [
        (b"", 400, "invalid_json"),
        (b"   ", 400, "invalid_json"),
        (b'{"samples": {"a": {"MICA": 1}', 400, "invalid_json"),
        (b"\xff\xfe\x00garbage", 400, "invalid_json"),
        (b"[1, 2]", 422, "validation_error"),
        (b'{"scale": "auto"}', 422, "validation_error"),
        (b'{"samples": {"a": {"MICA": 1}}, "sample": 1}', 422, "validation_error"),
        (b'{"samples": []}', 422, "validation_error"),
        (b'{"samples": {"a": [1, 2]}}', 422, "validation_error"),
        (b'{"samples": {}}', 422, "empty_samples"),
        (b'{"samples": {"a": {}}}', 422, "empty_samples"),
        (b'{"samples": {"a": {"MICA": 1}, "a": {"MICA": 2}}}', 422, "duplicate_sample_id"),
        (b'{"samples": {"a": {"MICA": 1, "MICA": 2}}}', 422, "duplicate_gene"),
        (b'{"samples": {"a": {"MICA": 1}}, "scale": "log", "scale": "tpm"}', 422, "duplicate_key"),
        (b'{"samples": {"a:b": {"MICA": 1, "MICA": 2}}}', 422, "duplicate_gene"),
        (b'{"samples": {"a": {"MICA": 1, "B2M": {"x": 1, "x": 2}}}}', 422, "non_numeric_value"),
        (b'{"samples": {"a": {"MICA": NaN}}}', 422, "non_finite_value"),
        (b'{"samples": {"a": {"MICA": -Infinity}}}', 422, "non_finite_value"),
        (b'{"samples": {"a": {"MICA": 1e999}}}', 422, "non_finite_value"),
        (b'{"samples": {"a": {"MICA": "12"}}}', 422, "non_numeric_value"),
        (b'{"samples": {"a": {"MICA": true}}}', 422, "non_numeric_value"),
        (b'{"samples": {"a": {"MICA": {"x": 1}}}}', 422, "non_numeric_value"),
        (b'{"samples": {"a": {"MICA": null}}}', 422, "invalid_expression"),
        (b"[" * 100_000 + b"]" * 100_000, 400, "invalid_json"),
    ],
)
def test_bad_bodies_get_a_clear_4xx(
    client: TestClient, content: bytes, status: int, code: str
) -> None:
    for route in ("/v1/predict", "/v1/explain"):
        response = client.post(route, content=content, headers={"content-type": "application/json"})
        error_of(response, status, code)


def test_duplicate_ids_are_named(client: TestClient) -> None:
    raw = b'{"samples": {"S1": {"MICA": 1}, "S2": {"MICA": 1}, "S1": {"MICA": 3}}}'
    error = error_of(client.post("/v1/predict", content=raw), 422, "duplicate_sample_id")
    assert error["details"] == {"sample_ids": ["S1"]}
    raw = b'{"samples": {"S1": {"MICA": 1, "HLA-E": "x"}}}'
    error = error_of(client.post("/v1/predict", content=raw), 422, "non_numeric_value")
    assert error["details"] == {"sample_id": "S1", "gene": "HLA-E"}


def test_colons_and_unicode_in_names_parse_like_any_other(
    client: TestClient, counts: pd.DataFrame
) -> None:
    """Names holding colons (or escapes) take the strict parser; the answer is the same."""
    body = body_of(counts.iloc[:2])
    plain = client.post("/v1/predict", json=body).json()
    renamed = dict(zip(body["samples"], ["AML:01 \u00e9", 'MM:"02"'], strict=True))
    body["samples"] = {renamed[k]: v for k, v in body["samples"].items()}
    answer = client.post("/v1/predict", json=body).json()
    assert [p["sample_id"] for p in answer["predictions"]] == list(renamed.values())
    for got, expected in zip(answer["predictions"], plain["predictions"], strict=True):
        assert got["probability"] == expected["probability"]


def test_too_many_samples(client: TestClient, counts: pd.DataFrame) -> None:
    error = error_of(
        client.post("/v1/predict", json=body_of(counts.iloc[:51])), 413, "too_many_samples"
    )
    assert error["details"] == {"n_samples": 51, "max_samples": 50}
    assert client.post("/v1/predict", json=body_of(counts.iloc[:50])).status_code == 200


def test_body_size_limit_with_and_without_content_length(
    app_factory: Callable[..., TestClient], counts: pd.DataFrame
) -> None:
    client = app_factory(max_body_bytes=5_000)
    raw = json.dumps(body_of(counts.iloc[:3])).encode()
    assert len(raw) > 5_000
    error = error_of(client.post("/v1/predict", content=raw), 413, "body_too_large")
    assert error["details"] == {"max_body_bytes": 5_000}

    def chunks() -> Iterator[bytes]:  # no Content-Length: chunked transfer
        for start in range(0, len(raw), 1_000):
            yield raw[start : start + 1_000]

    error_of(client.post("/v1/predict", content=chunks()), 413, "body_too_large")
    files = {"file": ("big.csv", b"x" * 10_000, "text/csv")}
    error_of(client.post("/v1/predict/file", files=files), 413, "body_too_large")
    small = json.dumps(body_of(counts.iloc[:1, :60], min_coverage=0)).encode()
    assert len(small) < 5_000
    assert client.post("/v1/predict", content=small).status_code == 200


# --------------------------------------------------------------------------- uploads


def _upload(client: TestClient, name: str, content: bytes, **form: Any) -> Any:
    return client.post("/v1/predict/file", files={"file": (name, content)}, data=form)


@pytest.mark.parametrize("fmt", ["csv", "tsv", "tsv.gz", "parquet"])
def test_upload_formats(
    client: TestClient, model: NKResistanceModel, counts: pd.DataFrame, fmt: str
) -> None:
    frame = counts.iloc[:5]
    if fmt == "parquet":
        buffer = io.BytesIO()
        frame.to_parquet(buffer)
        content = buffer.getvalue()
    else:
        text = frame.to_csv(sep="," if fmt == "csv" else "\t").encode()
        content = gzip.compress(text) if fmt.endswith(".gz") else text
    response = _upload(client, f"batch.{fmt}", content)
    assert response.status_code == 200, response.text
    PredictResponse.model_validate(response.json())
    expected = model.predict_table(model.prepare(frame))
    assert list(probabilities(response)) == list(frame.index)
    np.testing.assert_allclose(list(probabilities(response).values()), expected["probability"])


def test_upload_options_and_genes_as_rows(client: TestClient, counts: pd.DataFrame) -> None:
    frame = counts.iloc[:3]
    response = _upload(client, "t.csv", frame.T.to_csv().encode(), orientation="genes")
    assert response.status_code == 200, response.text
    assert list(probabilities(response)) == list(frame.index)
    response = _upload(client, "x.csv", frame.iloc[:, :20].to_csv().encode(), min_coverage="0")
    assert response.status_code == 200
    response = _upload(client, "x.csv", frame.to_csv().encode(), scale="counts")
    assert response.json()["scale"] == "counts"
    error_of(
        _upload(client, "x.csv", frame.to_csv().encode(), scale="raw"), 422, "validation_error"
    )


def test_bad_uploads(client: TestClient, counts: pd.DataFrame) -> None:
    error_of(_upload(client, "batch.xlsx", b"PK\x03\x04"), 415, "unsupported_file_type")
    error_of(_upload(client, "no_extension", b"a,b\n"), 415, "unsupported_file_type")
    error_of(_upload(client, "../../etc/passwd", b"a,b\n"), 415, "unsupported_file_type")
    error = error_of(_upload(client, "empty.csv", b""), 422, "invalid_expression")
    assert "empty.csv" in error["message"] and "nkpredict-upload" not in error["message"]
    bad = counts.iloc[:2].astype(object)
    bad.iloc[0, 0] = "high"
    error_of(_upload(client, "bad.csv", bad.to_csv().encode()), 422, "invalid_expression")
    error_of(_upload(client, "bad.parquet", b"not parquet"), 422, "invalid_expression")
    dup = pd.concat([counts.iloc[:2], counts.iloc[:1]])
    error_of(_upload(client, "dup.csv", dup.to_csv().encode()), 422, "invalid_expression")
    many = counts.iloc[:51].to_csv().encode()
    error_of(_upload(client, "many.csv", many), 413, "too_many_samples")
    error_of(client.post("/v1/predict/file"), 422, "validation_error")


# --------------------------------------------------------------------------- explain


def test_explain_parts_add_up_and_match_the_model(
    client: TestClient, model: NKResistanceModel, counts: pd.DataFrame
) -> None:
    frame = counts.iloc[:4]
    response = client.post("/v1/explain", json=body_of(frame, top_n=3))
    assert response.status_code == 200, response.text
    payload = ExplainResponse.model_validate(response.json())
    assert payload.levels == ["gene", "axis", "pathway"]
    prepared = model.prepare(frame)
    expected = model.predict_table(prepared)
    reference = explain(model, prepared)
    for i, item in enumerate(payload.explanations):
        assert item.sample_id == frame.index[i]
        assert item.probability == pytest.approx(expected["probability"][i], rel=1e-9)
        assert item.model_output == pytest.approx(reference.model_output.iloc[i], rel=1e-9)
        assert item.base_value == pytest.approx(reference.base_value)
        assert 1 / (1 + math.exp(-item.model_output)) == pytest.approx(item.probability, rel=1e-5)
        for level in payload.levels:
            values = item.attributions[level]
            assert len(values) == 4 and OTHER_UNIT in values
            assert item.base_value + sum(values.values()) == pytest.approx(
                item.model_output, abs=1e-4
            )
            full = reference.level(level).iloc[i]
            top = full.abs().sort_values(ascending=False).index[:3]
            assert set(values) - {OTHER_UNIT} == set(top)
        assert len(item.top_drivers) == 5
        first = item.top_drivers[0]
        assert first.sentence.startswith(first.label) and first.direction in first.sentence


def test_explain_one_level_without_truncation(client: TestClient, counts: pd.DataFrame) -> None:
    body = body_of(counts.iloc[:2], level="axis", top_n=1000, n_drivers=2)
    response = client.post("/v1/explain", json=body)
    assert response.status_code == 200, response.text
    payload = response.json()
    assert payload["levels"] == ["axis"] and payload["drivers_level"] == "axis"
    for item in payload["explanations"]:
        assert set(item["attributions"]) == {"axis"}
        axis = item["attributions"]["axis"]
        assert OTHER_UNIT not in axis and "NKp30" in axis
        assert item["base_value"] + sum(axis.values()) == pytest.approx(
            item["model_output"], abs=1e-4
        )
        assert len(item["top_drivers"]) == 2
    error_of(client.post("/v1/explain", json={**body, "level": "cell"}), 422, "validation_error")
    error_of(client.post("/v1/explain", json={**body, "top_n": 0}), 422, "validation_error")


def test_explain_coverage_and_size_limits(client: TestClient, counts: pd.DataFrame) -> None:
    error_of(
        client.post("/v1/explain", json=body_of(counts.iloc[:1, :10])), 422, "coverage_too_low"
    )
    error_of(client.post("/v1/explain", json=body_of(counts.iloc[:60])), 413, "too_many_samples")


def test_openapi_examples_work(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    for route in ("/v1/predict", "/v1/explain"):
        content = spec["paths"][route]["post"]["requestBody"]["content"]["application/json"]
        assert content["schema"]["properties"]["samples"]
        for name, example in content["examples"].items():
            response = client.post(route, json=example["value"])
            assert response.status_code == 200, (route, name, response.text)
    predict_doc = spec["paths"]["/v1/predict"]["post"]["requestBody"]["content"]
    example = predict_doc["application/json"]["examples"]["catalogue_panel"]["value"]
    response = client.post("/v1/predict", json=example)
    assert [p["sample_id"] for p in response.json()["predictions"]] == ["AML-0001", "MM-0002"]
    assert all(p["coverage"] == 1.0 for p in response.json()["predictions"])
    assert "X-API-Key" in json.dumps(spec["components"]["securitySchemes"])


# --------------------------------------------------------------------------- model info, metrics


def test_model_info(client: TestClient, model: NKResistanceModel, service_model_dir: Path) -> None:
    response = client.get("/v1/model")
    assert response.status_code == 200
    info = ModelInfo.model_validate(response.json())
    assert info.model.uri == str(service_model_dir)
    assert info.n_features == len(model.feature_builder.get_feature_names_out())
    assert info.catalog_version == model.feature_builder.catalog_version_
    assert info.training_data == {"n_samples": 200, "n_genes": 400, "sha256": "0" * 64}
    assert info.metrics == {"roc_auc": 0.81, "roc_auc_ci": [0.74, 0.88], "brier": None}
    assert info.label_definition == model.label_definition_.to_dict()
    assert info.task == "classification"


def test_metrics(client: TestClient, counts: pd.DataFrame) -> None:
    client.post("/v1/predict", json=body_of(counts.iloc[:2]))
    client.post("/v1/predict", content=b"{")
    client.get("/v2/nothing")
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    text = response.text
    assert 'nkpredict_http_requests_total{method="POST",route="/v1/predict",status="200"}' in text
    assert 'nkpredict_http_requests_total{method="POST",route="/v1/predict",status="400"}' in text
    assert 'route="<unmatched>",status="404"' in text
    assert 'nkpredict_http_errors_total{code="invalid_json",route="/v1/predict"}' in text
    assert "nkpredict_http_request_duration_seconds_bucket" in text
    assert 'nkpredict_samples_total{endpoint="predict"}' in text
    assert "nkpredict_model_info{" in text


def test_prediction_routes_refuse_other_methods(client: TestClient) -> None:
    for path in ("/v1/predict", "/v1/explain"):
        response = client.get(path)
        error_of(response, 405, "method_not_allowed")
        assert response.headers["allow"] == "POST"


def test_metric_labels_stay_bounded(client: TestClient) -> None:
    for method in ("FOO", "BAR", "PROPFIND"):
        client.request(method, "/health")
    text = client.get("/metrics").text
    assert 'method="OTHER",route="/health",status="405"' in text
    assert 'method="FOO"' not in text and 'method="PROPFIND"' not in text


def test_each_app_has_its_own_metrics(service_model_dir: Path) -> None:
    first, second = (create_app(make_settings(service_model_dir)) for _ in range(2))
    TestClient(first).get("/health")
    assert "/health" in TestClient(first).get("/metrics").text
    assert 'route="/health"' not in TestClient(second).get("/metrics").text


# --------------------------------------------------------------------------- security


def test_api_key(app_factory: Callable[..., TestClient], counts: pd.DataFrame) -> None:
    client = app_factory(api_key=SecretStr(API_KEY))
    body = body_of(counts.iloc[:1])
    error = error_of(client.post("/v1/predict", json=body), 401, "unauthorized")
    assert API_KEY not in json.dumps(error)
    error_of(
        client.post("/v1/predict", json=body, headers={"X-API-Key": "nope"}), 401, "unauthorized"
    )
    error_of(
        client.get("/v1/model", headers={"X-API-Key": "é".encode("latin-1")}), 401, "unauthorized"
    )
    assert client.post("/v1/predict", json=body, headers={"X-API-Key": API_KEY}).status_code == 200
    assert client.get("/v1/model", headers={"X-API-Key": API_KEY}).status_code == 200
    for open_route in ("/health", "/ready", "/metrics"):
        assert client.get(open_route).status_code == 200
    # the API key also unlocks admin routes when no admin key is configured
    reloaded = client.post("/v1/admin/reload", headers={"X-API-Key": API_KEY})
    assert reloaded.status_code == 200, reloaded.text


PROBES = ("/health", "/ready", "/metrics")


def _documented_operations() -> list[tuple[str, str]]:
    """(method, path) of every operation of the OpenAPI document but the probes."""
    app = create_app(ServiceSettings(model_uri="unused", api_key=SecretStr(API_KEY)))
    paths = app.openapi()["paths"]
    return [
        (method.upper(), path)
        for path, operations in paths.items()
        if path not in PROBES
        for method in operations
    ]


DOCUMENTED_OPERATIONS = _documented_operations()


def test_every_documented_operation_is_checked_below() -> None:
    assert {path for _, path in DOCUMENTED_OPERATIONS} >= {
        "/v1/predict",
        "/v1/explain",
        "/v1/predict/file",
        "/v1/model",
        "/v1/admin/reload",
    }


@pytest.mark.parametrize(("method", "path"), DOCUMENTED_OPERATIONS)
def test_every_route_but_the_probes_needs_the_key(
    app_factory: Callable[..., TestClient], method: str, path: str
) -> None:
    """Without a key every operation is refused with 401, before its body is looked at (the
    admin routes too: with an API key but no admin key, the API key is the admin key)."""
    client = app_factory(api_key=SecretStr(API_KEY))
    error = error_of(client.request(method, path), 401, "unauthorized")
    assert API_KEY not in json.dumps(error)
    bad = client.request(method, path, headers={"X-API-Key": "wrong"})
    error_of(bad, 401, "unauthorized")


def test_a_new_direct_route_checks_the_key_by_construction(
    app_factory: Callable[..., TestClient],
) -> None:
    client = app_factory(api_key=SecretStr(API_KEY))
    router = APIRouter(route_class=DirectRoute)

    @router.post("/v1/new")
    async def new(request: Request) -> Response:
        return Response(b"{}", media_type="application/json")

    client.app.router.routes.extend(router.routes)  # type: ignore[attr-defined]
    error_of(client.post("/v1/new"), 401, "unauthorized")
    assert client.post("/v1/new", headers={"X-API-Key": API_KEY}).status_code == 200
    with pytest.raises(TypeError, match="dependencies"):
        APIRouter(route_class=DirectRoute, dependencies=[Depends(get_loaded_model)]).post(
            "/v1/other"
        )(new)


def test_service_settings_extend_the_library_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NKP_MAX_SAMPLES", "7")
    monkeypatch.setenv("NKP_API_KEY", "from-env")
    library = Settings(experiment="cli-experiment", min_coverage=0.3)
    lifted = ServiceSettings.of(library)
    assert lifted.experiment == "cli-experiment" and lifted.min_coverage == 0.3
    assert lifted.max_samples == 7
    assert lifted.api_key is not None and lifted.api_key.get_secret_value() == "from-env"
    assert ServiceSettings.of(lifted) is lifted
    monkeypatch.delenv("NKP_MIN_COVERAGE", raising=False)
    assert ServiceSettings().min_coverage == DEFAULT_MIN_COVERAGE
    assert not hasattr(library, "api_key")


def test_admin_routes_need_a_configured_key(
    app_factory: Callable[..., TestClient],
) -> None:
    open_client = app_factory()
    error_of(open_client.post("/v1/admin/reload"), 403, "admin_disabled")
    error_of(
        open_client.post("/v1/admin/reload", headers={"X-API-Key": "anything"}),
        403,
        "admin_disabled",
    )
    client = app_factory(api_key=SecretStr(API_KEY), admin_api_key=SecretStr(ADMIN_KEY))
    error_of(client.post("/v1/admin/reload"), 401, "unauthorized")
    error_of(client.post("/v1/admin/reload", headers={"X-API-Key": API_KEY}), 401, "unauthorized")
    assert client.post("/v1/admin/reload", headers={"X-API-Key": ADMIN_KEY}).status_code == 200
    # the admin key is not an API key
    error_of(client.get("/v1/model", headers={"X-API-Key": ADMIN_KEY}), 401, "unauthorized")


def test_cors_is_off_unless_configured(app_factory: Callable[..., TestClient]) -> None:
    preflight = {
        "Origin": "https://lab.example.org",
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "X-API-Key",
    }
    plain = app_factory()
    assert (
        "access-control-allow-origin" not in plain.options("/v1/predict", headers=preflight).headers
    )
    cors = app_factory(cors_origins=["https://lab.example.org"])
    answer = cors.options("/v1/predict", headers=preflight)
    assert answer.status_code == 200
    assert answer.headers["access-control-allow-origin"] == "https://lab.example.org"


# --------------------------------------------------------------------------- reload


def test_reload_swaps_models_and_failure_keeps_the_old_one(
    app_factory: Callable[..., TestClient],
    counts: pd.DataFrame,
    service_model_dir: Path,
    service_model_dir_b: Path,
) -> None:
    client = app_factory(admin_api_key=SecretStr(ADMIN_KEY))
    admin = {"X-API-Key": ADMIN_KEY}
    body = body_of(counts.iloc[:5])
    before = probabilities(client.post("/v1/predict", json=body))

    response = client.post(
        "/v1/admin/reload", json={"model_uri": str(service_model_dir_b)}, headers=admin
    )
    assert response.status_code == 200, response.text
    assert response.json()["model"]["uri"] == str(service_model_dir_b)
    assert response.json()["previous"]["uri"] == str(service_model_dir)
    after = client.post("/v1/predict", json=body)
    assert after.json()["model"]["uri"] == str(service_model_dir_b)
    model_b = NKResistanceModel.load(service_model_dir_b)
    expected_b = model_b.predict_table(model_b.prepare(counts.iloc[:5]))
    np.testing.assert_allclose(list(probabilities(after).values()), expected_b["probability"])
    assert probabilities(after) != before

    error = error_of(
        client.post("/v1/admin/reload", json={"model_uri": "/no/such/model"}, headers=admin),
        502,
        "reload_failed",
    )
    assert "/no/such/model" in error["message"]
    assert error["details"]["serving"]["uri"] == str(service_model_dir_b)
    still = client.post("/v1/predict", json=body)
    assert still.status_code == 200
    assert probabilities(still) == probabilities(after)
    assert client.get("/ready").status_code == 200

    # no body: re-resolve the configured URI (back to the first model)
    response = client.post("/v1/admin/reload", headers=admin)
    assert response.json()["model"]["uri"] == str(service_model_dir)
    assert probabilities(client.post("/v1/predict", json=body)) == before
    error_of(
        client.post("/v1/admin/reload", json={"model_uri": 5}, headers=admin),
        422,
        "validation_error",
    )
    text = client.get("/metrics").text
    assert 'nkpredict_model_reloads_total{outcome="failure"} 1.0' in text
    assert 'nkpredict_model_reloads_total{outcome="success"} 2.0' in text


def test_reload_of_a_broken_model_directory(
    app_factory: Callable[..., TestClient], service_model_dir: Path, tmp_path: Path
) -> None:
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "model.json").write_text('{"format_version": 1}')
    (broken / "booster.ubj").write_bytes(b"junk")
    client = app_factory(admin_api_key=SecretStr(ADMIN_KEY))
    error_of(
        client.post(
            "/v1/admin/reload",
            json={"model_uri": str(broken)},
            headers={"X-API-Key": ADMIN_KEY},
        ),
        502,
        "reload_failed",
    )
    assert client.get("/ready").json()["model"]["uri"] == str(service_model_dir)


def test_holder_swap_leaves_running_requests_on_their_model(service_model_dir: Path) -> None:
    holder = ModelHolder(load_model)
    first, previous = holder.load(str(service_model_dir))
    assert previous is None
    in_flight = holder.get()
    second, previous = holder.load(str(service_model_dir))
    assert previous is first and holder.get() is second
    assert in_flight is first and in_flight.model is not second.model


# --------------------------------------------------------------------------- wiring


def test_routes_use_the_holders_model_without_lifespan(
    service_model_dir: Path, model: NKResistanceModel, counts: pd.DataFrame
) -> None:
    app = create_app(make_settings("/never/loaded"))
    client = TestClient(app)  # no lifespan: nothing is loaded
    error_of(client.post("/v1/predict", json=body_of(counts.iloc[:1])), 503, "model_not_loaded")
    app.state.holder.swap(make_loaded(model, ModelReference(uri="in-memory")))
    for path in ("/v1/predict", "/v1/explain"):
        response = client.post(path, json=body_of(counts.iloc[:2]))
        assert response.status_code == 200, response.text
        assert response.json()["model"]["uri"] == "in-memory"


def test_dependency_override_without_lifespan(
    service_model_dir: Path, model: NKResistanceModel
) -> None:
    app = create_app(make_settings("/never/loaded"))
    loaded = make_loaded(model, ModelReference(uri="in-memory"))
    app.dependency_overrides[get_loaded_model] = lambda: loaded
    response = TestClient(app).get("/v1/model")
    assert response.status_code == 200
    assert response.json()["model"]["uri"] == "in-memory"


def test_model_threads_are_set_on_the_booster(service_model_dir: Path) -> None:
    model, reference = load_model(service_model_dir)
    loaded = make_loaded(model, reference, threads=2)
    config = json.loads(loaded.model.boosted_trees.booster_.save_config())
    assert config["learner"]["generic_param"]["nthread"] == "2"


def test_default_loader_errors_are_clear(tmp_path: Path) -> None:
    settings = make_settings("x", tracking_uri=f"sqlite:///{tmp_path}/none/mlflow.db")
    with pytest.raises(ModelLoadError, match="does not exist"):
        default_loader(settings)("models:/nk-resistance@champion")
    assert not (tmp_path / "none").exists()
    with pytest.raises(ModelLoadError, match="no such directory"):
        default_loader(settings)("relative/missing")


def test_access_log_only_when_it_would_be_shown() -> None:
    assert [access_log_shown(level) for level in ("trace", "debug", "info")] == [True] * 3
    assert [access_log_shown(level) for level in ("warning", "error", "critical")] == [False] * 3


def test_serve_refuses_a_missing_model_before_starting(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError):
        serve(str(tmp_path / "missing"), port=1, settings=make_settings("unused"))
    with pytest.raises(ModelLoadError):  # the library's settings, as the command line has them
        serve(str(tmp_path / "missing"), port=1, settings=Settings())
    with pytest.raises(ValueError, match="workers"):
        serve(str(tmp_path), workers=0)


def test_unexpected_errors_keep_the_error_shape(service_model_dir: Path) -> None:
    app = create_app(make_settings(service_model_dir))

    def broken() -> None:
        raise RuntimeError("a bug")

    app.dependency_overrides[get_loaded_model] = broken
    client = TestClient(app, raise_server_exceptions=False)
    error = error_of(client.get("/v1/model"), 500, "internal_error")
    assert "a bug" not in error["message"]


def test_harmonization_report_is_capped(
    app_factory: Callable[..., TestClient], counts: pd.DataFrame
) -> None:
    client = app_factory(report_max_items=2)
    frame = counts.iloc[:1].assign(**{f"UNKNOWN_{i}": 1 for i in range(5)})
    report = client.post("/v1/predict", json=body_of(frame)).json()["harmonization"]
    assert report["n_unmapped"] == 5 and len(report["unmapped"]) == 2
    assert report["truncated"] is True


def test_explain_feature_level(client: TestClient, counts: pd.DataFrame) -> None:
    response = client.post("/v1/explain", json=body_of(counts.iloc[:1], level="feature", top_n=5))
    assert response.status_code == 200, response.text
    item = response.json()["explanations"][0]
    values = item["attributions"]["feature"]
    assert len(values) == 6 and any(name.startswith("gene:") for name in values)
    assert item["base_value"] + sum(values.values()) == pytest.approx(
        item["model_output"], abs=1e-4
    )


# --------------------------------------------------------------------------- hot path


def test_inline_and_threadpool_answers_agree(
    app_factory: Callable[..., TestClient], counts: pd.DataFrame
) -> None:
    inline = app_factory()  # small bodies are answered on the event loop
    pooled = app_factory(inline_max_bytes=0)  # everything in the threadpool
    for path, frame in (("/v1/predict", counts.iloc[:3]), ("/v1/explain", counts.iloc[:1])):
        a = inline.post(path, json=body_of(frame))
        b = pooled.post(path, json=body_of(frame))
        assert a.status_code == b.status_code == 200
        assert a.json() == b.json()
    error_of(pooled.post("/v1/predict", content=b"{"), 400, "invalid_json")


def test_predictions_equal_the_library_for_every_batch_size(
    client: TestClient, model: NKResistanceModel, counts: pd.DataFrame
) -> None:
    """Small requests use compiled trees, large ones XGBoost: the same numbers."""
    frame = counts.iloc[:45]
    expected = model.predict_table(model.prepare(frame))["probability"].tolist()
    whole = probabilities(client.post("/v1/predict", json=body_of(frame)))
    assert [whole[str(s)] for s in frame.index] == expected
    for i in (0, 17, 44):
        single = probabilities(client.post("/v1/predict", json=body_of(frame.iloc[[i]])))
        assert single[str(frame.index[i])] == expected[i]


def test_openapi_documents_both_key_schemes(client: TestClient) -> None:
    document = client.get("/openapi.json").json()
    schemes = document["components"]["securitySchemes"]
    assert schemes["APIKey"] == {
        "type": "apiKey",
        "in": "header",
        "name": "X-API-Key",
        "description": "Needed when the service is configured with NKP_API_KEY.",
    }
    assert schemes["AdminKey"]["name"] == "X-API-Key"
    for path in ("/v1/predict", "/v1/explain", "/v1/model", "/v1/predict/file"):
        method = "get" if path == "/v1/model" else "post"
        assert document["paths"][path][method]["security"] == [{"APIKey": []}], path
    assert document["paths"]["/v1/admin/reload"]["post"]["security"] == [{"AdminKey": []}]
    assert "security" not in document["paths"]["/health"]["get"]
    body = document["paths"]["/v1/predict"]["post"]["requestBody"]["content"]
    samples = body["application/json"]["schema"]["properties"]["samples"]
    assert samples["additionalProperties"]["minProperties"] == 1  # no sample without genes


def test_serving_caps_blas_threads(service_model_dir: Path) -> None:
    from threadpoolctl import threadpool_info

    model, reference = load_model(service_model_dir)
    make_loaded(model, reference, threads=1)
    blas = [pool for pool in threadpool_info() if pool["user_api"] == "blas"]
    assert blas and all(pool["num_threads"] == 1 for pool in blas)


def test_compressed_uploads_may_not_expand_without_bound(
    app_factory: Callable[..., TestClient], counts: pd.DataFrame
) -> None:
    client = app_factory(max_upload_expanded_bytes=1_000_000)
    small = counts.iloc[:3].to_csv().encode()
    ok = client.post(
        "/v1/predict/file", files={"file": ("ok.csv.gz", gzip.compress(small), "text/csv")}
    )
    assert ok.status_code == 200, ok.text
    bomb = gzip.compress(small + b"\n" * 5_000_000)  # 5 MB of newlines in about 5 kB
    assert len(bomb) < 20_000
    error = error_of(
        client.post("/v1/predict/file", files={"file": ("bomb.csv.gz", bomb, "text/csv")}),
        413,
        "upload_too_large",
    )
    assert error["details"]["max_upload_expanded_bytes"] == 1_000_000
    wide = pd.DataFrame(np.zeros((2000, 300)), columns=[f"G{i}" for i in range(300)])
    buffer = io.BytesIO()
    wide.to_parquet(buffer)
    assert len(buffer.getvalue()) < 1_000_000
    error_of(
        client.post("/v1/predict/file", files={"file": ("wide.parquet", buffer.getvalue())}),
        413,
        "upload_too_large",
    )
    error_of(
        client.post("/v1/predict/file", files={"file": ("bad.csv.gz", b"not gzip at all")}),
        422,
        "invalid_expression",
    )


def test_coverage_error_details_are_capped(
    app_factory: Callable[..., TestClient], counts: pd.DataFrame
) -> None:
    client = app_factory(report_max_items=2)
    sparse = counts.iloc[:5, :3]  # three genes: far below the default minimum coverage
    error = error_of(client.post("/v1/predict", json=body_of(sparse)), 422, "coverage_too_low")
    details = error["details"]
    assert details["n_samples"] == 5 and details["truncated"] is True
    assert len(details["samples"]) == 2


def test_the_inline_decision_follows_the_estimated_work() -> None:
    """One whole profile is answered inline, many explained samples in the threadpool."""
    from service.api.scoring import estimated_ms

    settings = ServiceSettings()
    profile = json.dumps({"samples": {"S1": {f"G{i} ({i})": 1.25 for i in range(19_000)}}}).encode()
    catalogue = {f"G{i}": 1.25 for i in range(150)}
    batch = json.dumps({"samples": {f"S{k}": catalogue for k in range(100)}}).encode()
    assert len(profile) < settings.inline_max_bytes
    assert estimated_ms(profile, "predict") <= settings.inline_max_ms
    assert estimated_ms(profile, "explain") <= settings.inline_max_ms
    assert estimated_ms(batch, "predict") <= settings.inline_max_ms
    assert estimated_ms(batch, "explain") > settings.inline_max_ms
