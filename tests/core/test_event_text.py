"""JSON text by hand, checked against the json module: talk events written field by field are, character for
character, what the encoder writes of the dict; client text is read as `json.loads` reads it."""

from __future__ import annotations

import html
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chatcore.wire import seed, v2
from chatcore.wire.errors import ProtocolError
from chatcore.wire.jsontext import decode_text, encode, is_encodable, number

texts = st.text()
times = st.floats(allow_nan=False, allow_infinity=False) | st.integers(min_value=0, max_value=2**63)
ids = st.integers(min_value=0, max_value=2**63)


@given(texts, ids, times, st.booleans())
def test_a_seed_talk_is_the_encoders(payload: str, user_id: int, time: float, escape: bool) -> None:
    shown = html.escape(payload) if escape else payload
    assert seed.talk_event(payload, user_id, time, escape_html=escape) == encode(
        {"type": "talk", "payload": shown, "userId": user_id, "time": time}
    )


@given(texts, ids, times, ids, st.none() | texts, st.none() | texts, st.none() | times, st.booleans())
def test_a_version_2_talk_is_the_encoders(
    payload: str, user_id: int, time: float, offset: int, name: str | None, talk_id: str | None,
    edited: float | None, verified: bool,
) -> None:
    event = {"type": "talk", "payload": payload, "userId": user_id, "time": time, "offset": offset, "name": name}
    if talk_id is not None:
        event["id"] = talk_id
    if edited is not None:
        event["edited"] = edited
    if verified:
        event["verified"] = True
    assert v2.talk_event(
        payload, user_id, time, offset, name, talk_id, escape_html=False, edited=edited, verified=verified
    ) == encode(event)


def test_numbers_the_encoder_would_not_write_as_repr_are_left_to_it() -> None:
    assert number(float("inf")) == encode(float("inf"))  # type: ignore[arg-type]
    assert number(True) == "true"


_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)


@given(
    _json_values, st.sampled_from(["", " ", "\n", "\t "]), st.sampled_from(["", " ", "\r\n", "x", "}", "{}", ","])
)
def test_client_text_is_read_as_json_loads_reads_it(value: object, before: str, after: str) -> None:
    text = before + json.dumps({"v": value}, ensure_ascii=False) + after
    try:
        expected = json.loads(text)
    except ValueError:
        with pytest.raises(ProtocolError):
            decode_text(text, 1000)
    else:
        assert decode_text(text, 1000) == expected


@given(st.text())
def test_text_is_encodable_exactly_when_utf_8_can_carry_it(text: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        assert not is_encodable(text)
    else:
        assert is_encodable(text)
