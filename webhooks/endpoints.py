"""What the admin does to webhook endpoints: validate, create, change, switch, test, delete.

The views stay thin: they parse the form, call these, and render. A new or
renewed secret is returned to the caller exactly once, to be shown once; only
its encrypted form is stored, and nothing here logs it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping, Optional
from urllib.parse import urlsplit

import sqlalchemy as sa

from models import db
from scrapers.address_guard import AddressGuard, AddressRefused, parse_ip_literal
from webhooks import store
from webhooks.delivery import DeliveryState
from webhooks.events import test_event_body
from webhooks.models import EVENTS, TEST_EVENT, WebhookAttempt, WebhookDelivery, WebhookEndpoint
from webhooks.sender import destination_problem
from webhooks.signing import new_message_id, new_secret

URL_MAX_LENGTH = WebhookEndpoint.__table__.c.url.type.length


@dataclass
class EndpointForm:
    """An endpoint as the admin typed it in, with what is wrong with it (German)."""

    url: str = ""
    events: list[str] = field(default_factory=lambda: list(EVENTS))
    enabled: bool = True
    errors: list[str] = field(default_factory=list)

    @classmethod
    def parse(cls, form: Mapping[str, str], events: list[str]) -> "EndpointForm":
        """Read ``url``, the checked ``events`` and ``enabled`` from a submitted form."""
        parsed = cls(url=(form.get("url") or "").strip(), events=[name for name in EVENTS if name in events],
                     enabled=form.get("enabled") == "1")
        if not parsed.url:
            parsed.errors.append("Bitte eine URL angeben.")
        elif len(parsed.url) > URL_MAX_LENGTH:
            parsed.errors.append(f"Die URL ist länger als {URL_MAX_LENGTH} Zeichen.")
        elif (problem := destination_problem(parsed.url)) is not None:
            parsed.errors.append(f"{problem}.")
        if not parsed.events:
            parsed.errors.append("Bitte mindestens ein Ereignis wählen.")
        return parsed


def refusal_warning(url: str, allowed_hosts: tuple[str, ...]) -> Optional[str]:
    """Warn (German) when ``url`` names an internal address literally; names are checked at delivery.

    No DNS look-up here: a page request must not wait for a resolver, and
    what a name resolves to at delivery time is what counts.
    """
    parts = urlsplit(url)
    host, port = parts.hostname or "", parts.port or (443 if parts.scheme == "https" else 80)
    if parse_ip_literal(host) is None:
        return None
    try:
        AddressGuard(allowed_hosts).check(host, port)
    except AddressRefused as exc:
        return (f"Achtung: {host} ist die interne Adresse {exc.address} ({exc.reason}); Zustellungen "
                "dorthin werden verweigert, solange WEBHOOK_ALLOWED_HOSTS den Host nicht nennt.")
    return None


def create_endpoint(state: DeliveryState, form: EndpointForm) -> tuple[WebhookEndpoint, str]:
    """Store a new endpoint; return it and its secret (to be shown once, never again)."""
    secret = new_secret()
    endpoint = WebhookEndpoint(url=form.url, events=",".join(form.events), enabled=form.enabled,
                               secret_encrypted=state.box.seal(secret))
    db.session.add(endpoint)
    db.session.commit()
    return endpoint, secret


def update_endpoint(endpoint: WebhookEndpoint, form: EndpointForm) -> None:
    """Change URL, events and switch; the secret stays."""
    endpoint.url, endpoint.events = form.url, ",".join(form.events)
    set_enabled(endpoint, form.enabled)


def set_enabled(endpoint: WebhookEndpoint, enabled: bool) -> None:
    """Switch an endpoint on or off; switching it on forgets why delivery had switched it off."""
    endpoint.enabled = enabled
    if enabled:
        endpoint.disabled_reason = None
    db.session.commit()


def renew_secret(state: DeliveryState, endpoint: WebhookEndpoint) -> str:
    """Give the endpoint a new secret (e.g. after SECRET_KEY changed); return it to be shown once."""
    secret = new_secret()
    endpoint.secret_encrypted = state.box.seal(secret)
    db.session.commit()
    return secret


def delete_endpoint(endpoint: WebhookEndpoint) -> None:
    """Delete an endpoint with its deliveries and attempts.

    Explicitly, children first: SQLite does not enforce the foreign keys'
    ON DELETE CASCADE here (PostgreSQL does, for a delivery thread racing us).
    """
    attempts, deliveries = WebhookAttempt.__table__, WebhookDelivery.__table__
    db.session.execute(sa.delete(attempts).where(attempts.c.endpoint_id == endpoint.id))
    db.session.execute(sa.delete(deliveries).where(deliveries.c.endpoint_id == endpoint.id))
    db.session.delete(endpoint)
    db.session.commit()


def send_test_event(state: DeliveryState, endpoint: WebhookEndpoint) -> None:
    """Owe the endpoint a test event (even when switched off) and wake the delivery threads."""
    store.record_delivery(state.engine, endpoint.id, TEST_EVENT, test_event_body(endpoint.id), new_message_id())
    state.wake()
