"""Which admin passwords are accepted: long enough and not among the ones guessed first.

NIST SP 800-63B asks for a minimum length and a check against passwords from
breach corpora, repetitive characters and context words, not for composition
rules. The bundled list is Django's ``common-passwords.txt.gz`` (19,640
passwords, lowercased; provenance and licence in ``data/common-passwords.LICENSE``).
"""

from __future__ import annotations

import gzip
import re
from functools import lru_cache
from pathlib import Path
from typing import Optional

MIN_PASSWORD_LENGTH = 12
COMMON_PASSWORDS = Path(__file__).resolve().parent / "data" / "common-passwords.txt.gz"
# A short unit repeated ("aaaaaaaaaaaa", "abcabcabcabc", "121212121212").
_REPEATED_UNIT = re.compile(r"(.{1,4}?)\1+", re.DOTALL)


@lru_cache(maxsize=1)
def common_passwords() -> frozenset[str]:
    with gzip.open(COMMON_PASSWORDS, "rt", encoding="utf-8") as lines:
        return frozenset(line.strip() for line in lines if line.strip())


def password_problem(password: str, username: str = "") -> Optional[str]:
    """Say in German why ``password`` is refused, or None when it is good enough."""
    if len(password) < MIN_PASSWORD_LENGTH:
        return f"Das Passwort braucht mindestens {MIN_PASSWORD_LENGTH} Zeichen."
    if not password.strip():
        return "Das Passwort darf nicht nur aus Leerzeichen bestehen."
    if _REPEATED_UNIT.fullmatch(password):
        return "Das Passwort darf nicht ein kurzes Muster wiederholen (wie „aaaa…“ oder „abcabc…“)."
    normalised = password.strip().casefold()
    if username and normalised == username.strip().casefold():
        return "Das Passwort darf nicht der Benutzername sein."
    if normalised in common_passwords():
        return "Dieses Passwort steht in der Liste der häufigsten Passwörter: bitte ein anderes wählen."
    return None
