"""JSON text in and out: depth-checked decoding of client messages, compact encoding of server events."""

from __future__ import annotations

import json
import math
from json.encoder import encode_basestring
from typing import Any

from .. import problems
from .errors import ProtocolError

_encoder = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))
_decoder = json.JSONDecoder()

string = encode_basestring
"""A string as `encode` writes it (quoted, escaped, non-ASCII as is): for events written field by field."""


def decode_text(text: str, max_depth: int) -> object:
    """Parse one text message as JSON, refusing nesting deeper than ``max_depth``."""
    if nesting_exceeds(text, max_depth):
        raise ProtocolError(problems.TOO_DEEP.format(depth=max_depth))
    try:
        # `raw_decode` skips `json.loads`' two wrappers and its whitespace scans; text with whitespace at either
        # end (rare from clients) takes `json.loads`, which allows it.
        if text[-1:] == "}" and text[:1] == "{":
            value, end = _decoder.raw_decode(text)
            if end == len(text):
                return value
        return json.loads(text)
    except ValueError:
        raise ProtocolError(problems.NOT_JSON) from None


def decode_or_none(text: str, max_depth: int) -> object:
    """`decode_text`, or None where it raises."""
    try:
        return decode_text(text, max_depth)
    except ProtocolError:
        return None


def nesting_exceeds(text: str, max_depth: int) -> bool:
    """Whether arrays and objects in ``text`` nest deeper than ``max_depth``.

    Checked before parsing, so that the parser never recurses deeply. Brackets
    inside strings do not count; malformed text is left for the parser.
    """
    if text.count("[") + text.count("{") <= max_depth:
        return False  # the common case, at C speed
    depth = 0
    in_string = escaped = False
    for char in text:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            if depth > max_depth:
                return True
        elif char in "]}":
            depth -= 1
    return False


def is_encodable(text: str) -> bool:
    """Whether ``text`` can travel in a WebSocket text message: JSON allows lone surrogates ("\\ud800"), UTF-8 not."""
    if text.isascii():
        return True  # (constant time: CPython knows a string's widest character)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def encode(event: dict[str, Any]) -> str:
    """Encode a server event as compact JSON text."""
    return _encoder.encode(event)


def number(value: float) -> str:
    """A number as `encode` writes it: for events written field by field (a talk, once per message, where the
    encoder's own walk over a dict costs three times as much)."""
    kind = type(value)
    if kind is int:
        return int.__repr__(value)
    if kind is float and math.isfinite(value):
        return float.__repr__(value)
    return _encoder.encode(value)
