"""Credentials stay in headers: CSRF exemption only for a valid bearer token, no token in any URL or log."""

from __future__ import annotations

import logging
import urllib.error
import urllib.request
from urllib.parse import quote

import pytest
from flask import Flask

from conftest import API_TOKEN
from views.accounts import create_api_token

JSON = {"Accept": "application/json"}
HTML = {"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"}


# -- CSRF exemption --------------------------------------------------------------------

@pytest.mark.parametrize("junk", ["Bearer nicht-das-token", "Bearer ", "Bearer 1.erfunden"])
def test_logout_with_a_junk_bearer_and_no_csrf_token_is_refused(admin_client, junk: str) -> None:
    response = admin_client.post("/admin/logout", headers={**HTML, "Authorization": junk})
    assert response.status_code == 400 and "Sicherheitstoken" in response.get_data(as_text=True)
    assert admin_client.get("/admin", headers=HTML).status_code == 200  # still logged in


def test_a_session_request_with_a_junk_bearer_header_still_needs_its_csrf_token(admin_client) -> None:
    # A junk token on a JSON route is refused as a token; it never turns into a CSRF-free session request.
    junk = {**JSON, "Authorization": "Bearer nicht-das-token"}
    assert admin_client.post("/admin/run_scraper", headers=junk).status_code == 401
    assert admin_client.post("/admin/run_scraper", headers=JSON).status_code == 400


def test_a_valid_bearer_token_needs_no_csrf_token(client) -> None:
    assert client.post("/admin/run_scraper", headers=JSON).status_code == 202


# -- tokens in URLs --------------------------------------------------------------------------

def issued_token(app: Flask) -> str:
    with app.app_context():
        return create_api_token("laptop")


@pytest.mark.parametrize("path", ["/admin", "/admin/jobs", "/", "/admin/login"])
def test_a_token_in_any_query_parameter_is_refused_and_not_echoed(app: Flask, path: str) -> None:
    token = issued_token(app)
    client = app.test_client()
    for name in ("t", "q", "x"):
        for secret in (token, API_TOKEN, "17." + "A" * 43):  # issued, configured, token-shaped
            response = client.get(f"{path}?{name}={quote(secret)}", headers=HTML)
            assert response.status_code == 400, (path, name)
            assert secret not in response.headers.get("Location", "")
            assert secret not in response.get_data(as_text=True)


def test_a_token_hidden_in_the_next_parameter_is_refused(app: Flask) -> None:
    token = issued_token(app)
    for url in (f"/admin/login?next={quote('/admin?t=' + token)}",
                f"/admin/login?next={quote(quote('/admin?t=' + token))}"):  # encoded twice
        response = app.test_client().get(url, headers=HTML)
        assert response.status_code == 400
        assert token not in response.headers.get("Location", "")


def test_an_ordinary_query_still_works(app: Flask, admin_client) -> None:
    assert app.test_client().get("/?q=otto").status_code == 200
    assert admin_client.get("/admin/login?next=/admin/jobs").status_code == 302


def test_a_token_in_the_url_never_reaches_the_access_log(app: Flask, live_server, caplog) -> None:
    token = issued_token(app)
    server = live_server(app)
    caplog.set_level(logging.INFO)
    for url in (f"{server.url}/admin?t={token}", f"{server.url}/admin?next=/x%3Ft%3D{quote(token)}",
                f"{server.url}/admin/jobs?token=kurz"):
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(url, timeout=10)
        assert refused.value.code == 400
        assert token not in refused.value.headers.get("Location", "")
    access_lines = [record.getMessage() for record in caplog.records if record.name == "werkzeug"]
    assert len([line for line in access_lines if " 400 " in line]) == 3  # logged, just without the secret
    assert all(token not in line and "kurz" not in line for line in access_lines), access_lines
    assert not any(token in record.getMessage() for record in caplog.records)


def test_an_ordinary_query_is_logged_as_it_was(app: Flask, live_server, caplog) -> None:
    server = live_server(app)
    caplog.set_level(logging.INFO)
    urllib.request.urlopen(f"{server.url}/?q=otto", timeout=10).close()
    assert any("/?q=otto" in record.getMessage() for record in caplog.records if record.name == "werkzeug")
