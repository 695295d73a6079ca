"""German counts for people: "1 Prämiensatz", "2 Prämiensätze", "1.500 Shops".

Job messages (written by scrapers) and pages (templates) share these, so a
count reads the same wherever it appears. No Flask, no project imports.
"""

from __future__ import annotations


def number_de(value: float) -> str:
    """A number as Germans write it: ``1500`` → ``"1.500"``, ``0.5`` → ``"0,5"`` (at most two decimals)."""
    if float(value).is_integer():
        return f"{int(value):,}".replace(",", ".")
    text = f"{value:,.2f}".rstrip("0")
    return text.replace(",", " ").replace(".", ",").replace(" ", ".")


def count_of(count: int, singular: str, plural: str) -> str:
    """``count`` and the noun in the right number: ``count_of(1, "Seite", "Seiten")`` → ``"1 Seite"``."""
    return f"{number_de(count)} {singular if count == 1 else plural}"
