"""The one reader of JSON that comes from outside: request bodies (dynamic registration, the bank's
payments and consents, consent resources), the `authorization_details` and `claims` parameters, JWT
headers and claims, registered JWKS and the authorization server's answers to the bank.

Where parsers disagree, an attacker picks the reading each side sees, so everything ambiguous or
unbounded is refused rather than read one way:
- strict UTF-8 (RFC 8259 §8.1), no byte-order mark;
- a repeated object member (RFC 8259 §4 leaves its meaning open; RFC 7515 §5.2 and RFC 7519 §4
  allow refusing it), at any depth;
- nesting deeper than `max_depth` (RFC 8259 §9 lets parsers bound it);
- NaN, Infinity, numbers that do not fit a float, integers outside signed 64 bits and number
  literals longer than 40 characters (RFC 8259 §6, §9: interoperable numbers only);
- lone surrogate escapes such as "\\ud800" (RFC 8259 §8.2: unpredictable) and U+0000, which
  databases cannot store and no protocol value needs.

The stdlib decoder is used because it can report every member of an object (orjson keeps the last);
its hooks run in C for everything but the checks above.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

MAX_DEPTH = 32
MAX_NUMBER_LENGTH = 40
MAX_INT = 2**63 - 1
_SURROGATE = re.compile("[\ud800-\udfff]")


class JsonError(ValueError):
    """The JSON text was refused. `str(exc)` is a short description safe to show the sender: it
    never repeats any of the input."""


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        raise JsonError("a JSON object has a repeated member")
    return obj


def _int(text: str) -> int:
    if len(text) > MAX_NUMBER_LENGTH:
        raise JsonError("a JSON number is too long")
    value = int(text)
    if not -MAX_INT <= value <= MAX_INT:
        raise JsonError("a JSON integer is out of range")
    return value


def _float(text: str) -> float:
    if len(text) > MAX_NUMBER_LENGTH:
        raise JsonError("a JSON number is too long")
    value = float(text)
    if not math.isfinite(value):
        raise JsonError("a JSON number is out of range")
    return value


def _constant(name: str) -> Any:
    raise JsonError("NaN and Infinity are not valid JSON")


_DECODER = json.JSONDecoder(object_pairs_hook=_object, parse_int=_int, parse_float=_float, parse_constant=_constant)


def _check_text(text: str) -> None:
    if "\x00" in text:
        raise JsonError("JSON strings must not contain U+0000")
    if not text.isascii() and _SURROGATE.search(text):
        raise JsonError("JSON strings must not contain unpaired surrogates")


def _check(value: Any, max_depth: int) -> None:
    """Depth, and the strings the decoder accepted but we do not (iterative: no recursion limit)."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, str):
            _check_text(item)
            continue
        if isinstance(item, dict):
            children: Any = item.values()
            for key in item:
                _check_text(key)
        elif isinstance(item, list):
            children = item
        else:
            continue
        if depth > max_depth:
            raise JsonError("JSON text is nested too deeply")
        stack.extend((child, depth + 1) for child in children if isinstance(child, (str, dict, list)))


def loads(data: bytes | str, *, max_depth: int = MAX_DEPTH) -> Any:
    """Parse one JSON text (RFC 8259) under the rules above; raises JsonError, nothing else."""
    if isinstance(data, (bytes, bytearray, memoryview)):
        try:
            text = bytes(data).decode("utf-8")
        except UnicodeDecodeError:
            raise JsonError("JSON text must be UTF-8") from None
    elif isinstance(data, str):
        text = data
    else:
        raise JsonError("JSON text must be bytes or a string")
    try:
        value = _DECODER.decode(text)
    except JsonError:
        raise
    except RecursionError:
        raise JsonError("JSON text is nested too deeply") from None
    except ValueError:  # JSONDecodeError, and int() beyond Python's digit limit
        raise JsonError("not valid JSON") from None
    _check(value, max_depth)
    return value


def loads_object(data: bytes | str, *, max_depth: int = MAX_DEPTH) -> dict[str, Any]:
    """A JSON text that must be an object (request bodies, JWT headers and claims)."""
    value = loads(data, max_depth=max_depth)
    if not isinstance(value, dict):
        raise JsonError("the JSON text must be an object")
    return value
