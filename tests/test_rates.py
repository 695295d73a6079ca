"""The rate parser: each known form becomes structure, anything else stays raw."""

from __future__ import annotations

import pytest

from models import FIXED_UP_TO, MULTIPLIER, PER_EURO, PER_ORDER, PERCENT
from scrapers.rates import parse_number, parse_rate


@pytest.mark.parametrize(
    "text, rate_type, value, up_to",
    [
        ("1 °P pro 2 €", PER_EURO, 0.5, False),
        ("2 °P pro 1 €", PER_EURO, 2.0, False),
        ("3 °P pro €", PER_EURO, 3.0, False),
        ("1,5 Punkte pro 1 €", PER_EURO, 1.5, False),
        ("1 Punkt pro 2 Euro", PER_EURO, 0.5, False),
        ("2 Meilen pro 1 €", PER_EURO, 2.0, False),
        ("1 Meile je 1 € Umsatz", PER_EURO, 1.0, False),
        ("Bis zu 5 °P pro 1 €", PER_EURO, 5.0, True),
        ("500 °P pro Abschluss", PER_ORDER, 500.0, False),
        ("1 °P pro Kauf", PER_ORDER, 1.0, False),
        ("1.000 °P pro Antrag", PER_ORDER, 1000.0, False),
        ("2.500 Punkte pro Vertrag", PER_ORDER, 2500.0, False),
        ("Bis zu 1.500 °P", FIXED_UP_TO, 1500.0, True),
        ("4 % Cashback", PERCENT, 4.0, False),
        ("Bis zu 7,5 %", PERCENT, 7.5, True),
        ("  2   °P  pro 1 € ", PER_EURO, 2.0, False),
        ("10-fach °P", MULTIPLIER, 10.0, False),
        ("10fach °P", MULTIPLIER, 10.0, False),
        ("20-fach Punkte", MULTIPLIER, 20.0, False),
        ("Extra-°P: 5fach", MULTIPLIER, 5.0, False),
        ("10-fache °Punkte", MULTIPLIER, 10.0, False),
        ("Bis zu 15-fach °P", MULTIPLIER, 15.0, True),
    ],
)
def test_known_forms_are_parsed(text: str, rate_type: str, value: float, up_to: bool) -> None:
    parsed = parse_rate(text)
    assert (parsed.rate_type, parsed.value, parsed.up_to) == (rate_type, pytest.approx(value), up_to)
    assert parsed.raw_text == text  # the original wording is always kept


@pytest.mark.parametrize(
    "text",
    ["10-fach °P auf Möbel", "0-fach °P", "Extra °Punkte sichern", "°Punkte auf ausgewählte Produkte", "", "pro 2 €", "1 °P pro 0 €",
     "<script>alert(1)</script>"],
)
def test_unknown_forms_keep_the_text_and_no_number(text: str) -> None:
    parsed = parse_rate(text)
    assert parsed.rate_type is None and parsed.value is None and not parsed.is_parsed
    assert parsed.raw_text == text


def test_german_numbers() -> None:
    assert parse_number("1.500") == 1500
    assert parse_number("0,5") == 0.5
    assert parse_number("12") == 12
