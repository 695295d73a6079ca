"""Make scraped text safe to store and show: no control or bidi-override characters.

Scraped text is untrusted. Templates escape it, but escaping does not stop a
right-to-left override (U+202E) from turning "moc.evil" into "live.com" on
screen, and PostgreSQL refuses a NUL character outright, failing the whole
run's transaction. So every scraped string passes ``clean_text`` before it is
stored.
"""

from __future__ import annotations

import re

from bs4 import BeautifulSoup

# C0 and C1 controls (tabs and newlines become spaces below), DEL, bidi embeddings,
# overrides (U+202A–U+202E) and isolates (U+2066–U+2069).
_UNSAFE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
# A value that becomes part of a link path: letters, digits, "_" and "-" only.
SAFE_PATH_SEGMENT = re.compile(r"[A-Za-z0-9_-]+")


def clean_text(value: str) -> str:
    """Drop control and bidi-override characters and fold runs of whitespace into one space."""
    return " ".join(_UNSAFE.sub("", value).split())


def html_to_text(html: str) -> str:
    """Return the visible text of an HTML fragment, cleaned (markup and scripts never survive)."""
    soup = BeautifulSoup(html, "html.parser")
    for hidden in soup(["script", "style", "template"]):
        hidden.decompose()
    return clean_text(soup.get_text(" "))


def is_safe_path_segment(value: str) -> bool:
    """Tell whether ``value`` may be put into a URL path as it is."""
    return bool(SAFE_PATH_SEGMENT.fullmatch(value))
