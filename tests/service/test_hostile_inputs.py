"""Hostile request bodies and uploads in-process (issue 15, items 2, 3 and 4).

Each test sends what the adversarial pass found (sparse bodies that named a new gene per
sample, JSON the parser choked on, uploads that expanded without bound) and checks the
answer is a 2xx/4xx with the error shape, and that the work stays bounded (the array the
body became, the limit hit before parsing).
"""

from __future__ import annotations

import gzip
import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from fastapi.testclient import TestClient
from service_settings import make_settings

from nkpredict.data.identifiers import map_identifiers
from nkpredict.exceptions import CoverageError
from nkpredict.model.fitted import NKResistanceModel
from service.app import create_app
from service.bodies import OTHER_GENES, samples_matrix
from service.config import ServiceSettings


def _settings(model_dir: Path, **overrides: Any) -> ServiceSettings:
    """:func:`make_settings` with room for 2,000 samples per request."""
    return make_settings(model_dir, **{"max_samples": 2_000, **overrides})


@pytest.fixture(scope="module")
def client(service_model_dir: Path) -> Iterator[TestClient]:
    settings = _settings(service_model_dir, max_upload_columns=500, max_upload_cell_bytes=64)
    with TestClient(create_app(settings)) as test_client:
        yield test_client


@pytest.fixture(scope="module")
def model(service_model_dir: Path) -> NKResistanceModel:
    return NKResistanceModel.load(service_model_dir)


def _error(response: Any, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    error: dict[str, Any] = response.json()["error"]
    assert error["code"] == code, error
    return error


# --------------------------------------------------------------------------- item 2


def _sparse_samples(counts: pd.DataFrame, n_samples: int) -> dict[str, dict[str, Any]]:
    """Every sample: its model genes, plus a gene name no other sample uses."""
    rows = counts.iloc[np.arange(n_samples) % len(counts)]
    samples = {}
    for i, (_, row) in enumerate(rows.iterrows()):
        genes = {str(g): float(v) for g, v in row.items()}
        genes[f"DECOY{i}"] = float(i % 7)
        samples[f"S{i}"] = genes
    return samples


def test_a_sparse_body_keeps_only_the_genes_that_matter(
    model: NKResistanceModel, service_cohort: Any
) -> None:
    """2,000 samples that each name a gene of their own: the array is samples x (about the
    model's genes), not samples x 2,400, and the identifier report covers every gene."""
    counts = service_cohort.counts
    samples = _sparse_samples(counts, 2_000)
    genes = frozenset(model.feature_builder.genes_in_)
    matrix = samples_matrix(samples, 2_000, genes, "auto")
    assert matrix.values.shape[0] == 2_000
    assert matrix.values.shape[1] <= len(genes) + 5  # model genes, witnesses, the rest
    assert matrix.values.shape[1] < counts.shape[1]
    assert matrix.genes[-2:] == [OTHER_GENES, f"{OTHER_GENES} (total)"]  # counts: totals kept
    assert matrix.report is not None
    assert matrix.report.n_input == counts.shape[1] + 2_000
    assert "DECOY5" in matrix.report.unmapped
    whole = samples_matrix(samples, 2_000)  # the full union array, as before
    assert whole.values.shape == (2_000, counts.shape[1] + 2_000)
    assert map_identifiers(whole.genes)[1].to_dict() == matrix.report.to_dict()


@pytest.mark.parametrize("scale", ["counts", "log"])
def test_sparse_bodies_answer_like_the_full_array(
    client: TestClient, model: NKResistanceModel, service_cohort: Any, scale: str
) -> None:
    counts = service_cohort.counts.iloc[:300]
    values = counts if scale == "counts" else np.log2(counts + 1.0)
    samples = _sparse_samples(values, 300)
    response = client.post("/v1/predict", json={"samples": samples, "min_coverage": 0})
    assert response.status_code == 200, response.text
    payload = response.json()
    frame = pd.DataFrame.from_dict(samples, orient="index")
    expected = model.predict_table(model.prepare(frame, scale="auto"))
    got = [p["probability"] for p in payload["predictions"]]
    np.testing.assert_allclose(got, expected["probability"].to_numpy(), rtol=1e-6)
    assert payload["scale"] == scale
    assert payload["harmonization"]["n_input"] == counts.shape[1] + 300
    assert payload["harmonization"]["n_unmapped"] >= 300


def test_coverage_from_the_prepared_input_is_the_features_coverage(
    model: NKResistanceModel, service_cohort: Any
) -> None:
    """``check_coverage`` reads the prepared array only: the same numbers as the coverage
    feature, and the same refusal (samples, missing genes) as the dense computation."""
    counts = service_cohort.counts.iloc[:40].copy()
    model_genes = list(model.feature_builder.model_genes_)
    counts.loc[counts.index[:10], model_genes[: len(model_genes) * 3 // 4]] = np.nan
    prepared = model.prepare(counts)
    scorer = model.scorer
    genes = scorer.gene_values(prepared)
    dense = scorer.coverage(scorer.features(genes))
    np.testing.assert_array_equal(scorer.prepared_coverage(prepared), dense)
    with pytest.raises(CoverageError) as caught:
        scorer.check_coverage(prepared, 0.5)
    below = dense < 0.5
    assert list(caught.value.coverage) == [prepared.sample_ids[i] for i in np.flatnonzero(below)]
    assert caught.value.missing_genes == model.feature_builder.missing_of(genes[below])


def test_nearly_empty_samples_are_refused_before_the_model_arrays(
    client: TestClient, model: NKResistanceModel
) -> None:
    """2,000 samples naming one unknown gene each: the same 422 as before, naming the first
    samples and every model gene, computed without samples x model-genes arrays (the
    benchmark measures the memory)."""
    samples = {f"S{i}": {f"NOT_A_GENE_{i}": 1 + i % 97} for i in range(2_000)}
    measured = model.feature_builder.model_genes_[0]
    samples["S0"][measured] = 5  # one sample measures one model gene
    error = _error(client.post("/v1/predict", json={"samples": samples}), 422, "coverage_too_low")
    details = error["details"]
    assert details["n_samples"] == 2_000
    expected = [g for g in model.feature_builder.genes_in_ if g != measured]
    assert details["missing_genes"] == expected
    assert set(details["samples"].values()) == {0.0, 1 / len(model.feature_builder.model_genes_)}
    assert "2000 sample(s) cover less than 50%" in error["message"]


def test_a_sparse_body_keeps_its_errors(client: TestClient, service_cohort: Any) -> None:
    """A negative count among the genes left out is still found (its gene is kept)."""
    samples = _sparse_samples(service_cohort.counts.iloc[:300], 300)
    samples["S7"]["DECOY7"] = -3.0
    error = _error(
        client.post("/v1/predict", json={"samples": samples, "scale": "counts"}),
        422,
        "invalid_scale",
    )
    assert "DECOY7" in error["message"]


def test_a_sample_of_zero_counts_is_a_422(client: TestClient, service_cohort: Any) -> None:
    """Found by the benchmark: a zero library size in a JSON body raised a TypeError (500)."""
    row = service_cohort.counts.iloc[0]
    body = {"samples": {"a": row.to_dict(), "zero": (row * 0).to_dict()}, "scale": "counts"}
    error = _error(client.post("/v1/predict", json=body), 422, "invalid_scale")
    assert "'zero'" in error["message"]


# --------------------------------------------------------------------------- item 4


@pytest.mark.parametrize(
    "raw",
    [
        b'{"samples": {"\\ud800": {"CD58": 1}}}',
        b'{"samples": {"a": {"\\udfff": 1}}}',
        b'{"samples": {"a": {"CD58": 1}}, "scale": "\\ud800"}',
        b'{"samples": {"a": {"\xc3\xa9\\ud800": 1}}}',  # beside text that is not ASCII
    ],
)
def test_lone_surrogates_are_a_400(client: TestClient, raw: bytes) -> None:
    _error(
        client.post("/v1/predict", content=raw, headers={"Content-Type": "application/json"}),
        400,
        "invalid_json",
    )


def test_a_surrogate_pair_is_text(client: TestClient, service_cohort: Any) -> None:
    row = service_cohort.counts.iloc[0]
    body = json.dumps({"samples": {"😀": row.to_dict()}})  # ensure_ascii: a \\ud83d\\ude00 pair
    assert "\\ud83d" in body
    response = client.post("/v1/predict", content=body)
    assert response.status_code == 200, response.text
    assert response.json()["predictions"][0]["sample_id"] == "😀"


@pytest.mark.parametrize("digits", [4_301, 20_000])
def test_integers_of_thousands_of_digits_are_a_422(client: TestClient, digits: int) -> None:
    raw = b'{"samples": {"a": {"CD58": ' + b"7" * digits + b"}}}"
    _error(client.post("/v1/predict", content=raw), 422, "non_finite_value")
    raw = b'{"samples": {"a": {"CD58": 1}}, "top_n": ' + b"9" * digits + b"}"
    response = client.post("/v1/explain", content=raw)
    assert 400 <= response.status_code < 500, response.text


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded"])
def test_bodies_not_declared_as_json_are_a_415(client: TestClient, content_type: str) -> None:
    for route in ("/v1/predict", "/v1/explain"):
        _error(
            client.post(route, content=b'{"samples": {}}', headers={"Content-Type": content_type}),
            415,
            "unsupported_media_type",
        )


def test_json_media_types_are_accepted(client: TestClient, service_cohort: Any) -> None:
    body = json.dumps({"samples": {"a": service_cohort.counts.iloc[0].to_dict()}})
    for content_type in ("application/json; charset=utf-8", "application/problem+json"):
        response = client.post("/v1/predict", content=body, headers={"Content-Type": content_type})
        assert response.status_code == 200, response.text


# --------------------------------------------------------------------------- item 3


def _upload(client: TestClient, name: str, content: bytes, **form: Any) -> Any:
    return client.post("/v1/predict/file", files={"file": (name, content)}, data=form)


def test_parquet_with_huge_string_cells_is_refused_from_its_dictionary(client: TestClient) -> None:
    """A few kB on disk (one long ID repeated, dictionary-encoded, compressed) that would be
    hundreds of MB of strings once read: 413 before the data is read."""
    n = 2_000
    table = pa.table(
        {"sample_id": pa.array(["x" * 100_000] * n).dictionary_encode(), "CD58": [1.0] * n}
    )
    sink = io.BytesIO()
    pq.write_table(table, sink, compression="zstd")
    assert len(sink.getvalue()) < 50_000
    error = _error(_upload(client, "cells.parquet", sink.getvalue()), 413, "upload_too_large")
    assert "NKP_MAX_UPLOAD_CELL_BYTES" in error["message"]


def test_parquet_with_several_text_columns_is_refused(client: TestClient) -> None:
    table = pa.table({"id": ["a", "b"], "CD58": ["1", "2"], "PVR": [1.0, 2.0]})
    sink = io.BytesIO()
    pq.write_table(table, sink)
    _error(_upload(client, "text.parquet", sink.getvalue()), 422, "invalid_expression")


def test_parquet_with_too_many_columns_is_refused(client: TestClient) -> None:
    table = pa.table({f"G{j}": [1.0] for j in range(600)})
    sink = io.BytesIO()
    pq.write_table(table, sink)
    # samples as rows: 600 gene columns exceed the column limit (auto orientation would also
    # accept the file as 600 samples of one gene)
    upload = _upload(client, "wide.parquet", sink.getvalue(), orientation="samples")
    _error(upload, 413, "upload_too_large")


@pytest.mark.parametrize("suffix", ["csv", "csv.gz"])
def test_csv_with_too_many_columns_is_refused_before_parsing(
    client: TestClient, suffix: str
) -> None:
    """A header of 100,000 fields (limit 500 here): refused from the header line alone."""
    header = "sample_id," + ",".join(f"G{j}" for j in range(100_000))
    content = (header + "\ns1," + ",".join(["1"] * 100_000) + "\n").encode()
    if suffix.endswith("gz"):
        content = gzip.compress(content)
    error = _error(_upload(client, f"wide.{suffix}", content), 413, "upload_too_large")
    assert "NKP_MAX_UPLOAD_COLUMNS" in error["message"]


def test_gzip_with_too_many_rows_stops_while_decompressing(client: TestClient) -> None:
    """A small gzip that expands to 5,000,000 rows: too_many_samples after the first
    NKP_MAX_SAMPLES rows, without decompressing (or parsing) the rest."""
    content = gzip.compress(b"sample_id,CD58\n" + b"s,1\n" * 5_000_000)
    assert len(content) < 100_000
    error = _error(_upload(client, "rows.csv.gz", content), 413, "too_many_samples")
    assert error["details"]["limit"] == 2_000


def test_uploads_within_the_limits_still_answer(client: TestClient, service_cohort: Any) -> None:
    frame = service_cohort.counts.iloc[:20, :300].rename_axis("sample_id")
    sink = io.BytesIO()
    frame.to_parquet(sink)
    response = _upload(client, "ok.parquet", sink.getvalue(), min_coverage="0")
    assert response.status_code == 200, response.text
    text = frame.T.rename_axis("gene").to_csv().encode()
    response = _upload(client, "ok.csv", text, orientation="genes", min_coverage="0")
    assert response.status_code == 200, response.text
    assert response.json()["n_samples"] == 20
