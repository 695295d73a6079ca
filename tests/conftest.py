"""Shared fixtures: a fresh app and database per test, and a loopback web server."""

from __future__ import annotations

import functools
import os
import re
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest
from flask import Flask
from werkzeug.serving import make_server

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))  # helpers shared with benchmarks

import database  # noqa: E402
import jobs.connections  # noqa: E402
from app import create_app  # noqa: E402
from job_queue import job_queue  # noqa: E402
from models import db  # noqa: E402
from scripted_server import ScriptedServer  # noqa: E402
from sql_log import StatementLog  # noqa: E402
from webhooks import dispatcher as webhook_dispatcher  # noqa: E402

API_TOKEN = "test-api-token-0123456789abcdef"
ADMIN_USER, ADMIN_PASSWORD = "admin", "richtig-geheimes-passwort"

REPO = Path(__file__).resolve().parent.parent
# Processes the tests start (flask run, flask worker, gunicorn) keep their instance folder,
# with its secret key and first-start password, out of the repository's own instance/.
_SCRATCH_INSTANCE = tempfile.TemporaryDirectory(prefix="bonusvergleich-test-instance-")
os.environ["INSTANCE_PATH"] = _SCRATCH_INSTANCE.name

PG_SKIP_REASON = (
    "needs PostgreSQL: set TEST_DATABASE_URL=postgresql://postgres@127.0.0.1:5432/test "
    "(CI's .ci/run sets it)"
)


def base_config(tmp_path: Path, **overrides: Any) -> dict[str, Any]:
    config = {
        "TESTING": True,
        "SECRET_KEY": "test-only-secret-key-0123456789abcdef",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'test.sqlite'}",
        "JOBS_AUTOSTART": False,
        "EXAMPLE_PAGE_INTERVAL": 0.0,
        "SCRAPER_TIMEOUT": 5.0,
        "SCRAPER_MIN_INTERVAL": 0.0,
        "SCRAPER_SOURCES": "offline",
        "ADMIN_API_TOKEN": API_TOKEN,
    }
    config.update(overrides)
    return config


def pg_test_url() -> str:
    """The PostgreSQL test database as a SQLAlchemy URL, or skip the test.

    When pytest-xdist runs the suite in several processes, each gets a
    database of its own beside the given one (``test_gw0``, ...): the tests
    empty their database, so two processes must never share one.
    """
    url = os.environ.get("TEST_DATABASE_URL")
    if not url:
        pytest.skip(PG_SKIP_REASON)
    url = url.replace("postgresql://", "postgresql+psycopg://", 1) if url.startswith("postgresql://") else url
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    return _database_of_worker(url, worker) if worker else url


@functools.lru_cache(maxsize=None)
def _database_of_worker(url: str, worker: str) -> str:
    import sqlalchemy as sa

    base = sa.engine.make_url(url)
    mine = base.set(database=f"{base.database}_{worker}")
    engine = sa.create_engine(base, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        exists = conn.execute(sa.text("SELECT 1 FROM pg_database WHERE datname = :name"),
                              {"name": mine.database}).first()
        if exists is None:
            conn.execute(sa.text(f'CREATE DATABASE "{mine.database}"'))
    engine.dispose()
    return mine.render_as_string(hide_password=False)


def reset_database(url: str) -> None:
    """Start a test with an empty PostgreSQL database: no tables, no schema revision."""
    import sqlalchemy as sa

    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text("DROP SCHEMA public CASCADE"))
        conn.execute(sa.text("CREATE SCHEMA public"))
    engine.dispose()


def backdate(app: Flask, job_id: str, **fields: Any) -> None:
    """Set a job's timestamps (or other columns) in the database, as only a test may."""
    app.extensions["job_queue"].store.update_fields(job_id, fields)


def _dispose(app: Flask) -> None:
    with app.app_context():
        job_queue.stop(timeout=10)
        webhook_dispatcher.stop(app, timeout=10)
        app.extensions["job_queue"].store.engine.dispose()
        db.session.remove()
        db.engine.dispose()


@pytest.fixture
def make_app(tmp_path: Path) -> Iterator[Callable[..., Flask]]:
    """Build apps with test config plus overrides; tear them all down after."""
    apps: list[Flask] = []

    def factory(serving: bool = False, **overrides: Any) -> Flask:
        app = create_app(base_config(tmp_path, **overrides), instance_path=str(tmp_path / "instance"),
                         serving=serving)
        apps.append(app)
        return app

    yield factory
    for app in apps:
        _dispose(app)


@pytest.fixture(autouse=True, scope="session")
def repository_instance_stays_clean() -> Iterator[None]:
    """No test may leave a secret in the repository's own instance folder."""
    secrets_here = [REPO / "instance" / name for name in ("initial-admin-password", "secret_key")]
    before = {path: path.exists() for path in secrets_here}
    yield
    appeared = [str(path) for path in secrets_here if path.exists() and not before[path]]
    assert appeared == [], f"tests left secrets in the repository: {appeared}"


@pytest.fixture
def app(make_app: Callable[..., Flask]) -> Flask:
    return make_app()


def bearer_client(app: Flask):
    """A test client of ``app`` speaking to the API with a valid bearer token."""
    client = app.test_client()
    client.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {API_TOKEN}"
    return client


@pytest.fixture
def client(app: Flask):
    """A test client speaking to the API with a valid bearer token."""
    return bearer_client(app)


def csrf_token_of(client) -> str:
    """Read the CSRF token a page hands to its forms and scripts (the login page, or /admin once logged in)."""
    page = client.get("/admin/login", follow_redirects=True).get_data(as_text=True)
    return re.search(r'<meta name="csrf-token" content="([^"]+)"', page).group(1)


def create_admin(app: Flask) -> None:
    from views.accounts import set_admin_password

    with app.app_context():
        set_admin_password(ADMIN_USER, ADMIN_PASSWORD)


def logged_in_client(app: Flask):
    """A browser-like test client of ``app`` logged in as an admin; ``.csrf_token`` for its posts."""
    create_admin(app)
    client = app.test_client()
    response = client.post(
        "/admin/login",
        data={"username": ADMIN_USER, "password": ADMIN_PASSWORD, "csrf_token": csrf_token_of(client)},
    )
    assert response.status_code == 302, response.get_data(as_text=True)
    client.csrf_token = csrf_token_of(client)
    return client


@pytest.fixture
def admin_client(app: Flask):
    """A browser-like test client logged in as an admin; ``.csrf_token`` for its posts."""
    return logged_in_client(app)


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request, tmp_path: Path) -> str:
    """The same test on a fresh SQLite file and on the (emptied) PostgreSQL test database."""
    if request.param == "postgresql":
        url = pg_test_url()
        reset_database(url)
        return url
    return f"sqlite:///{tmp_path / 'shared.sqlite'}"


@pytest.fixture
def pg_url() -> str:
    url = pg_test_url()
    reset_database(url)
    return url


@pytest.fixture
def pg_app(make_app: Callable[..., Flask], pg_url: str) -> Flask:
    """An app on the PostgreSQL test database, emptied first (the app creates the schema)."""
    return make_app(DATABASE_URL=pg_url)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def serving_process(command: list[str], env: dict[str, str], probe_url: str,
                    timeout: float = 60) -> Iterator[subprocess.Popen]:
    """Start a web server process from the repository, wait until ``probe_url`` answers, stop it after."""
    process = subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                urllib.request.urlopen(probe_url, timeout=5).close()
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"{' '.join(command)} did not start")
                time.sleep(0.2)
        yield process
    finally:
        process.terminate()
        process.wait(30)


class LiveServer:
    """A threaded WSGI server on a free loopback port."""

    def __init__(self, app: Flask) -> None:
        self.server = make_server("127.0.0.1", 0, app, threaded=True)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()


@pytest.fixture
def live_server() -> Iterator[Callable[[Flask], LiveServer]]:
    servers: list[LiveServer] = []

    def start(app: Flask) -> LiveServer:
        server = LiveServer(app)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.close()


@pytest.fixture
def server() -> Iterator[ScriptedServer]:
    """A scriptable loopback HTTP server (tests/scripted_server.py)."""
    scripted = ScriptedServer()
    yield scripted
    scripted.close()


@pytest.fixture
def statement_log(monkeypatch: pytest.MonkeyPatch) -> StatementLog:
    """Every SQL statement the app's SQLite connections run while a request is counted."""
    log = StatementLog()
    prepare = database.prepare_sqlite

    def prepare_and_trace(connection: sqlite3.Connection) -> None:
        prepare(connection)
        connection.set_trace_callback(log.trace)

    # Both the ORM's engine and the job store prepare each new SQLite connection here.
    monkeypatch.setattr(database, "prepare_sqlite", prepare_and_trace)
    monkeypatch.setattr(jobs.connections, "prepare_sqlite", prepare_and_trace)
    return log
