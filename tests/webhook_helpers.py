"""Helpers of the webhook tests: fast settings, endpoints made through the admin page, recorded rows."""

from __future__ import annotations

import re
import socket
import threading
import time
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


class StallingReceiver:
    """A loopback receiver that reads each POST whole, then sends only ``HTTP/1.1 200 OK\\r\\n`` and stalls.

    The header block never ends, so no client can call that answer complete.
    The first ``stalls`` connections stall (``None``: every one); later ones
    get a whole ``200`` answer. ``close()`` drops every held connection, so a
    sender still waiting ends at once when the test is over.
    """

    def __init__(self, stalls: Optional[int] = None) -> None:
        self.stalls = stalls
        self.arrivals: list[float] = []  # time.monotonic() of each request read whole
        self._lock = threading.Lock()
        self._held: list[socket.socket] = []
        self._closed = threading.Event()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}/hook"
        threading.Thread(target=self._accept, name="stalling-receiver", daemon=True).start()

    @property
    def allowed_host(self) -> str:
        return f"127.0.0.1:{self.port}"

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                connection, _ = self._listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(connection,), daemon=True).start()

    def _serve(self, connection: socket.socket) -> None:
        with self._lock:
            self._held.append(connection)
        try:
            data = b""
            while b"\r\n\r\n" not in data:
                chunk = connection.recv(65536)
                if not chunk:
                    return
                data += chunk
            head, _, body = data.partition(b"\r\n\r\n")
            length = int(re.search(rb"(?i)content-length:\s*(\d+)", head).group(1))
            while len(body) < length:
                chunk = connection.recv(65536)
                if not chunk:
                    return
                body += chunk
            with self._lock:
                number = len(self.arrivals)
                self.arrivals.append(time.monotonic())
            if self.stalls is None or number < self.stalls:
                connection.sendall(b"HTTP/1.1 200 OK\r\n")
                self._closed.wait()  # the rest of the answer never comes
            else:
                connection.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
        except OSError:
            return
        finally:
            connection.close()

    def close(self) -> None:
        self._closed.set()
        self._listener.close()
        with self._lock:
            held, self._held = self._held, []
        for connection in held:
            try:
                connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def __enter__(self) -> "StallingReceiver":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
