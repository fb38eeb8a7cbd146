"""Talk events written field by field are, character for character, what the JSON encoder writes of the dict."""

from __future__ import annotations

import html

from hypothesis import given
from hypothesis import strategies as st

from chatcore.wire import seed, v2
from chatcore.wire.jsontext import encode, number

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
