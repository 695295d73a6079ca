"""What every visitor gets: no cookie for reading the site, no server or Python version in headers."""

from __future__ import annotations

import os
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from flask import Flask

from conftest import free_port, serving_process
from job_queue import job_queue
from models import db
from scrapers.example import scrape_example

VERSIONED = ("Werkzeug", "Python", "Flask", "/")


def shop_id(app: Flask) -> int:
    from models import Shop

    with app.app_context():
        job_queue.enqueue(scrape_example)
        job_queue.run_pending()
        return db.session.scalars(db.select(Shop.id)).first()


def test_anonymous_page_views_set_no_cookie(app: Flask) -> None:
    client = app.test_client()
    for path in ("/", f"/shop/{shop_id(app)}", "/?q=otto", "/static/style.css"):
        response = client.get(path)
        assert response.status_code == 200, path
        assert "Set-Cookie" not in response.headers, path
    assert client.get_cookie("session") is None


def test_the_login_page_still_sets_its_csrf_cookie(app: Flask) -> None:
    response = app.test_client().get("/admin/login")
    assert "session=" in response.headers["Set-Cookie"]


def test_the_development_server_names_no_versions(app: Flask, live_server) -> None:
    server = live_server(app)
    with urllib.request.urlopen(f"{server.url}/", timeout=10) as response:
        header = response.headers.get("Server", "")
    assert header and not any(word in header for word in VERSIONED), header


def test_gunicorn_as_the_readme_runs_it_names_no_versions_and_logs_no_token(tmp_path: Path) -> None:
    port, access_log = free_port(), tmp_path / "access.log"
    env = dict(os.environ, DATABASE_URL=f"sqlite:///{tmp_path / 'web.sqlite'}", SECRET_KEY="test-only-secret-key-0123456789abcdef",
               INSTANCE_PATH=str(tmp_path / "instance"), JOBS_RUN_IN_WEB="0")
    command = [sys.executable, "-m", "gunicorn", "-w", "1", "--threads", "4", "-b", f"127.0.0.1:{port}",
               "--access-logfile", str(access_log), "app:create_web_app()"]
    token_shaped = "17." + "A" * 43
    with serving_process(command, env, f"http://127.0.0.1:{port}/"):
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=10) as response:
            header = response.headers.get_all("Server") or []
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/admin?t={token_shaped}", timeout=10)
        assert refused.value.code == 400
    assert header and not any(word in value for value in header for word in VERSIONED), header
    logged = access_log.read_text()
    assert '"GET /admin?[entfernt] HTTP/1.1" 400' in logged and token_shaped not in logged, logged
