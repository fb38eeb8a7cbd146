"""Whole incoming messages from wsproto's frame events, within the size limit."""

from __future__ import annotations

from wsproto.events import BytesMessage, TextMessage


class MessageTooBig(Exception):
    """A message grew past the limit; ``str(error)`` is the close reason (code 1009)."""


class Assembler:
    """Joins the fragments of one message at a time."""

    __slots__ = ("_binary", "_limit", "_size", "_text")

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._size = 0
        self._text: list[str] | None = None  # fragments of an unfinished message, if any
        self._binary: list[bytes] | None = None

    def add(self, event: TextMessage | BytesMessage) -> str | bytes | None:
        """The whole message once ``event`` finishes it, else None; raises `MessageTooBig`."""
        self._size += len(event.data)
        if self._size > self._limit:
            raise MessageTooBig(f"Exceeded maximum message size: {self._limit} bytes")
        if isinstance(event, TextMessage):
            if self._text is None:
                if event.message_finished:  # the common case: a whole message in one frame
                    self._size = 0
                    return event.data
                self._text = []
            self._text.append(event.data)
            if not event.message_finished:
                return None
            text, self._text, self._size = "".join(self._text), None, 0
            return text
        if self._binary is None:
            self._binary = []
        self._binary.append(bytes(event.data))
        if not event.message_finished:
            return None
        data, self._binary, self._size = b"".join(self._binary), None, 0
        return data
