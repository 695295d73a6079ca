"""Sign webhook messages as the Standard Webhooks specification says (symmetric, ``v1``).

The receiver verifies ``webhook-signature: v1,<base64 HMAC-SHA256>`` computed
with the endpoint's secret over ``{webhook-id}.{webhook-timestamp}.{body}``:
the id and the attempt's timestamp are signed with the body, so a captured
request cannot be replayed later or under another id. Secrets are shown as
``whsec_`` followed by the base64 of the random key bytes; the HMAC key is
those bytes, not the text.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import uuid

SECRET_PREFIX = "whsec_"
SECRET_BYTES = 32  # the spec asks for 24 to 64 random bytes
SIGNATURE_VERSION = "v1"


def new_secret() -> str:
    """Return a fresh endpoint secret, ``whsec_<base64 of 32 random bytes>``."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode("ascii")


def new_message_id() -> str:
    """Return a ``webhook-id``: unique per event, kept across retries, never containing a dot."""
    return f"msg_{uuid.uuid4().hex}"


def secret_key_bytes(secret: str) -> bytes:
    """The HMAC key of a ``whsec_`` secret (the prefix is optional, as in the spec's libraries)."""
    encoded = secret[len(SECRET_PREFIX):] if secret.startswith(SECRET_PREFIX) else secret
    return base64.b64decode(encoded, validate=True)


def sign(secret: str, message_id: str, timestamp: int, body: bytes) -> str:
    """Return the ``webhook-signature`` value for one attempt: ``v1,<base64 HMAC-SHA256>``."""
    signed_content = f"{message_id}.{timestamp}.".encode("ascii") + body
    digest = hmac.new(secret_key_bytes(secret), signed_content, hashlib.sha256).digest()
    return f"{SIGNATURE_VERSION},{base64.b64encode(digest).decode('ascii')}"


def signed_headers(secret: str, message_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    """The three Standard Webhooks headers for one attempt, plus the JSON content type."""
    return {
        "Content-Type": "application/json",
        "webhook-id": message_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": sign(secret, message_id, timestamp, body),
    }
