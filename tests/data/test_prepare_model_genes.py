"""Preparing only some genes (``keep``) and parsing long bodies without a per-value type check."""

from __future__ import annotations

import json

import numpy as np
import pytest

from nkpredict.data.expression import prepare_values
from nkpredict.data.identifiers import column_plan
from service.bodies import parse_samples_body
from service.errors import ServiceError
from service.schemas import PredictOptions

GENES = ["NCR3LG1", "B7-H6", "HLA-E (3133)", "PVRL2", "NOTAGENE", "ACTB", "B2M", "MICA"]
KEEP = ("NCR3LG1", "NECTIN2", "HLA-E", "MICA", "CD48")


def _values(scale: str, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    values = rng.uniform(0, 12, size=(3, len(GENES)))
    if scale == "counts":
        values = np.round(2**values * 10)
    elif scale == "tpm":
        values = 2**values - 1
    values[1, 2] = np.nan
    return values


@pytest.mark.parametrize("scale", ["log", "tpm", "counts"])
@pytest.mark.parametrize("declared", [False, True])
def test_kept_columns_equal_those_of_the_whole_preparation(scale: str, declared: bool) -> None:
    values = _values(scale)
    samples = ["a", "b", "c"]
    choice = scale if declared else "auto"
    whole = prepare_values(values, samples, GENES, scale=choice)
    kept = prepare_values(values, samples, GENES, scale=choice, keep=KEEP)
    assert kept.scale == whole.scale == scale
    assert list(kept.genes) == [g for g in whole.genes if g in KEEP]  # first-occurrence order
    positions = whole.genes.get_indexer(kept.genes)
    np.testing.assert_array_equal(kept.values, whole.values[:, positions])  # bit for bit
    assert kept.report.to_dict() == whole.report.to_dict()  # every identifier reported
    assert kept.report.collided == {"NCR3LG1": ["NCR3LG1", "B7-H6"]}


def test_keeping_no_mapped_gene_keeps_every_column() -> None:
    values = _values("log")
    whole = prepare_values(values, ["a", "b", "c"], GENES)
    kept = prepare_values(values, ["a", "b", "c"], GENES, keep=("CD58",))
    assert list(kept.genes) == list(whole.genes)
    np.testing.assert_array_equal(kept.values, whole.values)


def test_the_column_plan_is_remembered_per_selection() -> None:
    plan = column_plan(GENES, KEEP)
    assert column_plan(list(GENES), KEEP) is plan
    assert column_plan(GENES, frozenset(KEEP)).symbols.tolist() == plan.symbols.tolist()
    assert column_plan(GENES).positions is not None  # NOTAGENE is not read


def _long_body(sample: dict[str, object], **options: object) -> bytes:
    filler = {f"NOTAGENE{i} (0)": 1.25 for i in range(1_500)}  # past the scan threshold
    return json.dumps({"samples": {"S1": sample | filler}, **options}).encode()


@pytest.mark.parametrize(
    "value", ['"1.5"', "true", "false", "[1]", "{}", '"true"'], ids=lambda v: v
)
def test_long_bodies_refuse_what_is_not_a_number(value: str) -> None:
    raw = _long_body({"MICA": 0.0, "B2M": "X"}).replace(b'"X"', value.encode())
    with pytest.raises(ServiceError) as caught:
        parse_samples_body(raw, 10, PredictOptions)
    assert caught.value.code == "non_numeric_value"
    assert "gene 'B2M'" in str(caught.value.detail)


def test_long_bodies_with_nulls_still_refuse_strings() -> None:
    """A null stops the values packing as floats; the text's quotes then find the string."""
    raw = _long_body({"MICA": None, "B2M": "1.5"})
    with pytest.raises(ServiceError) as caught:
        parse_samples_body(raw, 10, PredictOptions)
    assert caught.value.code == "non_numeric_value"
    assert "gene 'B2M'" in str(caught.value.detail)


@pytest.mark.parametrize(
    "extra",
    [{'we"ird': 1.0}, {"untrue": 0.0, "falsetto": 1.0}, {"B2M": None}],
    ids=["quote in a key", "words in keys", "null"],
)
def test_long_bodies_whose_text_proves_nothing_are_read_alike(extra: dict[str, object]) -> None:
    raw = _long_body({"MICA": 0.0, "CD48": 1} | extra, scale="log", min_coverage=0.1)
    samples, options = parse_samples_body(raw, 10, PredictOptions)
    document = json.loads(raw)["samples"]["S1"]
    expected = [np.nan if v is None else float(v) for v in document.values()]
    np.testing.assert_array_equal(samples.values[0], expected)
    assert list(samples.genes) == list(document)
    assert options.scale == "log"


def test_long_identifier_lists_are_found_again_by_their_text() -> None:
    """A whole profile's plan is found by the JSON text of its identifiers: the same list
    (new string objects) finds it, a list one identifier apart does not, and lists whose
    text cannot tell values apart (None and NaN are both ``null``) never share one."""
    from nkpredict.data import identifiers
    from nkpredict.data.identifiers import RECENT_PLAN_MIN_IDS, _mapping_plan

    n = RECENT_PLAN_MIN_IDS + 5
    ids = [f"G{k}X" for k in range(n)] + ["MICA", "B7-H6"]
    plan = _mapping_plan(ids, None)
    again = _mapping_plan(["".join(list(i)) for i in ids], None)  # fresh str objects
    assert again is plan
    assert identifiers._recent_plans[0][2] is plan
    other = _mapping_plan([*ids[:-1], "PVR"], None)
    assert other is not plan
    assert list(other.symbols) == [*plan.symbols[:-1], "PVR"]
    assert identifiers._ids_text([None] * n) is None
    assert identifiers._ids_text([float("nan")] * n) is None
    assert identifiers._ids_text([object()]) is None
    assert identifiers._ids_text(["a", "b"]) != identifiers._ids_text(["a,b"])


def test_a_long_tuple_passed_again_is_found_by_identity(monkeypatch: pytest.MonkeyPatch) -> None:
    """The same tuple object finds its plan without its text being written; an equal tuple
    (another object) still finds it by the text, and a list is never trusted by identity."""
    from nkpredict.data import identifiers
    from nkpredict.data.identifiers import RECENT_PLAN_MIN_IDS, _mapping_plan

    ids = (*(f"T{k}Y" for k in range(RECENT_PLAN_MIN_IDS + 1)), "CD48")
    plan = _mapping_plan(ids, None)
    texts: list[object] = []
    written = identifiers._ids_text
    monkeypatch.setattr(identifiers, "_ids_text", lambda i: texts.append(i) or written(i))
    assert _mapping_plan(ids, None) is plan
    assert texts == []
    assert _mapping_plan(tuple(list(ids)), None) is plan
    assert len(texts) == 1
    listed = list(ids)
    assert _mapping_plan(listed, None) is plan
    listed[-1] = "PVR"  # the same list object, changed: a new plan
    assert list(_mapping_plan(listed, None).symbols)[-1] == "PVR"


def test_null_is_found_anywhere_in_an_identifier_text() -> None:
    from nkpredict.data.identifiers import _holds_null

    for text in (b"[null]", b"null", b'["a",null]', b'["xnull"]', b"[1,null,2]"):
        assert _holds_null(text)
    for text in (b"", b"nul", b'["nu","ll"]', b'["NULL"]', b"nulL", b'["n","u","l"]'):
        assert not _holds_null(text)
