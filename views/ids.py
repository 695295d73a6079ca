"""Ids from clients, checked before any query: a row id fits every database's integer column, a job id has the queue's shape.

An id the database cannot even compare (``2**31`` against a PostgreSQL
``integer``, ``2**63`` in SQLite, a NUL in a text) would fail the query and
answer 500; such an id names nothing, so it is not found (404) or, as a
credential, refused (401), without asking the database.
"""

from __future__ import annotations

import re
from typing import Optional

from flask import Flask
from werkzeug.routing import BaseConverter, IntegerConverter

MAX_ROW_ID = 2**31 - 1  # PostgreSQL's integer, the narrowest id column of both databases
_JOB_ID = re.compile(r"[0-9A-Za-z-]{1,36}")  # the queue makes uuid4 strings (36 characters)


def parse_row_id(text: str) -> Optional[int]:
    """The row id ``text`` spells in ASCII digits, or None when it cannot be one (``"١٢"``, ``"2147483648"``)."""
    if not (text.isascii() and text.isdigit()):
        return None
    number = int(text)
    return number if 1 <= number <= MAX_ROW_ID else None


def is_job_id(text: str) -> bool:
    """Whether ``text`` can be a job's id at all."""
    return _JOB_ID.fullmatch(text) is not None


class RowIdConverter(IntegerConverter):
    """``<id:name>``: an integer row id; a larger one does not match the route, so it is a 404."""

    def __init__(self, url_map, *args, **kwargs) -> None:
        super().__init__(url_map, min=1, max=MAX_ROW_ID)


class JobIdConverter(BaseConverter):
    """``<job_id:name>``: a job id; anything else does not match the route (404)."""

    regex = _JOB_ID.pattern


def init_app(app: Flask) -> None:
    """Register the converters; before the blueprints whose routes use them."""
    app.url_map.converters["id"] = RowIdConverter
    app.url_map.converters["job_id"] = JobIdConverter
