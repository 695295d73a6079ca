"""Access to /admin: the auth matrix, CSRF, login limits, cookies, headers, CLI."""

from __future__ import annotations

from pathlib import Path

import pytest
from flask import Flask

from conftest import ADMIN_PASSWORD, ADMIN_USER, API_TOKEN, create_admin, csrf_token_of
from job_queue import job_queue
from views.accounts import create_api_token, ensure_first_admin, revoke_api_token

JSON = {"Accept": "application/json"}
HTML = {"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"}


def routes(app: Flask) -> list[tuple[str, str, str]]:
    """Every admin route: (method, path, kind) with kind page, json or token-only."""
    with app.app_context():
        job_id = job_queue.enqueue(lambda job: None)
    return [
        ("GET", "/admin", "page"),
        ("GET", "/admin/jobs", "json"),
        ("GET", f"/admin/job_status/{job_id}", "json"),
        ("POST", "/admin/run_scraper", "json"),
        ("POST", "/admin/run_payback", "json"),
        ("POST", "/admin/run_miles_and_more", "json"),
        ("POST", "/admin/maintenance/clear_old_jobs", "token-only"),
    ]


def call(client, method: str, path: str, headers: dict | None = None, **kwargs):
    return client.open(path, method=method, headers={**JSON, **(headers or {})}, **kwargs)


def assert_refused(response, kind: str) -> None:
    if kind == "page":
        assert response.status_code == 302
        assert response.headers["Location"].startswith("/admin/login")
    else:
        assert response.status_code == 401, response.get_data(as_text=True)
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
        assert response.json["error"]


def test_without_credentials_everything_is_refused(app: Flask) -> None:
    client = app.test_client()
    for method, path, kind in routes(app):
        assert_refused(call(client, method, path), kind)


def test_wrong_password_and_unknown_user_get_the_same_answer(app: Flask) -> None:
    create_admin(app)
    client = app.test_client()
    answers = []
    for username, password in [(ADMIN_USER, "falsch-falsch-falsch"), ("niemand", ADMIN_PASSWORD)]:
        response = client.post("/admin/login", data={
            "username": username, "password": password, "csrf_token": csrf_token_of(client)})
        page = response.get_data(as_text=True)
        answers.append((response.status_code, "Benutzername oder Passwort falsch." in page))
    assert answers == [(401, True), (401, True)]
    for method, path, kind in routes(app):
        assert_refused(call(client, method, path), kind)


def test_revoked_token_is_refused(app: Flask) -> None:
    with app.app_context():
        token = create_api_token("cron")
        assert revoke_api_token("cron")
    client = app.test_client()
    for method, path, kind in routes(app):
        response = call(client, method, path, {"Authorization": f"Bearer {token}"})
        assert_refused(response, kind)


@pytest.mark.parametrize("bad", ["Bearer nicht-das-token", "Bearer ", "Basic YWRtaW46YWRtaW4=",
                                 f"Bearer {API_TOKEN}x", "Bearer 1.erfunden"])
def test_wrong_tokens_are_refused(app: Flask, bad: str) -> None:
    client = app.test_client()
    for method, path, kind in routes(app):
        if kind != "page":
            assert_refused(call(client, method, path, {"Authorization": bad}), kind)


@pytest.mark.parametrize("param", ["token", "access_token", "api_key", "auth"])
def test_token_in_the_query_string_is_refused(app: Flask, admin_client, param: str) -> None:
    for method, path, _ in routes(app):
        for client in (app.test_client(), admin_client):
            response = call(client, method, f"{path}?{param}={API_TOKEN}",
                            {"X-CSRFToken": admin_client.csrf_token})
            assert response.status_code == 400
            message = response.json["error"] if response.is_json else response.get_data(as_text=True)
            assert "Authorization-Header" in message


def test_session_cookie_is_not_enough_for_the_maintenance_route(admin_client) -> None:
    response = call(admin_client, "POST", "/admin/maintenance/clear_old_jobs",
                    {"X-CSRFToken": admin_client.csrf_token})
    assert response.status_code == 401
    assert "API-Token" in response.json["error"]


def test_valid_credentials_are_allowed(app: Flask, admin_client) -> None:
    with app.app_context():
        issued = create_api_token("deploy")
    expected = {"page": 200, "json": None, "token-only": 200}
    for method, path, kind in routes(app):
        ok = {"GET": 200, "POST": 202}[method] if kind == "json" else expected[kind]
        if kind != "token-only":
            response = call(admin_client, method, path, {"X-CSRFToken": admin_client.csrf_token})
            assert response.status_code == ok, (path, response.get_data(as_text=True))
        if kind != "page":
            for token in (API_TOKEN, issued):
                response = call(app.test_client(), method, path, {"Authorization": f"Bearer {token}"})
                if ok == 202:  # one run per scraper: the first call queued it, later ones get that job
                    assert (response.status_code, response.json.get("existing")) == (200, True), path
                else:
                    assert response.status_code == ok, (path, response.get_data(as_text=True))


def test_login_redirects_back_but_never_off_site(app: Flask) -> None:
    create_admin(app)
    client = app.test_client()
    for target, landing in [("/admin/jobs", "/admin/jobs"), ("https://evil.example/", "/admin"),
                            ("//evil.example/", "/admin")]:
        response = client.post(f"/admin/login?next={target}", data={
            "username": ADMIN_USER, "password": ADMIN_PASSWORD, "csrf_token": csrf_token_of(client)})
        assert response.headers["Location"] == landing
        client.post("/admin/logout", data={"csrf_token": csrf_token_of(client)})


# -- CSRF ---------------------------------------------------------------------------

def browser_posts(admin_client) -> list[tuple[str, dict]]:
    return [
        ("/admin/run_scraper", JSON),
        ("/admin/run_payback", JSON),
        ("/admin/run_miles_and_more", JSON),
        ("/admin/run_scraper", HTML),
        ("/admin/logout", HTML),
    ]


def test_browser_posts_without_csrf_token_are_refused(admin_client) -> None:
    for path, headers in browser_posts(admin_client):
        for extra in ({}, {"X-CSRFToken": "falsch"}):
            response = admin_client.post(path, headers={**headers, **extra})
            assert response.status_code == 400, path
            text = response.get_data(as_text=True)
            assert "Sicherheitstoken" in (response.json["error"] if response.is_json else text)
    # still logged in: the refused logout did nothing
    assert admin_client.get("/admin", headers=HTML).status_code == 200


def test_browser_posts_with_csrf_token_are_accepted(admin_client) -> None:
    for path, headers in browser_posts(admin_client):
        response = admin_client.post(path, headers={**headers, "X-CSRFToken": admin_client.csrf_token})
        assert response.status_code in (202, 302), path
    assert admin_client.get("/admin", headers=HTML).status_code == 302  # the accepted logout took effect


def test_login_form_without_csrf_token_is_refused(app: Flask) -> None:
    create_admin(app)
    response = app.test_client().post(
        "/admin/login", data={"username": ADMIN_USER, "password": ADMIN_PASSWORD}, headers=HTML)
    assert response.status_code == 400 and "Sicherheitstoken" in response.get_data(as_text=True)


# -- login rate limits -------------------------------------------------------------

def test_login_attempts_are_limited_per_user(app: Flask) -> None:
    create_admin(app)
    client = app.test_client()
    token = csrf_token_of(client)
    codes = [client.post("/admin/login", data={"username": ADMIN_USER, "password": "falsch-falsch",
                                                "csrf_token": token}).status_code for _ in range(6)]
    assert codes == [401] * 5 + [429]
    # even the right password waits now: guessing cannot go on
    right = client.post("/admin/login", data={"username": ADMIN_USER, "password": ADMIN_PASSWORD,
                                              "csrf_token": token})
    assert right.status_code == 429 and "Zu viele" in right.get_data(as_text=True)


def test_login_attempts_are_limited_per_ip(app: Flask) -> None:
    client = app.test_client()
    token = csrf_token_of(client)
    codes = [client.post("/admin/login", data={"username": f"user{n}", "password": "x" * 12,
                                                "csrf_token": token}).status_code for n in range(11)]
    assert codes == [401] * 10 + [429]


# -- cookies and headers -------------------------------------------------------------

def login_response(app: Flask, base_url: str):
    create_admin(app)
    client = app.test_client()
    page = client.get("/admin/login", base_url=base_url).get_data(as_text=True)
    token = page.split('name="csrf-token" content="', 1)[1].split('"', 1)[0]
    # Over HTTPS Flask-WTF also checks that the Referer is our own origin, as browsers send it.
    return client.post("/admin/login", base_url=base_url, headers={"Referer": f"{base_url}/admin/login"},
                       data={"username": ADMIN_USER, "password": ADMIN_PASSWORD, "csrf_token": token})


def test_session_cookie_flags_over_http_and_https(app: Flask) -> None:
    plain = login_response(app, "http://localhost").headers["Set-Cookie"]
    assert "HttpOnly" in plain and "SameSite=Lax" in plain and "Secure" not in plain
    secure = login_response(app, "https://localhost").headers["Set-Cookie"]
    assert "HttpOnly" in secure and "SameSite=Lax" in secure and "Secure" in secure


@pytest.mark.parametrize("path", ["/", "/admin/jobs", "/static/admin.js", "/admin/login"])
def test_security_headers_on_pages_json_and_static_files(client, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 200
    csp = response.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp
    assert "unsafe-inline" not in csp and "http" not in csp  # no third-party origin
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["Referrer-Policy"] == "strict-origin-when-cross-origin"
    assert "Strict-Transport-Security" not in response.headers
    assert "max-age=" in client.get(path, base_url="https://localhost").headers["Strict-Transport-Security"]


def test_templates_have_no_inline_script_or_style() -> None:
    for template in Path(__file__).resolve().parent.parent.glob("templates/*.html"):
        text = template.read_text()
        assert "<script>" not in text and "<style" not in text and "style=" not in text, template
        assert "| safe" not in text and "|safe" not in text, template


# -- first run and CLI ----------------------------------------------------------------

def test_first_start_creates_one_admin_with_a_password_in_a_private_file(app: Flask, capsys) -> None:
    with app.app_context():
        password = ensure_first_admin()
        assert password and len(password) >= 16
        assert ensure_first_admin() is None  # only ever once
    printed = capsys.readouterr()
    password_file = Path(app.instance_path) / "initial-admin-password"
    assert password not in printed.out + printed.err
    assert "Erster Start: Admin-Zugang angelegt" in printed.err and str(password_file) in printed.err
    assert password_file.read_text().strip() == password
    assert oct(password_file.stat().st_mode & 0o777) == "0o600"
    client = app.test_client()
    response = client.post("/admin/login", data={
        "username": "admin", "password": password, "csrf_token": csrf_token_of(client)})
    assert response.status_code == 302
    assert not password_file.exists()  # used once: gone


def test_cli_creates_admins_and_tokens(app: Flask) -> None:
    runner = app.test_cli_runner()
    result = runner.invoke(args=["create-admin", "erika", "--password-stdin"], input="kurz\n")
    assert result.exit_code != 0 and "mindestens 12" in result.output
    result = runner.invoke(args=["create-admin", "erika", "--password-stdin"], input="lang-genug-fuer-erika\n")
    assert result.exit_code == 0
    token = runner.invoke(args=["create-token", "cron"]).output.strip()
    client = app.test_client()
    ok = client.post("/admin/maintenance/clear_old_jobs", headers={"Authorization": f"Bearer {token}"})
    assert ok.status_code == 200
    assert "cron\taktiv" in runner.invoke(args=["list-tokens"]).output
    assert runner.invoke(args=["revoke-token", "cron"]).exit_code == 0
    refused = client.post("/admin/maintenance/clear_old_jobs", headers={"Authorization": f"Bearer {token}"})
    assert refused.status_code == 401
    assert runner.invoke(args=["create-token", "cron"]).exit_code != 0  # names stay unique


def test_short_admin_api_token_is_rejected_at_start(make_app) -> None:
    with pytest.raises(ValueError, match="ADMIN_API_TOKEN"):
        make_app(ADMIN_API_TOKEN="kurz")


def test_secret_key_is_generated_once_into_the_instance_folder(tmp_path: Path) -> None:
    from app import create_app

    config = {"DATABASE_URL": f"sqlite:///{tmp_path / 'x.sqlite'}", "TESTING": True}
    first = create_app(config, instance_path=str(tmp_path / "instance"))
    second = create_app(config, instance_path=str(tmp_path / "instance"))
    key_file = tmp_path / "instance" / "secret_key"
    assert first.config["SECRET_KEY"] == second.config["SECRET_KEY"] == key_file.read_text().strip()
    assert len(first.config["SECRET_KEY"]) >= 32
    assert oct(key_file.stat().st_mode & 0o777) == "0o600"
