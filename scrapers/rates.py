"""Parse the free-text earn rates that loyalty programmes publish.

The raw text is always kept; a number is only filled in when the text has one
of the known forms. Anything else stays unparsed (``rate_type`` None) so that
nothing is ever guessed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Optional

from models import FIXED_UP_TO, MULTIPLIER, PER_EURO, PER_ORDER, PERCENT

_NUMBER = r"(\d{1,3}(?:\.\d{3})+|\d+(?:,\d+)?)"
_UNIT = r"(?:°P|°\s?Punkte?|Punkte?|Meilen?|Miles?|P)"
_ORDER_WORDS = (
    r"(?:Abschluss|Kauf|Bestellung|Buchung|Vertrag|Anmeldung|Neukunde|Neukunden|"
    r"Vertragsabschluss|Antrag|Registrierung|Abo)"
)

_PER_EURO_RE = re.compile(
    rf"^(?P<up_to>bis zu\s+)?{_NUMBER}\s*{_UNIT}\s+(?:pro|je|für)\s+(?:{_NUMBER}\s*)?(?:€|Euro|EUR)(?!\w)",
    re.IGNORECASE,
)
_PER_ORDER_RE = re.compile(
    rf"^(?P<up_to>bis zu\s+)?{_NUMBER}\s*{_UNIT}\s+(?:pro|je|für|bei)\s+(?:\w+\s+)?{_ORDER_WORDS}\b",
    re.IGNORECASE,
)
_FIXED_UP_TO_RE = re.compile(rf"^bis zu\s+{_NUMBER}\s*{_UNIT}$", re.IGNORECASE)
_PERCENT_RE = re.compile(
    rf"^(?P<up_to>bis zu\s+)?{_NUMBER}\s*%(?:\s+(?:Cashback|Rabatt|zurück))?$", re.IGNORECASE
)

# "10-fach °P", "10fach °P", "20-fach Punkte", "Extra-°P: 5fach": a multiple of the base rate.
# Only the whole text: "10-fach °P auf Möbel" applies to part of a basket and stays unparsed.
_MULTIPLIER_RE = re.compile(
    rf"^(?P<up_to>bis zu\s+)?(?:extra[-\s]?{_UNIT}\s*:\s*)?(?P<factor>\d+(?:,\d+)?)\s*-?\s*fache?(?:\s+{_UNIT})?$",
    re.IGNORECASE,
)
MAX_MULTIPLIER = 1000  # beyond this a "factor" is more likely a typo than an offer


@dataclass(frozen=True)
class ParsedRate:
    """A rate text and, when understood, its structure."""

    raw_text: str
    rate_type: Optional[str] = None
    value: Optional[float] = None
    up_to: bool = False

    @property
    def is_parsed(self) -> bool:
        return self.rate_type is not None


def parse_number(text: str) -> float:
    """Parse a German number: ``1.500`` is 1500, ``0,5`` is 0.5."""
    if re.fullmatch(r"\d{1,3}(?:\.\d{3})+", text):
        return float(text.replace(".", ""))
    return float(text.replace(",", "."))


def parse_rate(raw_text: str) -> ParsedRate:
    """Turn one rate text into a ``ParsedRate``; unknown forms keep only the text."""
    text = " ".join(raw_text.split())
    match = _PER_EURO_RE.match(text)
    if match:
        points = parse_number(match.group(2))
        euros = parse_number(match.group(3)) if match.group(3) else 1.0
        if euros > 0:
            return ParsedRate(raw_text, PER_EURO, points / euros, bool(match.group("up_to")))
    match = _PER_ORDER_RE.match(text)
    if match:
        return ParsedRate(raw_text, PER_ORDER, parse_number(match.group(2)), bool(match.group("up_to")))
    match = _FIXED_UP_TO_RE.match(text)
    if match:
        return ParsedRate(raw_text, FIXED_UP_TO, parse_number(match.group(1)), True)
    match = _MULTIPLIER_RE.match(text)
    if match and 0 < parse_number(match.group("factor")) <= MAX_MULTIPLIER:
        return ParsedRate(raw_text, MULTIPLIER, parse_number(match.group("factor")), bool(match.group("up_to")))
    match = _PERCENT_RE.match(text)
    if match:
        return ParsedRate(raw_text, PERCENT, parse_number(match.group(2)), bool(match.group("up_to")))
    return ParsedRate(raw_text)
