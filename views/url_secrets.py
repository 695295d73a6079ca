"""Secrets never travel in URLs: recognise them in a query string, and keep them out of log lines.

URLs end up in access logs, browser histories and ``Referer`` headers, so a
query string that carries a credential is refused (``access.py``), and log
lines that quote such a URL (werkzeug's and gunicorn's access log) quote it
without its query string. A query carries a secret when a parameter is named
like a credential (``token``, ``api_key``, ``auth``, ``bearer``, ``secret``)
or when a value, decoded up to three times, contains one of our API tokens
(``<id>.<43 random characters>``) or the configured ``ADMIN_API_TOKEN``.
"""

from __future__ import annotations

import logging
import re
from typing import Iterable, Optional
from urllib.parse import parse_qsl, unquote

from flask import Flask

CREDENTIAL_NAME = re.compile(r"token|api[_-]?key|auth|bearer|secret", re.IGNORECASE)
# The shape of tokens from ``flask create-token``: "<id>.<token_urlsafe(32)>".
TOKEN_SHAPE = re.compile(r"(?<![A-Za-z0-9_-])\d{1,12}\.[A-Za-z0-9_-]{32,}")
REDACTED = "?[entfernt]"
_QUERY_IN_TEXT = re.compile(r"\?[^\s\"']*")
_DECODE_ROUNDS = 3


def _decodings(value: str) -> Iterable[str]:
    for _ in range(_DECODE_ROUNDS):
        yield value
        decoded = unquote(value)
        if decoded == value:
            return
        value = decoded


def value_is_secret(value: str, configured_token: Optional[str] = None) -> bool:
    """Whether ``value`` (or a percent-decoding of it) contains a token."""
    for candidate in _decodings(value):
        if TOKEN_SHAPE.search(candidate) or (configured_token and configured_token in candidate):
            return True
    return False


def query_carries_secret(pairs: Iterable[tuple[str, str]], configured_token: Optional[str] = None) -> bool:
    return any(CREDENTIAL_NAME.search(name) or value_is_secret(value, configured_token)
               or value_is_secret(name, configured_token) for name, value in pairs)


def redact_urls(text: str, configured_token: Optional[str] = None) -> str:
    """Cut the query string off every URL in ``text`` that carries a secret."""
    def redact(match: re.Match[str]) -> str:
        query = match.group(0)
        pairs = parse_qsl(query[1:], keep_blank_values=True)
        if query_carries_secret(pairs, configured_token) or value_is_secret(query, configured_token):
            return REDACTED
        return query

    return _QUERY_IN_TEXT.sub(redact, text)


class RedactSecretsFilter(logging.Filter):
    """Rewrite a log record whose message quotes a URL with a secret in its query."""

    def __init__(self, configured_token: Optional[str] = None) -> None:
        super().__init__()
        self.configured_token = configured_token

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if "?" in message:
            cleaned = redact_urls(message, self.configured_token)
            if cleaned != message:
                record.msg, record.args = cleaned, ()
        return True


# The access logs of the servers we document: werkzeug's (flask run) and gunicorn's.
ACCESS_LOGGERS = ("werkzeug", "gunicorn.access", "gunicorn.error")


def init_app(app: Flask) -> None:
    """Install the filter on the servers' loggers (once per logger, updated to this app's token)."""
    for name in ACCESS_LOGGERS:
        logger = logging.getLogger(name)
        for old in [f for f in logger.filters if isinstance(f, RedactSecretsFilter)]:
            logger.removeFilter(old)
        logger.addFilter(RedactSecretsFilter(app.config.get("ADMIN_API_TOKEN")))
