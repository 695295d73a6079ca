"""Request bodies larger than ``MAX_CONTENT_LENGTH`` are refused with 413, never read whole.

A body with a ``Content-Length`` over the limit is refused before any of it
is read (``refuse_oversized_body``, before every request). A chunked body has
no length up front: werkzeug reads it through a stream capped at the limit,
but that cap silently cuts the body off, so a 200 MB form would arrive as its
first megabyte. ``BoundedRequest`` reads such a body through a stream that
answers 413 as soon as one byte more than the limit arrives.
"""

from __future__ import annotations

import typing as t

from flask import Request, current_app, request
from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.utils import cached_property
from werkzeug.wsgi import LimitedStream, get_input_stream


class _StrictMaximumStream(LimitedStream):
    """Read at most ``maximum`` bytes; one more raises ``RequestEntityTooLarge``."""

    def __init__(self, stream: t.IO[bytes], maximum: int) -> None:
        super().__init__(stream, maximum + 1, is_max=True)
        self.maximum = maximum

    def readinto(self, buffer: bytearray) -> int | None:  # type: ignore[override]
        count = super().readinto(buffer)
        if self.tell() > self.maximum:
            raise RequestEntityTooLarge()
        return count


class BoundedRequest(Request):
    """Flask's request, with chunked bodies over the limit refused instead of truncated."""

    @cached_property
    def stream(self) -> t.IO[bytes]:
        maximum = self.max_content_length
        if maximum is None or self.content_length is not None or not self.environ.get("wsgi.input_terminated"):
            return get_input_stream(self.environ, max_content_length=maximum)
        return _StrictMaximumStream(self.environ["wsgi.input"], maximum)


def refuse_oversized_body() -> None:
    """Refuse a body whose ``Content-Length`` is over the limit, whether or not the view reads it."""
    maximum = current_app.config.get("MAX_CONTENT_LENGTH")
    if maximum is not None and request.content_length is not None and request.content_length > maximum:
        raise RequestEntityTooLarge()
