"""What-if interventions: what they set, how the model's output moves, and their three faces
(library, ``nkpredict whatif``, ``POST /v1/whatif``)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr
from typer.testing import CliRunner

from nkpredict.catalog import load_catalog
from nkpredict.exceptions import InputError
from nkpredict.model.fitted import MODEL_FILE, NKResistanceModel
from nkpredict.vocabulary import INTERVENTIONS
from nkpredict.whatif.counterfactual import (
    COUNTERFACTUAL_NOTE,
    NO_SPREAD_NOTE,
    lowering_interventions,
    whatif,
)
from nkpredict.whatif.interventions import (
    GeneTarget,
    builtin_intervention,
    intervention_from_dict,
    parse_intervention,
    resolve,
)
from service.app import create_app
from service.config import ServiceSettings
from training.cli import app as cli

if TYPE_CHECKING:
    from nkpredict.simulate.cohort import Cohort

API_KEY = "whatif-key"


@pytest.fixture(scope="module")
def model(service_model_dir: Path) -> NKResistanceModel:
    return NKResistanceModel.load(service_model_dir)


@pytest.fixture(scope="module")
def counts(service_cohort: Cohort) -> pd.DataFrame:
    return service_cohort.counts


@pytest.fixture(scope="module")
def resistant(service_cohort: Cohort) -> np.ndarray:
    return service_cohort.labels["resistant"].to_numpy() == 1


@pytest.fixture(scope="module")
def training_genes(model: NKResistanceModel, counts: pd.DataFrame) -> pd.DataFrame:
    """The training cohort's harmonized values of the model's genes."""
    prepared = model.prepare(counts)
    genes = model.scorer.gene_values(prepared)
    return pd.DataFrame(genes, columns=list(model.feature_builder.genes_in_))


# --------------------------------------------------------------------------- what they set


EXPECTED_GENES = {
    "nkg2a_blockade": ("HLA-E",),
    "b7h6_restoration": ("NCR3LG1",),
    "ifng_pathway_loss": ("IFNGR1", "IFNGR2", "JAK1", "JAK2", "STAT1"),
    "tigit_blockade": ("PVR", "NECTIN2"),
    "shedding_block": ("ADAM10", "ADAM17"),
}


def test_builtins_take_their_genes_from_the_catalogue_axes() -> None:
    catalog = load_catalog()
    assert set(EXPECTED_GENES) == set(INTERVENTIONS)
    assert EXPECTED_GENES["nkg2a_blockade"] == catalog.axis_genes("NKG2A_HLA_E")
    assert EXPECTED_GENES["tigit_blockade"] == catalog.axis_genes("DNAM1_TIGIT")
    assert EXPECTED_GENES["shedding_block"] == catalog.axis_genes("NKG2D_SHEDDING")
    for name, genes in EXPECTED_GENES.items():
        assert tuple(t.gene for t in builtin_intervention(name).targets) == genes


@pytest.mark.parametrize("name", INTERVENTIONS)
def test_each_builtin_sets_its_genes_to_the_training_reference(
    name: str,
    model: NKResistanceModel,
    counts: pd.DataFrame,
    resistant: np.ndarray,
    training_genes: pd.DataFrame,
) -> None:
    resolved = resolve(builtin_intervention(name), model)
    assert resolved.genes == EXPECTED_GENES[name]
    for gene, value in zip(resolved.genes, resolved.values, strict=True):
        column = training_genes[gene]
        if name in ("nkg2a_blockade", "tigit_blockade"):  # median of the sensitive samples
            expected = float(np.median(column[~resistant]))
        elif name == "b7h6_restoration":  # training upper quartile
            expected = float(np.percentile(column, 75))
        else:  # "low": the training 5th percentile
            expected = float(np.percentile(column, 5))
        assert value == pytest.approx(expected, abs=1e-3), gene
    result = whatif(model, model.prepare(counts.iloc[:6]), [builtin_intervention(name)])
    table = result.to_frame()
    assert (table["intervention"] == name).all() and len(table) == 6
    assert table["genes"].iloc[0] == resolved.summary()
    np.testing.assert_allclose(
        table["delta_log_odds"], table["after_log_odds"] - table["baseline_log_odds"]
    )


def test_the_planted_biology_moves_the_output_the_right_way(
    model: NKResistanceModel, counts: pd.DataFrame, resistant: np.ndarray
) -> None:
    """The simulator plants B7-H6 loss and HLA (HLA-E included) gain as resistance: restoring
    B7-H6 or bringing HLA-E to the sensitive level lowers resistant samples' predictions."""
    result = whatif(
        model,
        model.prepare(counts),
        [builtin_intervention("b7h6_restoration"), builtin_intervention("nkg2a_blockade")],
    )
    b7h6, nkg2a = result.delta[:, 0], result.delta[:, 1]
    assert b7h6[resistant].mean() < -0.2
    assert (b7h6[resistant] < 0).mean() > 0.7
    assert nkg2a[resistant].mean() < 0
    # the interventions that lower a resistant sample's call come first, all of them lowering
    first = result.sample_id[int(np.flatnonzero(resistant & (b7h6 < 0))[0])]
    listed = lowering_interventions(result, first, n=2)
    assert listed[0]["delta_margin"] < 0 and listed[0]["delta"] < 0
    assert [d["delta_margin"] for d in listed] == sorted(d["delta_margin"] for d in listed)


def test_baseline_equals_the_model_prediction_and_calls_follow_the_threshold(
    model: NKResistanceModel, counts: pd.DataFrame
) -> None:
    prepared = model.prepare(counts.iloc[:40])
    result = whatif(model, prepared, [builtin_intervention("b7h6_restoration")])
    table = result.to_frame()
    expected = model.predict_table(prepared)
    np.testing.assert_allclose(table["baseline_probability"], expected["probability"], rtol=1e-6)
    assert table["baseline_call"].tolist() == expected["call"].tolist()
    after = np.where(
        table["after_probability"] >= model.decision_threshold, "resistant", "sensitive"
    )
    assert table["after_call"].tolist() == after.tolist()


def test_user_defined_interventions(model: NKResistanceModel, counts: pd.DataFrame) -> None:
    spec = parse_intervention("mine:B7-H6=p90,HLA-E=sensitive,CD48=3.5,MICA=median")
    assert [t.gene for t in spec.targets] == ["NCR3LG1", "HLA-E", "CD48", "MICA"]  # alias mapped
    assert spec.targets[0] == GeneTarget("NCR3LG1", percentile=90.0)
    same = intervention_from_dict(
        {
            "name": "mine",
            "genes": {
                "NCR3LG1": {"percentile": 90},
                "HLA-E": {"reference": "sensitive"},
                "CD48": 3.5,
                "MICA": {"reference": "median"},
            },
        }
    )
    assert same.targets == spec.targets
    resolved = resolve(spec, model)
    reference = model.gene_reference_
    assert reference is not None
    assert resolved.values == (
        reference.value_at("NCR3LG1", 90),
        reference.sensitive_value("HLA-E"),
        3.5,
        reference.median("MICA"),
    )
    prepared = model.prepare(counts.iloc[:3])
    genes = model.scorer.gene_values(prepared)
    position = {g: j for j, g in enumerate(model.feature_builder.genes_in_)}
    for gene, value in zip(resolved.genes, resolved.values, strict=True):
        genes[:, position[gene]] = value
    expected = model.scorer.margins(model.scorer.features(genes))
    after = whatif(model, prepared, [spec]).after[:, 0]
    np.testing.assert_allclose(after, expected, rtol=1e-6)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("bogus", "neither a built-in"),
        ("x:NCR3LG1", "not GENE=TARGET"),
        ("x:NCR3LG1=p101", "between 0 and 100"),
        ("x:NCR3LG1=high", "not a target"),
        ("x:NCR3LG1=1,NCR3LG1=2", "twice"),
        ("b7h6_restoration:NCR3LG1=1", "built-in intervention"),
    ],
)
def test_bad_interventions_are_refused_with_a_reason(text: str, message: str) -> None:
    with pytest.raises(InputError, match=message):
        parse_intervention(text)


def test_a_gene_the_model_does_not_read_is_refused(model: NKResistanceModel) -> None:
    with pytest.raises(InputError, match="does not read NOTAGENE"):
        resolve(parse_intervention("x:NOTAGENE=3"), model)


def test_setting_an_unmeasured_gene_keeps_the_coverage(
    model: NKResistanceModel, counts: pd.DataFrame
) -> None:
    """Setting a gene the sample did not measure changes that gene only: the coverage feature
    stays the sample's own, and the gene is named in imputed_targets."""
    partial = counts.iloc[:4].drop(columns=["NCR3LG1"])
    prepared = model.prepare(partial)
    builder = model.feature_builder
    median = builder.median_[list(builder.genes_in_).index("NCR3LG1")]
    result = whatif(model, prepared, [parse_intervention(f"x:NCR3LG1={median}")])
    table = result.to_frame()
    assert (table["imputed_targets"] == "NCR3LG1").all()
    # the training median is what the model imputed: nothing else moves
    np.testing.assert_allclose(table["delta_log_odds"], 0.0, atol=1e-5)


def test_spread_over_member_models(
    model: NKResistanceModel, service_cohort: Cohort, service_model_dir_b: Path
) -> None:
    prepared = model.prepare(service_cohort.counts.iloc[:5])
    alone = whatif(model, prepared, [builtin_intervention("b7h6_restoration")])
    assert alone.n_models == 0 and NO_SPREAD_NOTE in alone.notes()
    assert COUNTERFACTUAL_NOTE in alone.notes()
    assert alone.to_frame()["delta_log_odds_spread"].isna().all()
    other = NKResistanceModel.load(service_model_dir_b)
    members = [model, other]
    spread = whatif(model, prepared, [builtin_intervention("b7h6_restoration")], members)
    assert spread.n_models == 2 and NO_SPREAD_NOTE not in spread.notes()
    # each member scores the same change (the served model's values): its own delta
    values = resolve(builtin_intervention("b7h6_restoration"), model).values
    own = np.stack(
        [
            whatif(m, prepared, [parse_intervention(f"x:NCR3LG1={values[0]}")]).delta[:, 0]
            for m in members
        ]
    )
    frame = spread.to_frame()
    np.testing.assert_allclose(frame["delta_log_odds_spread"], own.std(axis=0, ddof=1), atol=1e-5)
    assert frame["delta_log_odds_spread"].max() > 0.01  # the two models disagree somewhere


# --------------------------------------------------------------------------- saved models


def test_the_gene_reference_is_saved_and_older_models_still_load(
    model: NKResistanceModel, service_model_dir: Path, tmp_path: Path, counts: pd.DataFrame
) -> None:
    again = NKResistanceModel.load(model.save(tmp_path / "again"))
    assert again.gene_reference_ is not None and model.gene_reference_ is not None
    np.testing.assert_array_equal(again.gene_reference_.quantiles, model.gene_reference_.quantiles)
    older = tmp_path / "older"
    shutil.copytree(service_model_dir, older)
    document = json.loads((older / MODEL_FILE).read_text())
    del document["gene_reference"]
    (older / MODEL_FILE).write_text(json.dumps(document))
    loaded = NKResistanceModel.load(older)
    assert loaded.gene_reference_ is None
    prepared = loaded.prepare(counts.iloc[:2])
    assert whatif(loaded, prepared, [parse_intervention("x:HLA-E=4")]).after.shape == (2, 1)
    with pytest.raises(InputError, match="without training percentiles"):
        whatif(loaded, prepared, [builtin_intervention("b7h6_restoration")])


# --------------------------------------------------------------------------- command line


def test_whatif_command(service_model_dir: Path, counts: pd.DataFrame, tmp_path: Path) -> None:
    expression = tmp_path / "expression.csv"
    counts.iloc[:8].to_csv(expression)
    out = tmp_path / "whatif.csv"
    args = ["whatif", "--model", str(service_model_dir), "--expression", str(expression)]
    result = CliRunner().invoke(
        cli,
        [
            *args,
            "--intervention",
            "b7h6_restoration",
            "--intervention",
            "mine:B7-H6=p90",
            "--out",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "not pharmacology" in result.output
    table = pd.read_csv(out)
    assert len(table) == 16 and set(table["intervention"]) == {"b7h6_restoration", "mine"}
    assert {"baseline_probability", "delta_log_odds", "delta_log_odds_spread"} <= set(table.columns)
    notes = json.loads((tmp_path / "whatif.whatif.json").read_text())
    assert notes["notes"][0] == COUNTERFACTUAL_NOTE and notes["n_models"] == 0
    everything = CliRunner().invoke(cli, [*args, "--out", str(tmp_path / "all.csv"), "--quiet"])
    assert everything.exit_code == 0, everything.output
    assert set(pd.read_csv(tmp_path / "all.csv")["intervention"]) == set(INTERVENTIONS)
    bad = CliRunner().invoke(cli, [*args, "--intervention", "bogus", "--out", str(out)])
    assert bad.exit_code == 2 and "neither a built-in" in bad.output
    unknown = CliRunner().invoke(cli, [*args, "--intervention", "x:NOTAGENE=1", "--out", str(out)])
    assert unknown.exit_code == 1 and "does not read NOTAGENE" in unknown.output


# --------------------------------------------------------------------------- HTTP


@pytest.fixture(scope="module")
def client(service_model_dir: Path) -> TestClient:
    settings = ServiceSettings(
        model_uri=str(service_model_dir),
        api_key=SecretStr(API_KEY),
        admin_api_key=None,
        cors_origins=[],
        max_samples=50,
    )
    with TestClient(create_app(settings), headers={"X-API-Key": API_KEY}) as test_client:
        yield test_client


def _body(frame: pd.DataFrame, **options: object) -> dict[str, object]:
    return {"samples": {str(s): row.to_dict() for s, row in frame.iterrows()}, **options}


def test_whatif_endpoint_equals_the_library(
    client: TestClient, model: NKResistanceModel, counts: pd.DataFrame
) -> None:
    frame = counts.iloc[:3]
    body = _body(
        frame,
        interventions=[
            "b7h6_restoration",
            {"name": "mine", "genes": {"B7-H6": {"percentile": 90}, "HLA-E": 4.0}},
        ],
    )
    response = client.post("/v1/whatif", json=body)
    assert response.status_code == 200, response.text
    payload = response.json()
    assert payload["n_samples"] == 3 and payload["n_models"] == 0
    assert payload["notes"][0] == COUNTERFACTUAL_NOTE
    assert [i["name"] for i in payload["interventions"]] == ["b7h6_restoration", "mine"]
    assert payload["interventions"][1]["genes"]["HLA-E"] == 4.0
    expected = whatif(
        model,
        model.prepare(frame),
        [builtin_intervention("b7h6_restoration"), parse_intervention("mine:B7-H6=p90,HLA-E=4")],
    ).to_frame()
    rows = [
        (
            sample["sample_id"],
            item["intervention"],
            item["delta_log_odds"],
            item["after_probability"],
        )
        for sample in payload["results"]
        for item in sample["interventions"]
    ]
    assert [r[:2] for r in rows] == list(
        zip(expected["sample_id"], expected["intervention"], strict=True)
    )
    np.testing.assert_allclose([r[2] for r in rows], expected["delta_log_odds"], rtol=1e-6)
    np.testing.assert_allclose([r[3] for r in rows], expected["after_probability"], rtol=1e-6)
    assert all(
        i["delta_log_odds_spread"] is None for s in payload["results"] for i in s["interventions"]
    )
    default = client.post("/v1/whatif", json=_body(frame.iloc[:1]))
    assert [i["name"] for i in default.json()["interventions"]] == list(INTERVENTIONS)


def test_whatif_endpoint_errors_and_key(client: TestClient, counts: pd.DataFrame) -> None:
    frame = counts.iloc[:1]
    for interventions, code in [
        (["nope"], "validation_error"),
        ([{"name": "x", "genes": {"NCR3LG1": {"percentile": 120}}}], "validation_error"),
        ([{"name": "x", "genes": {"NOTAGENE": 1.0}}], "invalid_input"),
        ([{"name": "x", "genes": {"NCR3LG1": {"value": 1.0, "percentile": 5}}}], "invalid_input"),
    ]:
        response = client.post("/v1/whatif", json=_body(frame, interventions=interventions))
        assert response.status_code == 422, response.text
        assert response.json()["error"]["code"] == code
    low = client.post("/v1/whatif", json=_body(counts.iloc[:1, :10]))
    assert low.json()["error"]["code"] == "coverage_too_low"
    anonymous = client.post("/v1/whatif", json=_body(frame), headers={"X-API-Key": ""})
    assert anonymous.status_code == 401 and anonymous.json()["error"]["code"] == "unauthorized"
    spec = client.get("/openapi.json").json()
    examples = spec["paths"]["/v1/whatif"]["post"]["requestBody"]["content"]["application/json"]
    for name, example in examples["examples"].items():
        assert client.post("/v1/whatif", json=example["value"]).status_code == 200, name
