"""Webhook signatures as the Standard Webhooks spec defines them, and secrets kept encrypted at rest."""

from __future__ import annotations

import base64
import hashlib
import hmac

import pytest

from webhooks.secret_box import SecretBox, SecretUnreadable
from webhooks.signing import new_message_id, new_secret, sign, signed_headers

# The published test vector of the Standard Webhooks specification: repository
# standard-webhooks/standard-webhooks, libraries/python/tests/test_webhooks.py,
# test_sign_function (the same values appear in the other reference libraries' tests).
VECTOR_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
VECTOR_MSG_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
VECTOR_TIMESTAMP = 1614265330
VECTOR_PAYLOAD = b'{"test": 2432232314}'
VECTOR_SIGNATURE = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def independent_verify(secret: str, headers: dict[str, str], body: bytes) -> bool:
    """Verify as a receiver would, written from the spec alone (not from webhooks.signing).

    Key: base64-decode the secret after ``whsec_``. Signed content:
    ``{webhook-id}.{webhook-timestamp}.{body}``. Header: space-separated
    ``version,base64`` entries; any ``v1`` entry equal (constant time) to the
    HMAC-SHA256 verifies.
    """
    key = base64.b64decode(secret.split("_", 1)[1])
    content = headers["webhook-id"].encode() + b"." + headers["webhook-timestamp"].encode() + b"." + body
    expected = base64.b64encode(hmac.new(key, content, hashlib.sha256).digest())
    for entry in headers["webhook-signature"].split(" "):
        version, _, signature = entry.partition(",")
        if version == "v1" and hmac.compare_digest(signature.encode(), expected):
            return True
    return False


VECTOR_HEADERS = {"webhook-id": VECTOR_MSG_ID, "webhook-timestamp": str(VECTOR_TIMESTAMP),
                  "webhook-signature": VECTOR_SIGNATURE}


def test_the_spec_test_vector_verifies_with_the_independent_implementation() -> None:
    assert independent_verify(VECTOR_SECRET, VECTOR_HEADERS, VECTOR_PAYLOAD)


def test_our_signature_reproduces_the_spec_test_vector() -> None:
    assert sign(VECTOR_SECRET, VECTOR_MSG_ID, VECTOR_TIMESTAMP, VECTOR_PAYLOAD) == VECTOR_SIGNATURE
    headers = signed_headers(VECTOR_SECRET, VECTOR_MSG_ID, VECTOR_TIMESTAMP, VECTOR_PAYLOAD)
    assert headers == {**VECTOR_HEADERS, "Content-Type": "application/json"}


@pytest.mark.parametrize("tamper", ["body", "id", "timestamp"])
def test_a_changed_body_id_or_timestamp_no_longer_verifies(tamper: str) -> None:
    headers, body = dict(VECTOR_HEADERS), VECTOR_PAYLOAD
    if tamper == "body":
        body = b'{"test": 2432232315}'
    elif tamper == "id":
        headers["webhook-id"] = "msg_p5jXN8AQM9LWM0D4loKWxJel"
    else:
        headers["webhook-timestamp"] = str(VECTOR_TIMESTAMP + 1)
    assert not independent_verify(VECTOR_SECRET, headers, body)


def test_new_secrets_are_random_whsec_keys_of_32_bytes_and_sign_verifiably() -> None:
    secret, other = new_secret(), new_secret()
    assert secret.startswith("whsec_") and secret != other
    assert len(base64.b64decode(secret[len("whsec_"):])) == 32
    message_id, body = new_message_id(), "{\"ä\":1}".encode()
    assert message_id.startswith("msg_") and "." not in message_id
    assert independent_verify(secret, signed_headers(secret, message_id, 1_700_000_000, body), body)
    assert not independent_verify(other, signed_headers(secret, message_id, 1_700_000_000, body), body)


def test_secrets_are_sealed_with_a_key_derived_from_secret_key() -> None:
    secret = new_secret()
    box = SecretBox("app-secret-key")
    sealed = box.seal(secret)
    assert secret not in sealed and secret[len("whsec_"):] not in sealed
    assert box.seal(secret) != sealed  # a fresh IV every time: equal secrets do not look equal
    assert SecretBox("app-secret-key").open(sealed) == secret
    with pytest.raises(SecretUnreadable, match="SECRET_KEY geändert"):
        SecretBox("another-secret-key").open(sealed)
    with pytest.raises(SecretUnreadable):
        box.open(sealed[:-4] + "AAAA")  # tampered
    assert "app-secret-key" not in repr(box)
