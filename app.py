"""Application factory: ``flask --app app run`` serves the site and runs jobs."""

from __future__ import annotations

import logging
import os
import secrets
from pathlib import Path
from typing import Any, Mapping, Optional

import click
from flask import Flask, jsonify, request
from werkzeug.exceptions import HTTPException

from job_queue import DEFAULT_CONFIG as JOB_DEFAULTS
from job_queue import job_queue
from jobs.store import configure_sqlite_engine, create_tables
from models import db, seed_programmes
from scrapers.errors import quiet_expected_failures

# Every key here can be overridden by instance/config.py, then by an
# environment variable of the same name (parsed to the default's type).
DEFAULTS: dict[str, Any] = {
    "DATABASE_URL": None,
    **JOB_DEFAULTS,
    # Where scrapers read: "online" (the URLs below) or "offline" (bundled samples).
    "SCRAPER_SOURCES": "online",
    "PAYBACK_CATALOGUE_URL": "https://www.payback.de/onsflows/api/digital-shops",
    "PAYBACK_PAGE_SIZE": 100,
    "MILES_AND_MORE_SITEMAP_URL": "https://api2.prd.mmi.q-two-hosting.com/page/sitemap.xml",
    "EXAMPLE_CATALOGUE_URL": None,
    "EXAMPLE_PAGE_INTERVAL": 1.0,
    # The shared fetcher (scrapers/fetcher.py); see README "Politeness".
    "SCRAPER_USER_AGENT": "Bonusvergleich-Scraper/0.1 (compares loyalty programme earn rates)",
    "SCRAPER_CONNECT_TIMEOUT": 5.0,
    "SCRAPER_TIMEOUT": 20.0,
    "SCRAPER_TOTAL_TIMEOUT": 60.0,
    "SCRAPER_MAX_BYTES": 10 * 1024 * 1024,
    "SCRAPER_RETRIES": 3,
    "SCRAPER_MAX_RETRY_AFTER": 30.0,
    "SCRAPER_HOST_CONCURRENCY": 2,
    "SCRAPER_MIN_INTERVAL": 0.5,
    # Safety against hostile or huge sources (README "Politeness" and "Safety").
    "SCRAPER_ALLOWED_HOSTS": "",  # "host" or "host:port", comma-separated: exempt from the address guard
    "SCRAPER_MAX_CRAWL_DELAY": 30.0,
    "MAX_SITEMAP_URLS": 5000,
    # Access to /admin (see README "Security").
    "ADMIN_API_TOKEN": None,
    "LOGIN_RATE_LIMIT_PER_IP": "10 per minute",
    "LOGIN_RATE_LIMIT_PER_USER": "5 per minute",
    "RATELIMIT_STORAGE_URI": "memory://",
    "TRUST_PROXY": False,
    "SESSION_COOKIE_SECURE": False,
    # Euro value of one point or mile, for "euro per 100 € spent".
    "PAYBACK_EURO_PER_POINT": 0.01,
    "MILES_AND_MORE_EURO_PER_MILE": 0.01,
    "EXAMPLE_EURO_PER_POINT": 0.01,
}


def _parse_env(raw: str, default: Any) -> Any:
    if isinstance(default, bool):
        return raw.strip().lower() in ("1", "true", "yes", "on")
    if isinstance(default, (int, float)):
        return type(default)(raw)
    return raw


def _load_config(app: Flask, config: Optional[Mapping[str, Any]]) -> None:
    app.config.from_mapping(DEFAULTS)
    app.config.from_pyfile("config.py", silent=True)
    for key, default in DEFAULTS.items():
        if key in os.environ:
            app.config[key] = _parse_env(os.environ[key], default)
    if "SECRET_KEY" in os.environ:
        app.config["SECRET_KEY"] = os.environ["SECRET_KEY"]
    if config is not None:
        app.config.from_mapping(config)
    if not app.config.get("SECRET_KEY"):
        app.config["SECRET_KEY"] = _instance_secret_key(app)
    app.config["SQLALCHEMY_DATABASE_URI"] = _database_uri(app)
    if app.config["SCRAPER_SOURCES"] not in ("online", "offline"):
        raise ValueError(
            f"SCRAPER_SOURCES must be 'online' or 'offline', not {app.config['SCRAPER_SOURCES']!r}"
        )


def _instance_secret_key(app: Flask) -> str:
    """Read the secret key from the instance folder, creating it on first run."""
    path = Path(app.instance_path) / "secret_key"
    if not path.exists():
        path.write_text(secrets.token_hex(32))
        path.chmod(0o600)
    return path.read_text().strip()


def _database_uri(app: Flask) -> str:
    url = app.config.get("DATABASE_URL")
    if not url:
        return "sqlite:///" + os.path.join(app.instance_path, "app.sqlite")
    # Heroku-style URLs and plain "postgresql://" should use psycopg 3.
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    return url


def _json_errors_for_api(error: HTTPException):
    """Answer errors under /admin/ as JSON with an ``error`` field."""
    if request.path.startswith("/admin/") and request.endpoint != "auth.login":
        description = error.description
        if error.code == 405:
            description = f"Methode {request.method} ist für {request.path} nicht erlaubt"
        elif error.code == 404 and description == type(error).description:
            description = f"Nicht gefunden: {request.path}"
        response = jsonify(error=description)
        response.status_code = error.code or 500
        if error.code == 405 and error.valid_methods:
            response.headers["Allow"] = ", ".join(error.valid_methods)
        return response
    return error


def create_app(
    config: Optional[Mapping[str, Any]] = None, instance_path: Optional[str] = None
) -> Flask:
    """Create the app; ``config`` overrides everything else (used by tests)."""
    app = Flask(__name__, instance_relative_config=True, instance_path=instance_path)
    os.makedirs(app.instance_path, exist_ok=True)
    _load_config(app, config)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    quiet_expected_failures(logging.getLogger("job_queue"))  # a host that is down: one line, no traceback

    db.init_app(app)
    _configure_sqlite(app)
    job_queue.init_app(app)

    from views import admin, auth, security, shops

    security.init_app(app)
    auth.init_app(app)
    app.register_blueprint(admin.bp)
    app.register_blueprint(shops.bp)
    app.register_error_handler(HTTPException, _json_errors_for_api)

    with app.app_context():
        create_tables(db.engine, db.metadata)
        seed_programmes()
        if not app.testing:
            auth.ensure_first_admin()
        # The default shape: this process serves the web and runs the jobs.
        if app.config["JOBS_AUTOSTART"] and app.config["JOBS_RUN_IN_WEB"] and not app.testing and _serving():
            job_queue.start()
    return app


def _configure_sqlite(app: Flask) -> None:
    """Share one SQLite file between web, workers and processes (see jobs/store.py)."""
    if app.config["SQLALCHEMY_DATABASE_URI"].startswith("sqlite"):
        with app.app_context():
            configure_sqlite_engine(db.engine)


def _serving() -> bool:
    """Tell a server start (``flask run``, gunicorn) from other CLI commands."""
    context = click.get_current_context(silent=True)
    return context is None or context.info_name == "run"
