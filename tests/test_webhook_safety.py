"""Webhook destinations an admin may not reach, redirects, 410 Gone, leases and unreadable secrets."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Callable

import pytest
import sqlalchemy as sa
from flask import Flask

from conftest import logged_in_client
from database import utcnow
from job_queue import job_queue
from models import db
from scripted_server import Reply, ScriptedServer
from webhook_helpers import attempts_of, create_endpoint_via_page, deliveries_of, endpoint_row, fast_webhooks
from webhooks import dispatcher
from webhooks.models import WebhookDelivery

pytestmark = pytest.mark.timeout(60)

# Each of these reaches this machine or its cloud metadata service; the port is the receiver's.
REFUSED = [
    ("http://127.0.0.1:{port}/hook", "127.0.0.1", "Loopback"),
    ("http://169.254.169.254/latest/meta-data/", "169.254.169.254", "Link-Local"),
    ("http://[::1]:{port}/hook", "::1", "Loopback"),
    ("http://2130706433:{port}/hook", "127.0.0.1", "Loopback"),
    ("http://0x7f000001:{port}/hook", "127.0.0.1", "Loopback"),
    ("http://localhost:{port}/hook", "", "Loopback"),  # a name resolving to loopback (127.0.0.1 or ::1)
]


def _test_event(client, endpoint_id: int) -> None:
    response = client.post(f"/admin/webhooks/{endpoint_id}/test", data={"csrf_token": client.csrf_token})
    assert response.status_code == 302


def test_internal_destinations_are_refused_and_recorded(make_app: Callable[..., Flask], database_url: str,
                                                        server: ScriptedServer) -> None:
    server.route("/hook", Reply(200))
    app = make_app(DATABASE_URL=database_url, WEBHOOK_ALLOWED_HOSTS="", WEBHOOK_DELIVERY_AUTOSTART=False)
    client = logged_in_client(app)
    endpoints = []
    for template, address, reason in REFUSED:
        endpoint_id, _ = create_endpoint_via_page(client, template.format(port=server.httpd.server_port))
        _test_event(client, endpoint_id)
        endpoints.append((endpoint_id, address, reason))
    assert dispatcher.run_due(app) == len(REFUSED)

    assert server.hits["/hook"] == 0
    for endpoint_id, address, reason in endpoints:
        [attempt] = attempts_of(app, endpoint_id)
        assert attempt.error.startswith("Ziel verweigert: "), attempt.error
        assert f"interne Adresse {address}" in attempt.error and f"({reason})" in attempt.error
        assert "WEBHOOK_ALLOWED_HOSTS" in attempt.error and attempt.status_code is None
        [delivery] = deliveries_of(app, endpoint_id)
        assert delivery.status == "failed"  # asking again cannot help: no retry
        page = client.get(f"/admin/webhooks/{endpoint_id}").get_data(as_text=True)
        assert "Ziel verweigert" in page
    assert dispatcher.run_due(app) == 0


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
def test_an_allow_listed_internal_host_is_delivered_to(make_app: Callable[..., Flask], server: ScriptedServer,
                                                       host: str) -> None:
    server.route("/hook", Reply(200))
    port = server.httpd.server_port
    app = make_app(WEBHOOK_ALLOWED_HOSTS=f"{host}:{port}", WEBHOOK_DELIVERY_AUTOSTART=False)
    client = logged_in_client(app)
    allowed, _ = create_endpoint_via_page(client, f"http://{host}:{port}/hook")
    other_port, _ = create_endpoint_via_page(client, f"http://{host}:{port + 1}/hook")  # only that port is listed
    _test_event(client, allowed)
    _test_event(client, other_port)
    dispatcher.run_due(app)
    assert [a.status_code for a in attempts_of(app, allowed)] == [200]
    assert "Ziel verweigert" in attempts_of(app, other_port)[0].error


def test_redirects_are_not_followed_and_count_as_failures(make_app: Callable[..., Flask], database_url: str,
                                                          server: ScriptedServer) -> None:
    server.redirect("/moved", f"{server.url}/target", status=307)
    server.route("/target", Reply(200))
    app = make_app(DATABASE_URL=database_url, **fast_webhooks(server, WEBHOOK_DELIVERY_AUTOSTART=False,
                                                              WEBHOOK_RETRY_FIRST_DELAY=8.0))
    client = logged_in_client(app)
    endpoint_id, _ = create_endpoint_via_page(client, f"{server.url}/moved")
    _test_event(client, endpoint_id)
    dispatcher.run_due(app)
    [attempt] = attempts_of(app, endpoint_id)
    assert attempt.status_code == 307 and "Weiterleitung (HTTP 307) wird nicht gefolgt" in attempt.error
    assert server.hits["/target"] == 0
    [delivery] = deliveries_of(app, endpoint_id)
    assert delivery.status == "pending" and delivery.next_attempt_at > utcnow() + timedelta(seconds=5)


def test_410_gone_disables_the_endpoint_and_stops_retrying(make_app: Callable[..., Flask], database_url: str,
                                                           server: ScriptedServer) -> None:
    server.route("/gone", Reply(410, b"gone"))
    app = make_app(DATABASE_URL=database_url, **fast_webhooks(server, WEBHOOK_DELIVERY_AUTOSTART=False))
    client = logged_in_client(app)
    endpoint_id, _ = create_endpoint_via_page(client, f"{server.url}/gone")
    _test_event(client, endpoint_id)
    dispatcher.run_due(app)
    endpoint = endpoint_row(app, endpoint_id)
    assert endpoint.enabled is False and "410" in endpoint.disabled_reason
    assert [d.status for d in deliveries_of(app, endpoint_id)] == ["failed"]
    assert "410" in client.get("/admin/webhooks").get_data(as_text=True)


def test_a_delivery_whose_process_died_is_taken_over_after_its_lease(
    make_app: Callable[..., Flask], database_url: str, server: ScriptedServer,
) -> None:
    server.route("/hook", Reply(200))
    app = make_app(DATABASE_URL=database_url, **fast_webhooks(server, WEBHOOK_DELIVERY_AUTOSTART=False))
    client = logged_in_client(app)
    endpoint_id, _ = create_endpoint_via_page(client, f"{server.url}/hook")
    _test_event(client, endpoint_id)
    with app.app_context():  # another process claimed it, then died mid-attempt
        db.session.execute(sa.update(WebhookDelivery).values(
            status="sending", lease_owner="dead-process", lease_until=utcnow() + timedelta(seconds=30), attempts=1))
        db.session.commit()
    assert dispatcher.run_due(app) == 0  # its lease still runs
    with app.app_context():
        db.session.execute(sa.update(WebhookDelivery).values(lease_until=utcnow() - timedelta(seconds=1)))
        db.session.commit()
    assert dispatcher.run_due(app) == 1
    assert [(a.number, a.status_code) for a in attempts_of(app, endpoint_id)] == [(2, 200)]
    assert [d.status for d in deliveries_of(app, endpoint_id)] == ["delivered"]


def test_a_changed_secret_key_is_reported_instead_of_sending_unsigned(make_app: Callable[..., Flask],
                                                                      server: ScriptedServer, tmp_path) -> None:
    server.route("/hook", Reply(200))
    url = f"sqlite:///{tmp_path / 'shared.sqlite'}"
    first = make_app(DATABASE_URL=url, **fast_webhooks(server, WEBHOOK_DELIVERY_AUTOSTART=False))
    client = logged_in_client(first)
    endpoint_id, _ = create_endpoint_via_page(client, f"{server.url}/hook")
    _test_event(client, endpoint_id)
    later = make_app(DATABASE_URL=url, SECRET_KEY="a-new-secret-key-0123456789abcdef-0123",
                     **fast_webhooks(server, WEBHOOK_DELIVERY_AUTOSTART=False))
    assert dispatcher.run_due(later) == 1
    [attempt] = attempts_of(later, endpoint_id)
    assert "SECRET_KEY geändert" in attempt.error and server.hits["/hook"] == 0


def test_pending_retries_of_a_disabled_endpoint_stop(make_app: Callable[..., Flask], server: ScriptedServer) -> None:
    server.route("/hook", Reply(503))
    app = make_app(**fast_webhooks(server, WEBHOOK_DELIVERY_AUTOSTART=False, WEBHOOK_RETRY_FIRST_DELAY=8.0))
    client = logged_in_client(app)
    endpoint_id, _ = create_endpoint_via_page(client, f"{server.url}/hook")
    with app.app_context():
        job_queue.enqueue(lambda job: None)
        job_queue.run_pending()
    assert dispatcher.run_due(app) == 1  # 503: to be retried in about 8 s
    client.post(f"/admin/webhooks/{endpoint_id}/enabled", data={"enabled": "0", "csrf_token": client.csrf_token})
    with app.app_context():  # the retry falls due
        db.session.execute(sa.update(WebhookDelivery).values(next_attempt_at=utcnow()))
        db.session.commit()
    dispatcher.run_due(app)
    [delivery] = deliveries_of(app, endpoint_id)
    assert delivery.status == "failed" and "deaktiviert" in delivery.last_error
    assert json.loads(delivery.body)["type"] == "job.completed"
    assert server.hits["/hook"] == 1 and len(attempts_of(app, endpoint_id)) == 1


def test_a_separate_webhook_secrets_key_keeps_secrets_readable_when_secret_key_changes(
    make_app: Callable[..., Flask], server: ScriptedServer, tmp_path,
) -> None:
    server.route("/hook", Reply(200))
    url = f"sqlite:///{tmp_path / 'shared.sqlite'}"
    own_key = {"WEBHOOK_SECRETS_KEY": "webhook-secrets-key-from-the-environment-0123"}
    first = make_app(DATABASE_URL=url, **own_key, **fast_webhooks(server, WEBHOOK_DELIVERY_AUTOSTART=False))
    client = logged_in_client(first)
    endpoint_id, _ = create_endpoint_via_page(client, f"{server.url}/hook")
    _test_event(client, endpoint_id)
    # The session key is rotated (or read from a stolen instance folder): endpoint secrets do not depend on it.
    rotated = make_app(DATABASE_URL=url, SECRET_KEY="a-rotated-session-signing-key-0123456789", **own_key,
                       **fast_webhooks(server, WEBHOOK_DELIVERY_AUTOSTART=False))
    assert dispatcher.run_due(rotated) == 1 and server.hits["/hook"] == 1
    _test_event(logged_in_client(rotated), endpoint_id)
    other = make_app(DATABASE_URL=url, WEBHOOK_SECRETS_KEY="another-webhook-secrets-key-0123456789ab",
                     **fast_webhooks(server, WEBHOOK_DELIVERY_AUTOSTART=False))
    assert dispatcher.run_due(other) == 1
    assert "WEBHOOK_SECRETS_KEY geändert" in attempts_of(other, endpoint_id)[-1].error
    assert server.hits["/hook"] == 1
