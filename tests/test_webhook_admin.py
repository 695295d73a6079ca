"""The webhook admin pages: login and CSRF, the secret shown once and stored encrypted, editing, testing."""

from __future__ import annotations

import json
import logging
import re
from typing import Callable

import pytest
import sqlalchemy as sa
from flask import Flask

from conftest import API_TOKEN, csrf_token_of, logged_in_client
from models import db
from scripted_server import Reply, ScriptedServer
from test_webhook_signing import independent_verify
from webhook_helpers import attempts_of, create_endpoint_via_page, deliveries_of, endpoint_row, fast_webhooks
from webhooks import dispatcher


@pytest.fixture
def hook_app(make_app: Callable[..., Flask], server: ScriptedServer) -> Flask:
    """An app whose delivery runs only when the test says so (``dispatcher.run_due``)."""
    return make_app(**fast_webhooks(server, WEBHOOK_DELIVERY_AUTOSTART=False))


@pytest.fixture
def hook_client(hook_app: Flask):
    return logged_in_client(hook_app)


def _all_stored_text(app: Flask) -> str:
    with app.app_context():
        with db.engine.connect() as conn:
            rows = [conn.execute(sa.text(f"SELECT * FROM {table}")).all()
                    for table in ("webhook_endpoint", "webhook_delivery", "webhook_attempt")]
    return repr(rows)


def test_pages_need_a_login_and_no_token_opens_them(hook_app: Flask) -> None:
    anonymous = hook_app.test_client()
    response = anonymous.get("/admin/webhooks")
    assert response.status_code == 302 and "/admin/login" in response.headers["Location"]
    with_token = hook_app.test_client()
    response = with_token.get("/admin/webhooks", headers={"Authorization": f"Bearer {API_TOKEN}"})
    assert response.status_code == 302  # pages are for the logged-in admin only
    response = anonymous.post("/admin/webhooks", data={"url": "https://example.org/h", "events": "completed",
                                                       "csrf_token": csrf_token_of(anonymous)})
    assert response.status_code == 302 and "/admin/login" in response.headers["Location"]
    assert deliveries_of(hook_app) == [] and "example.org" not in _all_stored_text(hook_app)


def test_a_post_without_the_csrf_token_is_refused(hook_app: Flask, hook_client) -> None:
    response = hook_client.post("/admin/webhooks", data={"url": "https://example.org/h", "events": "completed",
                                                         "enabled": "1"})
    assert response.status_code == 400
    assert "example.org" not in _all_stored_text(hook_app)


def test_the_admin_page_links_to_the_webhooks(hook_client) -> None:
    page = hook_client.get("/admin").get_data(as_text=True)
    assert 'href="/admin/webhooks"' in page


def test_the_secret_is_shown_once_and_stored_only_encrypted(hook_app: Flask, hook_client,
                                                            caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    response = hook_client.post("/admin/webhooks", data={
        "url": "https://example.org/hooks", "events": ["completed", "failed"], "enabled": "1",
        "csrf_token": hook_client.csrf_token})
    page = response.get_data(as_text=True)
    assert response.status_code == 200 and response.headers["Cache-Control"] == "no-store"
    secret = re.search(r'<code id="new-secret">(whsec_[^<]+)</code>', page).group(1)
    endpoint_id = int(re.search(r'/admin/webhooks/(\d+)">Zum neuen Endpunkt', page).group(1))
    key = secret[len("whsec_"):]

    assert key not in _all_stored_text(hook_app)
    for later in ("/admin/webhooks", f"/admin/webhooks/{endpoint_id}", "/admin"):
        assert key not in hook_client.get(later).get_data(as_text=True), later
    assert key not in caplog.text
    with hook_app.app_context():
        box = dispatcher.state().box
        assert box.open(endpoint_row(hook_app, endpoint_id).secret_encrypted) == secret
    endpoint = endpoint_row(hook_app, endpoint_id)
    assert (endpoint.url, endpoint.event_names, endpoint.enabled) == (
        "https://example.org/hooks", ["completed", "failed"], True)


def test_a_renewed_secret_is_shown_once_and_replaces_the_old_one(hook_app: Flask, hook_client) -> None:
    endpoint_id, old = create_endpoint_via_page(hook_client, "https://example.org/hooks")
    response = hook_client.post(f"/admin/webhooks/{endpoint_id}/secret", data={"csrf_token": hook_client.csrf_token})
    new = re.search(r'<code id="new-secret">(whsec_[^<]+)</code>', response.get_data(as_text=True)).group(1)
    assert new != old and response.headers["Cache-Control"] == "no-store"
    assert new[6:] not in hook_client.get(f"/admin/webhooks/{endpoint_id}").get_data(as_text=True)
    with hook_app.app_context():
        assert dispatcher.state().box.open(endpoint_row(hook_app, endpoint_id).secret_encrypted) == new


def test_urls_are_escaped_on_every_page(hook_client) -> None:
    url = "https://example.org/h?q=<script>alert(1)</script>"
    endpoint_id, _ = create_endpoint_via_page(hook_client, url)
    for page in (hook_client.get("/admin/webhooks"), hook_client.get(f"/admin/webhooks/{endpoint_id}")):
        text = page.get_data(as_text=True)
        assert "<script>alert(1)" not in text and "&lt;script&gt;alert(1)&lt;/script&gt;" in text
        # CSP 'self' only: no inline script or style on the page
        assert re.search(r"<script(?![^>]*\bsrc=)", text) is None and " style=" not in text and "<style" not in text
        assert "default-src 'self'" in page.headers["Content-Security-Policy"]


@pytest.mark.parametrize("url, events, expected", [
    ("ftp://example.org/hook", ["completed"], "Nur http- und https-Adressen"),
    ("javascript:alert(1)", ["completed"], "Nur http- und https-Adressen"),
    ("https:///no-host", ["completed"], "keinen Host"),
    ("", ["completed"], "Bitte eine URL angeben"),
    ("https://example.org/hook", [], "mindestens ein Ereignis"),
    ("https://example.org/hook", ["bogus"], "mindestens ein Ereignis"),
])
def test_bad_input_gets_a_german_message_and_stores_nothing(hook_app: Flask, hook_client, url: str,
                                                             events: list[str], expected: str) -> None:
    response = hook_client.post("/admin/webhooks", data={"url": url, "events": events, "enabled": "1",
                                                         "csrf_token": hook_client.csrf_token})
    assert response.status_code == 400 and expected in response.get_data(as_text=True)
    with hook_app.app_context():
        assert db.session.execute(sa.text("SELECT count(*) FROM webhook_endpoint")).scalar() == 0


def test_edit_switch_and_delete(hook_app: Flask, hook_client, server: ScriptedServer) -> None:
    endpoint_id, _ = create_endpoint_via_page(hook_client, "https://example.org/a")
    response = hook_client.post(f"/admin/webhooks/{endpoint_id}", data={
        "url": "https://example.org/b", "events": ["cancelled"], "csrf_token": hook_client.csrf_token})
    assert response.status_code == 302
    endpoint = endpoint_row(hook_app, endpoint_id)
    assert (endpoint.url, endpoint.event_names, endpoint.enabled) == ("https://example.org/b", ["cancelled"], False)
    assert "deaktiviert" in hook_client.get(f"/admin/webhooks/{endpoint_id}").get_data(as_text=True)

    hook_client.post(f"/admin/webhooks/{endpoint_id}/enabled", data={"enabled": "1",
                                                                     "csrf_token": hook_client.csrf_token})
    assert endpoint_row(hook_app, endpoint_id).enabled is True
    hook_client.post(f"/admin/webhooks/{endpoint_id}/enabled", data={"enabled": "0",
                                                                     "csrf_token": hook_client.csrf_token})
    assert endpoint_row(hook_app, endpoint_id).enabled is False

    # a bad edit keeps what was stored
    response = hook_client.post(f"/admin/webhooks/{endpoint_id}", data={
        "url": "file:///etc/passwd", "events": ["failed"], "csrf_token": hook_client.csrf_token})
    assert response.status_code == 400 and "Nur http- und https-Adressen" in response.get_data(as_text=True)
    assert endpoint_row(hook_app, endpoint_id).url == "https://example.org/b"

    hook_client.post(f"/admin/webhooks/{endpoint_id}/test", data={"csrf_token": hook_client.csrf_token})
    assert len(deliveries_of(hook_app, endpoint_id)) == 1
    response = hook_client.post(f"/admin/webhooks/{endpoint_id}/delete", data={"csrf_token": hook_client.csrf_token})
    assert response.status_code == 302
    assert endpoint_row(hook_app, endpoint_id) is None and deliveries_of(hook_app) == []
    assert hook_client.get(f"/admin/webhooks/{endpoint_id}").status_code == 404


def test_the_test_button_sends_a_signed_event_and_shows_the_attempt(hook_app: Flask, hook_client,
                                                                     server: ScriptedServer) -> None:
    server.route("/hook", Reply(204, b""))
    endpoint_id, secret = create_endpoint_via_page(hook_client, f"{server.url}/hook", events=("failed",))
    response = hook_client.post(f"/admin/webhooks/{endpoint_id}/test", data={"csrf_token": hook_client.csrf_token})
    assert response.status_code == 302
    assert dispatcher.run_due(hook_app) == 1

    [post] = server.wait_for_posts(1, timeout=5)
    assert independent_verify(secret, post.headers, post.body)
    message = json.loads(post.body)
    assert message["type"] == "webhook.test" and message["data"]["endpoint_id"] == endpoint_id
    [attempt] = attempts_of(hook_app, endpoint_id)
    assert (attempt.status_code, attempt.error, attempt.number) == (204, None, 1)
    page = hook_client.get(f"/admin/webhooks/{endpoint_id}").get_data(as_text=True)
    attempts_table = page.split('id="webhook-attempts"', 1)[1].split("</table>", 1)[0]
    assert "<td>204</td>" in attempts_table and f"<td>{attempt.duration_ms} ms</td>" in attempts_table
    assert "zugestellt" in page
    assert "204" in hook_client.get("/admin/webhooks").get_data(as_text=True)  # the newest attempt in the list


def test_saving_a_literal_internal_address_warns_at_once(hook_client) -> None:
    response = hook_client.post("/admin/webhooks", data={
        "url": "http://169.254.169.254/latest/meta-data", "events": ["completed"], "enabled": "1",
        "csrf_token": hook_client.csrf_token})
    page = response.get_data(as_text=True)
    assert response.status_code == 200
    assert "interne Adresse 169.254.169.254 (Link-Local)" in page and "WEBHOOK_ALLOWED_HOSTS" in page


def test_admin_changes_to_an_endpoint_wait_for_the_write_lock_under_delivery_load(
    make_app: Callable[..., Flask], server: ScriptedServer, tmp_path,
) -> None:
    """SQLite: a page that reads the endpoint and then writes must lock up front, or a delivery's commit in
    between makes its write fail at once ("database is locked", a 503) instead of waiting its turn."""
    import sqlite3
    import threading
    import time

    server.route("/hook", Reply(200))
    path = tmp_path / "shared.sqlite"
    app = make_app(DATABASE_URL=f"sqlite:///{path}", **fast_webhooks(server, WEBHOOK_DELIVERY_AUTOSTART=False))
    client = logged_in_client(app)
    endpoint_id, _ = create_endpoint_via_page(client, f"{server.url}/hook")
    stop = threading.Event()

    def delivery_load() -> None:  # commits as often as busy delivery threads record attempts
        connection = sqlite3.connect(path, timeout=10, isolation_level=None)
        while not stop.is_set():
            connection.execute("BEGIN IMMEDIATE")
            connection.execute("UPDATE webhook_endpoint SET created_at = created_at WHERE id = ?", (endpoint_id,))
            connection.execute("COMMIT")
            time.sleep(0.001)
        connection.close()

    load = threading.Thread(target=delivery_load)
    load.start()
    try:
        codes = []
        for turn in range(20):
            response = client.post(f"/admin/webhooks/{endpoint_id}/enabled",
                                   data={"enabled": str(turn % 2), "csrf_token": client.csrf_token})
            codes.append(response.status_code)
    finally:
        stop.set()
        load.join()
    assert codes == [302] * 20, codes
