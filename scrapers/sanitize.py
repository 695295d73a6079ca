"""Make scraped text safe to store and show: no control, bidi-override or surrogate characters.

Scraped text is untrusted. Templates escape it, but escaping does not stop a
right-to-left override (U+202E) from turning "moc.evil" into "live.com" on
screen, and PostgreSQL refuses a NUL character outright, failing the whole
run's transaction. Half a UTF-16 surrogate pair (JSON may spell one as
``\\ud800``) cannot be encoded as UTF-8 at all, so no database stores it. So
every scraped string passes ``clean_text`` before it is stored.

Values a parser passes over are shown in job messages through ``shown`` and
tallied in ``OddValues``: quoted, escaped and cut, so one monstrous value can
neither flood the console nor smuggle a control character into it.
"""

from __future__ import annotations

import re
import reprlib
from dataclasses import dataclass, field
from typing import Any

from bs4 import BeautifulSoup

# C0 and C1 controls (tabs and newlines become spaces below), DEL, bidi embeddings,
# overrides (U+202A–U+202E), isolates (U+2066–U+2069) and lone surrogates (U+D800–U+DFFF).
_UNSAFE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069\ud800-\udfff]")
_SURROGATES = re.compile("[\ud800-\udfff]")
# A value that becomes part of a link path: letters, digits, "_" and "-" only.
SAFE_PATH_SEGMENT = re.compile(r"[A-Za-z0-9_-]+")
SHOWN_LENGTH = 40  # characters of an odd value quoted in a message
MAX_EXAMPLES = 3  # odd values quoted per message; the rest are only counted
# Lists and objects are shown two levels deep, a few items each: never a whole (deep) structure.
_CONTAINERS = reprlib.Repr()
_CONTAINERS.maxlevel, _CONTAINERS.maxlist, _CONTAINERS.maxdict = 2, 3, 3
_CONTAINERS.maxstring = _CONTAINERS.maxother = SHOWN_LENGTH


def clean_text(value: str) -> str:
    """Drop control, bidi-override and surrogate characters and fold runs of whitespace into one space."""
    return " ".join(_UNSAFE.sub("", value).split())


def without_surrogates(value: str) -> str:
    """Return ``value`` with each lone surrogate replaced by U+FFFD, so it can be encoded (and parsed) at all."""
    return _SURROGATES.sub("\ufffd", value)


def html_to_text(html: str) -> str:
    """Return the visible text of an HTML fragment, cleaned (markup and scripts never survive)."""
    # BeautifulSoup encodes short markup to check whether it looks like a file name: a surrogate breaks that.
    soup = BeautifulSoup(without_surrogates(html), "html.parser")
    for hidden in soup(["script", "style", "template"]):
        hidden.decompose()
    return clean_text(soup.get_text(" "))


def is_safe_path_segment(value: str) -> bool:
    """Tell whether ``value`` may be put into a URL path as it is."""
    return bool(SAFE_PATH_SEGMENT.fullmatch(value))


def shown(value: Any, limit: int = SHOWN_LENGTH) -> str:
    """Quote ``value`` for a job message: its ``repr``, cut to about ``limit`` characters.

    ``repr`` escapes NUL, control and surrogate characters (``'\\x00'``), so the
    admin sees exactly what was odd, and the message stays storable.
    """
    try:
        text = repr(value) if isinstance(value, (str, int, float, bool, type(None))) else _CONTAINERS.repr(value)
    except ValueError:  # an integer too long to print (over 4,300 digits)
        text = f"<{type(value).__name__}>"
    return text if len(text) <= limit else text[: limit - 1] + "…"


@dataclass
class OddValues:
    """The values a parser passed over, counted, with the first few kept as examples for the job's messages."""

    count: int = 0
    examples: list[str] = field(default_factory=list)

    def add(self, description: str) -> None:
        """Count one odd value; ``description`` should name where it was and show it (``shown``)."""
        self.count += 1
        if len(self.examples) < MAX_EXAMPLES:
            self.examples.append(description)

    def merge(self, other: OddValues) -> None:
        """Add the odd values of ``other`` (the next page of the same run)."""
        for description in other.examples:
            self.add(description)
        self.count += other.count - len(other.examples)

    def examples_text(self) -> str:
        """The examples for a message, ``"; "``-separated, ending in ``"; …"`` when there were more."""
        more = "; …" if self.count > len(self.examples) else ""
        return "; ".join(self.examples) + more
