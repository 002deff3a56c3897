"""The one JSON reader for input from outside (oauth/strict_json.py): RFC 8259 JSON, minus what two
readers could see differently (repeated members, §4), what is not interoperable (NaN/Infinity,
numbers beyond a double or signed 64 bits, §6; unpaired surrogates, §8.2; invalid UTF-8 or a BOM,
§8.1) and what no store can hold (U+0000), with nesting bounded (§9). Property tests: whatever the
input, the reader returns a value or raises JsonError, nothing else."""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fingrade.protocol.strict_json import MAX_DEPTH, MAX_INT, JsonError, loads, loads_object

pytestmark = pytest.mark.fuzz

FAST = settings(max_examples=150, deadline=None)

# JSON values the reader accepts: finite numbers in range, strings without U+0000 or surrogates.
_text = st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=12)
_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-MAX_INT, max_value=MAX_INT),
    st.floats(allow_nan=False, allow_infinity=False),
    _text,
)
_values = st.recursive(
    _scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(_text, inner, max_size=4)),
    max_leaves=20,
)


def only_json_error(data: bytes | str) -> object:
    """Call the reader; the only exception allowed out of it is JsonError."""
    try:
        return loads(data)
    except JsonError as exc:
        assert str(exc) and str(exc).isprintable()
        return exc


# -- acceptance: RFC 8259 JSON without the ambiguities round-trips ----------------------------------


@FAST
@given(_values)
def test_rfc8259_values_round_trip(value: object) -> None:
    text = json.dumps(value, ensure_ascii=False)
    assert loads(text.encode("utf-8")) == value
    assert loads(json.dumps(value)) == value  # \u escapes of the same characters


def test_surrogate_pairs_and_escapes_are_fine_rfc8259_7() -> None:
    assert loads(b'"\\ud83d\\ude00 \\u00e9 \\n"') == "\U0001f600 \u00e9 \n"
    assert loads(b' {"a" : [1, 2.5, -0, true, null]} \n') == {"a": [1, 2.5, 0, True, None]}


# -- refusals ---------------------------------------------------------------------------------------


def _wrap(text: str, wrappers: list[str]) -> str:
    for kind in wrappers:
        text = f"[{text}]" if kind == "array" else f'{{"w": {text}}}'
    return text


@FAST
@given(st.text(max_size=8), _values, _values, st.lists(st.sampled_from(["array", "object"]), max_size=10))
def test_repeated_member_refused_at_any_depth_rfc8259_4(
    name: str, first: object, second: object, wrappers: list[str]
) -> None:
    """Whatever the values and however deep the object, a repeated name is refused (not last-wins)."""
    key = json.dumps(name)
    text = _wrap(f"{{{key}: {json.dumps(first)}, {key}: {json.dumps(second)}}}", wrappers)
    with pytest.raises(JsonError, match="repeated member"):
        loads(text)


@pytest.mark.parametrize("depth", [1, MAX_DEPTH // 2, MAX_DEPTH])
def test_nesting_up_to_the_bound_is_accepted_rfc8259_9(depth: int) -> None:
    assert loads("[" * depth + "]" * depth) is not None
    assert loads('{"a":' * depth + "1" + "}" * depth) is not None


@pytest.mark.parametrize("depth", [MAX_DEPTH + 1, 1000, 100_000])
def test_nesting_beyond_the_bound_is_refused_rfc8259_9(depth: int) -> None:
    """Also far beyond the interpreter's recursion limit: a JsonError, never a RecursionError."""
    for text in ("[" * depth + "]" * depth, '{"a":' * depth + "1" + "}" * depth, "[" * depth):
        with pytest.raises(JsonError):
            loads(text)


@pytest.mark.parametrize(
    "text",
    [
        "NaN",
        "[Infinity]",
        '{"a": -Infinity}',
        "1e309",
        "-1e400",
        "[1E999]",
        str(MAX_INT + 1),
        str(-MAX_INT - 1),
        "9" * 41,
        "0." + "1" * 60,
        "1" * 5000,
    ],
)
def test_non_interoperable_numbers_refused_rfc8259_6(text: str) -> None:
    with pytest.raises(JsonError):
        loads(text)


@FAST
@given(st.one_of(st.integers(min_value=MAX_INT + 1), st.integers(max_value=-MAX_INT - 1)))
def test_integers_beyond_64_bits_refused_rfc8259_6(n: int) -> None:
    with pytest.raises(JsonError):
        loads(f'{{"n": [{n}]}}')


@pytest.mark.parametrize(
    "text", ['"\\ud800"', '["\\udfff"]', '{"\\ud83d": 1}', '"a\\ud83dz"', '"\\u0000"', '{"a\\u0000": 1}']
)
def test_lone_surrogates_and_nul_refused_rfc8259_8_2(text: str) -> None:
    with pytest.raises(JsonError):
        loads(text)


@pytest.mark.parametrize(
    "data",
    [
        b"\xef\xbb\xbf{}",
        b'{"a": "\xff"}',
        b'"\xc3"',
        b'"\xed\xa0\x80"',
        b"\xfe\xff\x00{",
        "{}".encode("utf-16"),
        b'"\xc0\xaf"',
    ],
)
def test_invalid_utf8_and_bom_refused_rfc8259_8_1(data: bytes) -> None:
    with pytest.raises(JsonError):
        loads(data)


@FAST
@given(_values, st.binary(min_size=1, max_size=3), st.integers(min_value=0))
def test_invalid_utf8_inside_a_value_refused_rfc8259_8_1(value: object, junk: bytes, at: int) -> None:
    """Any valid JSON text with bytes spliced in that make it invalid UTF-8 is refused."""
    raw = json.dumps(value).encode()
    pos = at % (len(raw) + 1)
    spliced = raw[:pos] + junk + raw[pos:]
    try:
        spliced.decode("utf-8")
    except UnicodeDecodeError:
        with pytest.raises(JsonError, match="UTF-8"):
            loads(spliced)


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=200))
def test_any_bytes_give_a_value_or_json_error(data: bytes) -> None:
    only_json_error(data)


@settings(max_examples=500, deadline=None)
@given(st.text(alphabet='{}[]",:0123456789.eE+-tfnaluNIy\\u \n\x00\ud800\U0001f600', max_size=80))
def test_json_like_text_gives_a_value_or_json_error(text: str) -> None:
    result = only_json_error(text)
    if not isinstance(result, JsonError):  # what got through holds no refused number
        assert not isinstance(result, float) or math.isfinite(result)


def test_loads_object_needs_an_object() -> None:
    assert loads_object(b'{"a": 1}') == {"a": 1}
    for text in (b"[]", b"1", b'"x"', b"null"):
        with pytest.raises(JsonError, match="object"):
            loads_object(text)


def test_errors_never_echo_the_input() -> None:
    """Descriptions go back to the sender and into logs: none repeats what was sent."""
    secret = "s3cr3t-value"
    for text in (f'{{"{secret}": 1, "{secret}": 2}}', f'["{secret}"', f'"{secret}\\ud800"', f'{{"{secret}": NaN}}'):
        with pytest.raises(JsonError) as caught:
            loads(text)
        assert secret not in str(caught.value)
