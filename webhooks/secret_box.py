"""Keep endpoint secrets encrypted at rest, under a key derived from WEBHOOK_SECRETS_KEY (else SECRET_KEY).

A signing secret must stay usable (every delivery signs with it), so it
cannot be hashed like a password or an API token. A copy of the database
(a backup, a dump handed to a developer) must still not reveal it: it is
stored as a Fernet token (AES-128-CBC with HMAC-SHA256, authenticated, from
the ``cryptography`` package) whose key is derived with HKDF-SHA256 and a
purpose label, so it is never the session-signing key itself. By default
the key material is SECRET_KEY, which sits in the instance folder beside a
SQLite database; WEBHOOK_SECRETS_KEY, set from the environment, keeps it
apart. A changed key makes stored secrets unreadable: delivery then says
which key changed, and the admin creates a new secret for the endpoint.
"""

from __future__ import annotations

import base64

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

_PURPOSE = b"bonusvergleich/webhook-endpoint-secrets/v1"


class SecretUnreadable(Exception):
    """A stored secret cannot be decrypted: SECRET_KEY changed, or the value was tampered with."""


class SecretBox:
    """Encrypt and decrypt endpoint secrets with a key derived from ``app_secret_key``."""

    def __init__(self, app_secret_key: str | bytes, key_name: str = "SECRET_KEY") -> None:
        """``key_name``: the setting the key comes from, named when a secret cannot be opened."""
        material = app_secret_key.encode("utf-8") if isinstance(app_secret_key, str) else app_secret_key
        if not material:
            raise ValueError(f"{key_name} is empty: webhook secrets cannot be protected")
        self._key_name = key_name
        key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_PURPOSE).derive(material)
        self._fernet = Fernet(base64.urlsafe_b64encode(key))

    def seal(self, secret: str) -> str:
        """Return ``secret`` encrypted, as text for the database."""
        return self._fernet.encrypt(secret.encode("utf-8")).decode("ascii")

    def open(self, sealed: str) -> str:
        """Return the secret inside ``sealed``; ``SecretUnreadable`` when it cannot be decrypted."""
        try:
            return self._fernet.decrypt(sealed.encode("ascii")).decode("utf-8")
        except (InvalidToken, ValueError) as exc:
            raise SecretUnreadable(
                f"Das Signaturgeheimnis lässt sich nicht entschlüsseln ({self._key_name} geändert?): "
                "bitte für diesen Endpunkt ein neues Geheimnis erzeugen"
            ) from exc

    def __repr__(self) -> str:  # never show key material in logs or tracebacks
        return "<SecretBox>"
