"""The compiled reader of plain bodies (service/plain_bodies.py, service/_plain_scan.c).

It must give what the general parser gives, bit for bit, for every body it accepts, and
decline (``None``) every body it cannot read exactly, so that the general parser answers
(or refuses) it: both are checked on generated bodies, valid and broken.
"""

from __future__ import annotations

import json
import math
import struct
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import service.bodies
from service.bodies import SampleMatrix, parse_samples_body
from service.errors import ServiceError
from service.plain_bodies import COMPILED, scan_plain_body
from service.schemas import ExplainOptions, PredictOptions

MAX_SAMPLES = 50

NUMBER = r"\A-?(0|[1-9][0-9]{0,24})(\.[0-9]{1,24})?([eE][+-]?[0-9]{1,4})?\Z"
"""The JSON number grammar (lengths bounded)."""


def _bits(value: float) -> int:
    return struct.unpack("<q", struct.pack("<d", value))[0]


def _general(raw: bytes, options_type: type = PredictOptions) -> tuple[SampleMatrix, Any] | str:
    """What the general parser answers: the parsed body, or the refusal's code."""
    original = service.bodies.scan_plain_body
    service.bodies.scan_plain_body = lambda raw, max_samples: None  # type: ignore[assignment]
    try:
        return parse_samples_body(raw, MAX_SAMPLES, options_type)
    except ServiceError as exc:
        return exc.code
    finally:
        service.bodies.scan_plain_body = original


def _served(raw: bytes, options_type: type = PredictOptions) -> tuple[SampleMatrix, Any] | str:
    try:
        return parse_samples_body(raw, MAX_SAMPLES, options_type)
    except ServiceError as exc:
        return exc.code


def _same_cells(a: np.ndarray, b: np.ndarray) -> bool:
    """Equal shapes, NaN in the same cells, every other cell the same bits (signed zeros)."""
    if a.shape != b.shape or not np.array_equal(np.isnan(a), np.isnan(b)):
        return False
    finite = ~np.isnan(a)
    return bool(np.array_equal(a[finite].view(np.int64), b[finite].view(np.int64)))


def _assert_same_answer(raw: bytes) -> None:
    general, served = _general(raw), _served(raw)
    if isinstance(general, str) or isinstance(served, str):
        assert served == general
        return
    (g_samples, g_options), (s_samples, s_options) = general, served
    assert s_samples.sample_ids == g_samples.sample_ids
    assert list(s_samples.genes) == list(g_samples.genes)
    assert _same_cells(s_samples.values, g_samples.values)
    assert s_options == g_options


def test_the_scanner_is_compiled() -> None:
    """Every install here builds the extension: without it the service is slower, not
    wrong (see the module docstring of service.plain_bodies)."""
    assert COMPILED


# --- numbers ---------------------------------------------------------------------------------


@settings(max_examples=400, deadline=None)
@given(text=st.from_regex(NUMBER))
def test_numbers_are_converted_as_python_converts_their_text(text: str) -> None:
    body = f'{{"samples": {{"s": {{"G": {text}}}}}}}'.encode()
    read = scan_plain_body(body, MAX_SAMPLES)
    expected = float(int(text)) if text.lstrip("-").isdigit() else float(text)
    if read is None:  # only numbers beyond the float range are left to the general parser
        with pytest.raises(OverflowError):
            float(int(text)) if text.lstrip("-").isdigit() else _finite(float(text))
        return
    assert _bits(float(read.values[0, 0])) == _bits(expected)


def _finite(value: float) -> float:
    if math.isinf(value):
        raise OverflowError
    return value


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("0", 0.0),
        ("-0", 0.0),  # a JSON integer: float(int("-0")) has no sign
        ("-0.0", -0.0),
        ("-0e3", -0.0),
        ("1e-400", 0.0),
        ("123456789012345678901234567890", 1.2345678901234568e29),
        ("0.1", 0.1),
        ("2.5e-3", 0.0025),
        ("9007199254740993", 9007199254740992.0),  # 2^53 + 1 rounds to even
        ("null", math.nan),
    ],
)
def test_edge_numbers(text: str, expected: float) -> None:
    read = scan_plain_body(f'{{"samples": {{"s": {{"G": {text}}}}}}}'.encode(), MAX_SAMPLES)
    assert read is not None
    value = float(read.values[0, 0])
    assert (math.isnan(value) and math.isnan(expected)) or _bits(value) == _bits(expected)


# --- bodies it reads, bodies it declines -----------------------------------------------------

_TEXT = st.characters(codec="utf-8", exclude_categories=("Cs", "Cc"))
"""Characters JSON writes without an escape (those with one are declined: tested below)."""
_GENE = st.text(alphabet=_TEXT, min_size=0, max_size=8)
_VALUE = st.one_of(
    st.none(),
    st.integers(-(10**20), 10**20),
    st.floats(allow_nan=False, allow_infinity=False),
    st.from_regex(NUMBER).map(lambda t: _Raw(t)),
)
_OPTIONS = st.sampled_from(
    [
        [],
        ['"n_drivers": 3'],
        ['"scale": "log"'],
        ['"scale":"tpm"', '"n_drivers" :0'],
        ['"scale": "nonsense"'],
        ['"unknown_field": true'],
        ['"n_drivers": null'],
        ['"n_drivers": 2.0'],
        ['"scale": "lo\\u0067"'],  # an escape in an option's string: parsed by orjson
    ]
)
"""Option members, as their JSON text."""


class _Raw(str):
    """Number text written into the body as it is."""


def _dumps(value: Any) -> str:
    if isinstance(value, _Raw):
        return str(value)
    return json.dumps(value)


def _body(
    ids: list[str],
    genes: list[str],
    values: list[list[Any]],
    options: list[str],
    space: str,
) -> bytes:
    samples = ",".join(
        f"{json.dumps(sid, ensure_ascii=False)}:{space}{{"
        + ",".join(
            f"{space}{json.dumps(g, ensure_ascii=False)}{space}:{_dumps(v)}"
            for g, v in zip(genes, row, strict=True)
        )
        + f"{space}}}"
        for sid, row in zip(ids, values, strict=True)
    )
    members = [f'"samples":{space}{{{samples}}}', *options]
    return ("{" + space + f",{space}".join(members) + space + "}").encode()


@st.composite
def _plain_bodies(draw: Callable[..., Any]) -> bytes:
    genes = draw(st.lists(_GENE, min_size=1, max_size=6, unique=True))
    n_samples = draw(st.integers(1, 4))
    ids = draw(st.lists(_GENE, min_size=n_samples, max_size=n_samples))
    values = [
        draw(st.lists(_VALUE, min_size=len(genes), max_size=len(genes))) for _ in range(n_samples)
    ]
    options = draw(_OPTIONS)
    space = draw(st.sampled_from(["", " ", "\n\t", "\r\n  "]))
    return _body(ids, genes, values, options, space)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(raw=_plain_bodies())
def test_plain_bodies_get_the_general_parsers_answer(raw: bytes) -> None:
    _assert_same_answer(raw)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    raw=_plain_bodies(),
    edit=st.tuples(st.integers(0, 10**6), st.integers(0, 3), st.binary(max_size=3)),
)
def test_broken_bodies_get_the_general_parsers_answer(
    raw: bytes, edit: tuple[int, int, bytes]
) -> None:
    """A few bytes replaced anywhere: a body the scanner may no longer read exactly."""
    at, removed, inserted = edit
    at %= len(raw) + 1
    _assert_same_answer(raw[:at] + inserted + raw[at + removed :])


@pytest.mark.parametrize(
    "raw",
    [
        b'{"samples": {"s": {"G\\u0041": 1}}}',  # an escape in a key
        b'{"samples": {"s": {"G": true}}}',
        b'{"samples": {"s": {"G": "1.5"}}}',
        b'{"samples": {"s": {"G": 1, "G": 2}}}',
        b'{"samples": {"s": {"G": 1}, "s": {"G": 2}}}',
        b'{"samples": {"a": {"G": 1, "H": 2}, "b": {"H": 2, "G": 1}}}',
        b'{"samples": {"a": {"G": 1}, "b": {"G": 1, "H": 2}}}',
        b'{"samples": {"s": {}}}',
        b'{"samples": {}}',
        b'{"samples": {"s": {"G": 1}}} x',
        b'{"samples": {"s": {"G": 1}}',
        b'{"samples": {"s": {"G": 1e999}}}',
        b'{"samples": {"s": {"G": 01}}}',
        b'{"samples": {"s": {"G": 1.}}}',
        b'{"samples": {"s": {"G": NaN}}}',
        b'{"samples": {"s": {"\xff": 1}}}',
        b'{"samples": {"s": {"\xed\xa0\x80": 1}}}',  # an encoded lone surrogate
        b'{"samples": {"s": {"\xc3\xa9\\ud800": 1}}}',  # an escaped one beside other text
        b'{"samples": {"s": {"G": 1}}, "samples": {"t": {"G": 1}}}',
        b'{"samples": {"s": {"G": 1}}, "scale": ["log"]}',
        b'{"samples": {"s": {"G": 1}}, "scale": "log", "scale": "tpm"}',
        b'{"samples": {"s": {"G": 1}}, "s\\u0061mples": 1}',
        b'{"samples": {"s": {"G": 1}}, "scale": tru}',
        b'\xef\xbb\xbf{"samples": {"s": {"G": 1}}}',
        b'["samples"]',
        b"",
    ],
)
def test_bodies_outside_the_plain_shape_are_declined(raw: bytes) -> None:
    assert scan_plain_body(raw, MAX_SAMPLES) is None
    _assert_same_answer(raw)


def test_more_samples_than_allowed_are_declined() -> None:
    raw = json.dumps({"samples": {f"s{i}": {"G": i} for i in range(3)}}).encode()
    assert scan_plain_body(raw, 3) is not None
    assert scan_plain_body(raw, 2) is None
    with pytest.raises(ServiceError) as refused:
        parse_samples_body(raw, 2, PredictOptions)
    assert refused.value.code == "too_many_samples"


def test_a_repeated_gene_list_is_decoded_once() -> None:
    first = json.dumps({"samples": {"a": {"TP53": 1.0, "MICA": 2.0}}}).encode()
    second = json.dumps({"samples": {"b": {"TP53": 3.0, "MICA": None}}}).encode()
    one, two = scan_plain_body(first, MAX_SAMPLES), scan_plain_body(second, MAX_SAMPLES)
    assert one is not None and two is not None
    assert one.genes is two.genes == ("TP53", "MICA")


def test_values_are_writeable_and_options_validated() -> None:
    raw = json.dumps(
        {"samples": {"a": {"G": 1, "H": 2}, "b": {"G": 3, "H": None}}, "n_drivers": 2}
    ).encode()
    samples, options = parse_samples_body(raw, MAX_SAMPLES, ExplainOptions)
    assert samples.values.flags.writeable
    assert samples.values.tolist()[0] == [1.0, 2.0]
    assert math.isnan(samples.values[1, 1])
    assert options.n_drivers == 2
    with pytest.raises(ServiceError) as refused:
        parse_samples_body(raw.replace(b'"n_drivers": 2', b'"n_drivers": -1'), 50, ExplainOptions)
    assert refused.value.code == "validation_error"
