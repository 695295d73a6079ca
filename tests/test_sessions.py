"""Sessions end on the server: logout, a password change, lifetime and idle time; CSRF ends with them."""

from __future__ import annotations

import pytest
from flask import Flask

from conftest import ADMIN_PASSWORD, ADMIN_USER, API_TOKEN, create_admin, csrf_token_of
from views import sessions

JSON = {"Accept": "application/json"}
HOUR = 3600.0


def log_in(app: Flask, client=None):
    client = client or app.test_client()
    response = client.post("/admin/login", data={
        "username": ADMIN_USER, "password": ADMIN_PASSWORD, "csrf_token": csrf_token_of(client)})
    assert response.status_code == 302
    client.csrf_token = csrf_token_of(client)
    return client


def replay(app: Flask, cookie: str):
    """A second browser (the attacker's) holding a copy of the session cookie."""
    attacker = app.test_client()
    attacker.set_cookie("session", cookie)
    return attacker


def assert_session_works(client, csrf_token: str) -> None:
    assert client.get("/admin/jobs", headers=JSON).status_code == 200
    assert client.post("/admin/run_scraper", headers={**JSON, "X-CSRFToken": csrf_token}).status_code == 202


def assert_session_refused(client, csrf_token: str) -> None:
    started = client.post("/admin/run_scraper", headers={**JSON, "X-CSRFToken": csrf_token})
    assert started.status_code == 401, started.get_data(as_text=True)
    assert client.get("/admin/jobs", headers=JSON).status_code == 401
    page = client.get("/admin")
    assert page.status_code == 302 and page.headers["Location"].startswith("/admin/login")


def test_cookie_replayed_after_logout_is_refused(app: Flask) -> None:
    create_admin(app)
    browser = log_in(app)
    cookie, token = browser.get_cookie("session").value, browser.csrf_token
    assert_session_works(replay(app, cookie), token)  # the copy works while the session lives

    assert browser.post("/admin/logout", data={"csrf_token": token}).status_code == 302
    assert_session_refused(replay(app, cookie), token)


def test_cookie_replayed_after_a_password_change_is_refused(app: Flask) -> None:
    create_admin(app)
    browser = log_in(app)
    cookie, token = browser.get_cookie("session").value, browser.csrf_token
    changed = app.test_cli_runner().invoke(args=["create-admin", ADMIN_USER, "--password-stdin"],
                                                 input="ganz-neues-Passwort-7\n")
    assert changed.exit_code == 0, changed.output
    assert_session_refused(browser, token)
    assert_session_refused(replay(app, cookie), token)


def test_logout_ends_the_admins_other_sessions_too(app: Flask) -> None:
    create_admin(app)
    laptop, phone = log_in(app), log_in(app)
    laptop.post("/admin/logout", data={"csrf_token": laptop.csrf_token})
    assert_session_refused(phone, phone.csrf_token)


def test_the_csrf_token_ends_with_its_session(app: Flask) -> None:
    create_admin(app)
    browser = log_in(app)
    old_token = browser.csrf_token
    browser.post("/admin/logout", data={"csrf_token": old_token})
    log_in(app, browser)  # the same browser, a new session: the old page's token does not carry over
    response = browser.post("/admin/run_scraper", headers={**JSON, "X-CSRFToken": old_token})
    assert response.status_code == 400 and "Sicherheitstoken" in response.json["error"]
    assert browser.post("/admin/run_scraper", headers={**JSON, "X-CSRFToken": browser.csrf_token}).status_code == 202


def test_login_replaces_the_anonymous_csrf_token(app: Flask) -> None:
    create_admin(app)
    client = app.test_client()
    before_login = csrf_token_of(client)
    client.post("/admin/login", data={"username": ADMIN_USER, "password": ADMIN_PASSWORD,
                                      "csrf_token": before_login})
    response = client.post("/admin/run_scraper", headers={**JSON, "X-CSRFToken": before_login})
    assert response.status_code == 400


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The sessions' wall clock, moved by the test: ``clock[0] += HOUR``."""
    moment = [1_800_000_000.0]
    monkeypatch.setattr(sessions, "now", lambda: moment[0])
    return moment


def test_a_session_ends_after_its_absolute_lifetime_however_busy(app: Flask, clock: list[float]) -> None:
    create_admin(app)
    browser = log_in(app)
    login_at = clock[0]
    for _ in range(14):  # active every 50 minutes: never idle, for 11 h 40 min
        clock[0] += 50 * 60
        assert browser.get("/admin/jobs", headers=JSON).status_code == 200
    clock[0] = login_at + 12 * HOUR - 60
    assert browser.get("/admin/jobs", headers=JSON).status_code == 200
    clock[0] = login_at + 12 * HOUR + 60
    assert browser.get("/admin/jobs", headers=JSON).status_code == 401
    page = browser.get("/admin", follow_redirects=True).get_data(as_text=True)
    assert "Sitzung abgelaufen" in page


def test_an_idle_session_ends_after_the_idle_timeout(app: Flask, clock: list[float]) -> None:
    create_admin(app)
    browser = log_in(app)
    clock[0] += 59 * 60
    assert browser.get("/admin/jobs", headers=JSON).status_code == 200  # activity resets the idle clock
    clock[0] += 59 * 60
    assert browser.get("/admin/jobs", headers=JSON).status_code == 200
    clock[0] += 61 * 60
    assert browser.get("/admin/jobs", headers=JSON).status_code == 401


def test_lifetime_and_idle_timeout_come_from_the_config(make_app, clock: list[float]) -> None:
    app = make_app(SESSION_LIFETIME_SECONDS=600, SESSION_IDLE_TIMEOUT_SECONDS=120)
    create_admin(app)
    browser = log_in(app)
    clock[0] += 119
    assert browser.get("/admin/jobs", headers=JSON).status_code == 200
    clock[0] += 121
    assert browser.get("/admin/jobs", headers=JSON).status_code == 401


def test_a_bearer_request_gets_no_session_to_outlive_its_token(app: Flask) -> None:
    client = app.test_client()
    html = {"Authorization": f"Bearer {API_TOKEN}", "Accept": "text/html"}
    response = client.post("/admin/run_scraper", headers=html)  # a form-style answer with a flash
    assert response.status_code == 302
    assert "Set-Cookie" not in response.headers
