"""Helpers of the webhook tests: fast settings, endpoints made through the admin page, recorded rows."""

from __future__ import annotations

import re
from typing import Any, Optional

import sqlalchemy as sa
from flask import Flask

from models import db
from scripted_server import ScriptedServer
from webhooks.models import WebhookAttempt, WebhookDelivery, WebhookEndpoint

ALL_EVENTS = ("completed", "failed", "cancelled")


def fast_webhooks(*servers: ScriptedServer, **overrides: Any) -> dict[str, Any]:
    """Settings with retries within seconds and these loopback receivers allow-listed."""
    config: dict[str, Any] = {
        "WEBHOOK_ALLOWED_HOSTS": ",".join(f"127.0.0.1:{server.httpd.server_port}" for server in servers),
        "WEBHOOK_CONNECT_TIMEOUT": 2.0,
        "WEBHOOK_READ_TIMEOUT": 5.0,
        "WEBHOOK_TOTAL_TIMEOUT": 5.0,
        "WEBHOOK_RETRY_FIRST_DELAY": 0.2,
        "WEBHOOK_RETRY_MAX_DELAY": 10.0,
        "WEBHOOK_RETRY_FOR": 60.0,
        "WEBHOOK_RETRY_JITTER": 0.2,
        "WEBHOOK_POLL_INTERVAL": 5.0,
    }
    config.update(overrides)
    return config


def create_endpoint_via_page(client, url: str, events: tuple[str, ...] = ALL_EVENTS,
                             enabled: bool = True) -> tuple[int, str]:
    """Add an endpoint with the admin form; return its id and the secret the answer shows once."""
    data: dict[str, Any] = {"url": url, "events": list(events), "csrf_token": client.csrf_token}
    if enabled:
        data["enabled"] = "1"
    response = client.post("/admin/webhooks", data=data)
    page = response.get_data(as_text=True)
    assert response.status_code == 200, page
    secret = re.search(r'<code id="new-secret">(whsec_[A-Za-z0-9+/=]+)</code>', page).group(1)
    endpoint_id = int(re.search(r'href="/admin/webhooks/(\d+)">Zum neuen Endpunkt', page).group(1))
    return endpoint_id, secret


def attempts_of(app: Flask, endpoint_id: int) -> list[WebhookAttempt]:
    """The endpoint's recorded attempts, oldest first."""
    with app.app_context():
        rows = db.session.scalars(sa.select(WebhookAttempt).where(WebhookAttempt.endpoint_id == endpoint_id)
                                  .order_by(WebhookAttempt.id)).all()
        db.session.remove()
        return list(rows)


def deliveries_of(app: Flask, endpoint_id: Optional[int] = None) -> list[WebhookDelivery]:
    """Deliveries (of one endpoint, or all), oldest first."""
    with app.app_context():
        query = sa.select(WebhookDelivery).order_by(WebhookDelivery.id)
        if endpoint_id is not None:
            query = query.where(WebhookDelivery.endpoint_id == endpoint_id)
        rows = db.session.scalars(query).all()
        db.session.remove()
        return list(rows)


def endpoint_row(app: Flask, endpoint_id: int) -> Optional[WebhookEndpoint]:
    with app.app_context():
        endpoint = db.session.get(WebhookEndpoint, endpoint_id)
        db.session.remove()
        return endpoint
