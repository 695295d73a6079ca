"""Application factory: ``flask --app app run`` serves the site and runs jobs."""

from __future__ import annotations

import atexit
import json
import logging
import os
import secrets
import signal
import threading
import time
from pathlib import Path
from typing import Any, Mapping, Optional
from zoneinfo import ZoneInfo

import click
import sqlalchemy as sa
from flask import Flask
from flask_migrate import Migrate

from database import MIGRATIONS_DIR, SchemaError, configure_sqlite_engine, is_lock_conflict, upgrade_schema
from job_queue import DEFAULT_CONFIG as JOB_DEFAULTS
from job_queue import PROCESS, JobKind, job_queue
from jobs.schema import metadata as job_metadata
from models import db, seed_programmes
from scrapers.registry import SCRAPERS, SETTLE_RUN, is_retryable
from scrapers.drift_guard import DEFAULT_CONFIG as DRIFT_GUARD_DEFAULTS
from scrapers.drift_guard import DriftBounds
from scrapers.sources import OFFLINE as SOURCES_OFFLINE
from scrapers.sources import ONLINE as SOURCES_ONLINE
from views import url_secrets
from views.errors import request_too_large
from views.interpreter import DEFAULT_CONFIG as INTERPRETER_DEFAULTS, tune_for_serving
from views.private_files import create_private_sqlite_file, make_private_folder, write_private_file
from views.request_size import BoundedRequest
from webhooks import DEFAULT_CONFIG as WEBHOOK_DEFAULTS
from webhooks import dispatcher as webhook_dispatcher

log = logging.getLogger(__name__)
migrate = Migrate()

# A start that finds the database locked tries again after this pause, doubling up to the maximum.
STARTUP_RETRY_FIRST_PAUSE = 0.05
STARTUP_RETRY_MAX_PAUSE = 1.0

SECRET_KEY_BYTES = 32

# Every key here can be overridden by instance/config.py, then by an
# environment variable of the same name (parsed to the default's type).
DEFAULTS: dict[str, Any] = {
    "DATABASE_URL": None,
    # Bring an outdated schema up to date at start-up: None means on SQLite only
    # (elsewhere run `flask --app app db upgrade`; an empty database is always created).
    "DATABASE_AUTO_UPGRADE": None,
    "DATABASE_SCHEMA_LOCK_TIMEOUT": 60.0,  # seconds a starting process waits for another's upgrade
    **JOB_DEFAULTS,
    **INTERPRETER_DEFAULTS,  # a serving process's switch interval and frozen start-up objects
    "JOBS_CREATE_TABLES": False,  # the migrations own the job tables too
    # All three scrapers can run side by side (each kind only once at a time).
    "JOBS_WORKER_THREADS": 3,
    # Where scrapers read: "online" (the URLs below) or "offline" (bundled samples).
    "SCRAPER_SOURCES": SOURCES_ONLINE,
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
    # The drift guard's bounds, in percent (README "Drift guard").
    **DRIFT_GUARD_DEFAULTS,
    # Access to /admin (see README "Security").
    "ADMIN_API_TOKEN": None,
    "LOGIN_RATE_LIMIT_PER_IP": "10 per minute",
    "LOGIN_RATE_LIMIT_PER_USER_AND_IP": "5 per minute",
    "LOGIN_SLOWDOWN_AFTER": 5,  # failures of one user name (any address) before attempts are delayed
    "LOGIN_SLOWDOWN_MAX_SECONDS": 2.0,
    "LOGIN_SLOWDOWN_SLOTS": 2,  # delayed attempts waiting at once per process; more go undelayed
    "RATELIMIT_STORAGE_URI": "memory://",
    "TRUST_PROXY": False,
    "SESSION_COOKIE_SECURE": False,
    "SESSION_LIFETIME_SECONDS": 12 * 3600.0,
    "SESSION_IDLE_TIMEOUT_SECONDS": 3600.0,
    "MAX_CONTENT_LENGTH": 1024 * 1024,  # bytes of a request body; more is refused with 413
    # Euro value of one point or mile, for "euro per 100 € spent".
    "PAYBACK_EURO_PER_POINT": 0.01,
    "MILES_AND_MORE_EURO_PER_MILE": 0.01,
    "EXAMPLE_EURO_PER_POINT": 0.01,
    # Job control of the scrapers (see README "Job control").
    "SCRAPER_TIME_LIMITS": {},  # name -> seconds, over scrapers/registry.py's defaults
    "SCRAPER_ATTEMPTS": 3,  # runs in all when a scrape fails for a retryable reason (network, 429, 5xx)
    "SCHEDULES": {},  # name -> cron expression: enables that scraper's schedule at first start
    # The zone every time on a page, in a job message and in CLI output is shown in (the JSON API stays UTC).
    "DISPLAY_TIMEZONE": "Europe/Berlin",
    # Signed webhooks on job events (webhooks/, README "Webhooks").
    **WEBHOOK_DEFAULTS,
}


_BOOLEAN_KEYS = {"DATABASE_AUTO_UPGRADE"}  # keys whose default None stands for "decide later"


def _parse_env(raw: str, default: Any, key: str = "") -> Any:
    if isinstance(default, bool) or key in _BOOLEAN_KEYS:
        return raw.strip().lower() in ("1", "true", "yes", "on")
    if isinstance(default, (int, float)):
        return type(default)(raw)
    if isinstance(default, dict):
        value = json.loads(raw)  # e.g. SCHEDULES='{"payback": "15 4 * * *"}'
        if not isinstance(value, dict):
            raise ValueError(f"{key} must be a JSON object, not {raw!r}")
        return value
    return raw


def _load_config(app: Flask, config: Optional[Mapping[str, Any]]) -> None:
    app.config.from_mapping(DEFAULTS)
    app.config.from_pyfile("config.py", silent=True)
    for key, default in DEFAULTS.items():
        if key in os.environ:
            app.config[key] = _parse_env(os.environ[key], default, key)
    if "SECRET_KEY" in os.environ:
        app.config["SECRET_KEY"] = os.environ["SECRET_KEY"]
    if config is not None:
        app.config.from_mapping(config)
    if not app.config.get("SECRET_KEY"):
        app.config["SECRET_KEY"] = _instance_secret_key(app)
    for key in ("SECRET_KEY", "WEBHOOK_SECRETS_KEY"):
        _check_key_length(key, app.config.get(key))
    app.config["SQLALCHEMY_DATABASE_URI"] = _database_uri(app)
    if app.config["SQLALCHEMY_DATABASE_URI"].startswith("postgresql"):
        # After a database restart every pooled connection is dead: test each at checkout (one
        # round trip) rather than fail a page or a webhook delivery on each, logging a new outage.
        options = dict(app.config.get("SQLALCHEMY_ENGINE_OPTIONS") or {})
        app.config["SQLALCHEMY_ENGINE_OPTIONS"] = {"pool_pre_ping": True, **options}
    if app.config["SCRAPER_SOURCES"] not in (SOURCES_ONLINE, SOURCES_OFFLINE):
        raise ValueError(
            f"SCRAPER_SOURCES must be 'online' or 'offline', not {app.config['SCRAPER_SOURCES']!r}"
        )
    DriftBounds.from_config(app.config)  # a bound outside 0..100 stops the start, not the first run
    ZoneInfo(app.config["DISPLAY_TIMEZONE"])  # an unknown zone stops the start, not the first page


def _check_key_length(key: str, value: Optional[str]) -> None:
    """A key guessed or brute-forced signs sessions or opens webhook secrets: 32 bytes at least, when set."""
    if value and len(value.encode("utf-8") if isinstance(value, str) else value) < SECRET_KEY_BYTES:
        raise ValueError(f"{key} must be at least {SECRET_KEY_BYTES} bytes long (e.g. python -c "
                         f"'import secrets; print(secrets.token_hex({SECRET_KEY_BYTES}))')")


def _instance_secret_key(app: Flask) -> str:
    """Read the secret key from the instance folder, creating it on first run.

    Written to a private file first and then linked into place, which fails
    if the key exists: of several processes starting at once exactly one key
    wins, every process reads it whole, and it is never readable by others.
    """
    path = Path(app.instance_path) / "secret_key"
    if not path.exists():
        write_private_file(path, secrets.token_hex(SECRET_KEY_BYTES), replace=False)
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


def create_app(
    config: Optional[Mapping[str, Any]] = None, instance_path: Optional[str] = None, serving: Optional[bool] = None
) -> Flask:
    """Create the app; ``config`` overrides everything else (used by tests).

    The instance folder is ``instance_path``, else the environment's
    ``INSTANCE_PATH``, else ``instance/`` beside this file. Only a serving
    process starts threads (job workers, webhook delivery) and refuses to
    start on a schema problem: ``serving`` says whether this is one; left
    out, only ``flask run`` is (gunicorn starts ``create_web_app()``; a
    script, a shell or another ``flask`` command gets an app without threads).
    """
    serving = _is_flask_run() if serving is None else serving
    app = Flask(__name__, instance_relative_config=True,
                instance_path=instance_path or os.environ.get("INSTANCE_PATH") or None)
    app.request_class = BoundedRequest
    app.json.ensure_ascii = False  # type: ignore[attr-defined]  # "ungültig", not "ung\u00fcltig"
    make_private_folder(app.instance_path)
    _load_config(app, config)
    _configure_logging()

    db.init_app(app)
    migrate.init_app(app, db, directory=str(MIGRATIONS_DIR))
    _configure_sqlite(app)
    with app.app_context():
        database_problem = _prepare_database(app, serving)
    job_queue.init_app(app, app_factory="app:create_job_app")
    _register_scrapers(app, schedules=database_problem is None)
    if database_problem is not None:  # a CLI command such as `flask db upgrade` may still run; a worker not
        job_queue.add_start_check(app, lambda: _refuse_to_start(database_problem))

    webhook_dispatcher.init_app(app)
    # `flask worker` delivers too: its start checks run once, before it takes jobs.
    job_queue.add_start_check(app, lambda: webhook_dispatcher.start_automatically(app))

    from views import (admin, auth, error_pages, history, ids, labels, outage, run_cli, schedules, security, shops,
                       timezone, webhook_admin)

    ids.init_app(app)  # before the blueprints: their routes use its converters
    security.init_app(app)
    outage.init_app(app)
    auth.init_app(app)
    app.register_blueprint(admin.bp)
    app.register_blueprint(schedules.bp)
    app.register_blueprint(history.bp)
    timezone.init_app(app)
    labels.init_app(app)
    run_cli.init_app(app)
    app.register_blueprint(shops.bp)
    app.register_blueprint(webhook_admin.bp)
    error_pages.init_app(app)
    app.register_error_handler(413, request_too_large)
    url_secrets.init_app(app)

    # The default shape: this process serves the web and runs the jobs.
    if app.config["JOBS_AUTOSTART"] and app.config["JOBS_RUN_IN_WEB"] and not app.testing and serving:
        with app.app_context():
            job_queue.start()
            job_queue.warm_up()  # the first scrape should not wait for the fork server's start
        _stop_jobs_warmly_at_exit(app)
    # A serving process delivers webhooks (retries due from before a restart, test events) in any shape.
    if database_problem is None and not app.testing and serving:
        webhook_dispatcher.start_automatically(app)
    if not app.testing and serving:
        tune_for_serving(app.config)  # last: everything start-up made is in place
    return app


def create_web_app() -> Flask:
    """The app of a web server process (gunicorn: ``"app:create_web_app()"``): it serves, runs jobs, delivers webhooks."""
    return create_app(serving=True)


def create_job_app(config: Mapping[str, Any], instance_path: str) -> Flask:
    """The app a job's child process runs in: the serving app's configuration and database, no routes.

    The child runs one job, so it needs what a job function reads
    (``current_app.config``, ``db``) and the queue to enqueue follow-ups;
    routes, the schema check and webhooks stay with the process that
    started it. Built in a few milliseconds, from plain data.
    """
    app = Flask(__name__, instance_path=instance_path)
    app.config.from_mapping(config)
    _configure_logging()
    db.init_app(app)
    _configure_sqlite(app)
    job_queue.init_app(app, app_factory="app:create_job_app")
    _register_scrapers(app, schedules=False)
    return app


def _configure_logging() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def _register_scrapers(app: Flask, schedules: bool) -> None:
    """Make each scraper a job kind (time limit, retries) and give it a schedule (off unless configured)."""
    limits, wanted = app.config["SCRAPER_TIME_LIMITS"], app.config["SCHEDULES"]
    for spec in SCRAPERS:
        job_queue.register_kind(JobKind(
            name=spec.name, label=spec.label, func=spec.func,
            time_limit=float(limits.get(spec.name, spec.time_limit)),
            max_attempts=int(app.config["SCRAPER_ATTEMPTS"]), retry_if=is_retryable,
            isolation=PROCESS, settle=SETTLE_RUN,
        ), app)
        if schedules:
            app.extensions["job_queue"].schedules.ensure(spec.name, wanted.get(spec.name, spec.schedule),
                                                        enabled=spec.name in wanted)


def _stop_jobs_warmly_at_exit(app: Flask) -> None:
    """When this web process ends, its running jobs finish or go back to the queue (README "Deployment").

    gunicorn ends a worker on SIGTERM by returning from its loop, so the exit
    hook runs, within gunicorn's graceful timeout. ``flask run`` would die on
    SIGTERM without running anything: there SIGTERM ends the server as Ctrl-C
    does. A handler another server installed is left alone.
    """
    atexit.register(_shutdown_jobs, app)
    if threading.current_thread() is threading.main_thread() and \
            signal.getsignal(signal.SIGTERM) == signal.SIG_DFL:
        signal.signal(signal.SIGTERM, _stop_like_ctrl_c)


def _stop_like_ctrl_c(_signum: int, _frame: Any) -> None:
    raise KeyboardInterrupt


def _shutdown_jobs(app: Flask) -> None:
    with app.app_context():
        job_queue.shutdown()


def _refuse_to_start(problem: str) -> None:
    raise SystemExit(f"Start abgebrochen: {problem}")


def _prepare_database(app: Flask, serving: bool) -> Optional[str]:
    """Bring the schema up to date, then the rows every start needs (see README "Deployment").

    Serving (``flask run``, gunicorn) on a database that cannot be prepared
    exits with the reason; a CLI command gets the reason back instead, so
    ``flask db upgrade`` can still mend an outdated schema.
    """
    lock_timeout = float(app.config["DATABASE_SCHEMA_LOCK_TIMEOUT"])
    give_up_at, pause = time.monotonic() + lock_timeout, STARTUP_RETRY_FIRST_PAUSE
    try:
        while True:
            try:
                _prepare_database_once(app, lock_timeout)
                return None
            except (SchemaError, sa.exc.OperationalError) as exc:
                # Processes starting together on a fresh SQLite file: now and then SQLite answers
                # "database is locked" at once instead of waiting its busy timeout (seen in about 1 of
                # 100 process starts under load). Every step is idempotent: try again while there is time.
                if not is_lock_conflict(exc) or time.monotonic() + pause > give_up_at:
                    raise
                db.session.rollback()
                log.info("Datenbank beim Start gesperrt, neuer Versuch in %.2f s", pause)
                time.sleep(pause)
                pause = min(2 * pause, STARTUP_RETRY_MAX_PAUSE)
    except (SchemaError, sa.exc.OperationalError) as exc:
        problem = str(exc) if isinstance(exc, SchemaError) else f"Datenbank nicht nutzbar: {exc.orig}"
        db.session.rollback()
        if serving or click.get_current_context(silent=True) is None:  # not a CLI command that may mend it
            _refuse_to_start(problem)
        log.warning("%s", problem)  # e.g. `flask db upgrade`, which is about to mend it
        return problem
    return None


def _prepare_database_once(app: Flask, lock_timeout: float) -> None:
    auto_upgrade = app.config["DATABASE_AUTO_UPGRADE"]
    if auto_upgrade is None:
        auto_upgrade = app.config["SQLALCHEMY_DATABASE_URI"].startswith("sqlite")
    revision = upgrade_schema(db.engine, set(db.metadata.tables) | set(job_metadata.tables),
                              auto_upgrade=bool(auto_upgrade), lock_timeout=lock_timeout)
    if revision is not None:
        log.info("Datenbankschema auf Revision %s gebracht", revision)
    seed_programmes()
    if not app.testing:
        from views.accounts import ensure_first_admin

        ensure_first_admin()


def _configure_sqlite(app: Flask) -> None:
    """Share one SQLite file between web, workers and processes (see jobs/store.py)."""
    if app.config["SQLALCHEMY_DATABASE_URI"].startswith("sqlite"):
        create_private_sqlite_file(app.config["SQLALCHEMY_DATABASE_URI"])
        with app.app_context():
            configure_sqlite_engine(db.engine)


def _is_flask_run() -> bool:
    """Whether this is ``flask run``: the one CLI command that serves."""
    context = click.get_current_context(silent=True)
    return context is not None and context.info_name == "run"
