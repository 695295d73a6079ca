"""Schema migrations: a database of the release before migrations upgrades with its data intact."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from datetime import datetime
from pathlib import Path
from typing import Callable

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from flask import Flask

from conftest import pg_test_url, reset_database
from database import current_revision, head_revision
from job_queue import JobStatus, job_queue
from jobs.schema import metadata as job_metadata
from models import Rate, Shop, db

REPO = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).resolve().parent / "fixtures"
LEGACY_JOB = "0b5e2f0c-1111-4d7e-9d0e-000000000001"

# Rows as the last release stored them, written with plain SQL (no current model involved);
# ids come from the fresh tables' sequences, so programme, shop and rate are each number 1.
LEGACY_ROWS = [
    "INSERT INTO programme (slug, name, unit_name, is_sample) VALUES ('payback', 'PAYBACK', '°Punkte', false)",
    "INSERT INTO shop (programme_id, external_id, name, slug, detail_url, logo_url, domains, categories,"
    " active, is_sample, first_seen, last_seen) VALUES (1, 'otto', 'OTTO', 'otto',"
    " 'https://www.payback.de/shop/otto', NULL, '[\"otto.de\"]', '[]', true, false,"
    " '2026-10-01 08:00:00', '2026-11-01 08:00:00')",
    "INSERT INTO rate (shop_id, kind, raw_text, rate_type, value, up_to, detail, ends_at, valid_from,"
    " valid_to) VALUES (1, 'base', '1 °P pro 2 €', 'per_euro', 0.5, false, NULL, NULL,"
    " '2026-10-01 08:00:00', NULL)",
    # A promotion "bis 31.07.2026" as the release stored it: the German end of the day, naive.
    "INSERT INTO rate (shop_id, kind, raw_text, rate_type, value, up_to, detail, ends_at, valid_from,"
    " valid_to) VALUES (1, 'promotion', '10-fach °P', 'multiplier', 10, false, 'bis 31.07.2026',"
    " '2026-07-31 23:59:59', '2026-10-01 08:00:00', NULL)",
    "INSERT INTO job (id, name, func_path, args_json, pinned_to, status, progress, total_steps, result_json,"
    " error, traceback, created_at, started_at, completed_at, owner, lease_until, attempts, max_attempts)"
    f" VALUES ('{LEGACY_JOB}', 'run_payback', 'scrapers.payback:scrape_payback', '[[], {{}}]', NULL,"
    " 'completed', 8, 8, '{\"added\": 1, \"updated\": 0}', NULL, NULL, '2026-11-01 08:00:00',"
    " '2026-11-01 08:00:01', '2026-11-01 08:00:09', NULL, NULL, 1, 3)",
    f"INSERT INTO job_message (job_id, timestamp, message) VALUES ('{LEGACY_JOB}', '2026-11-01 08:00:02',"
    " 'Starte Payback-Scraper...')",
    "INSERT INTO admin_user (username, password_hash, created_at) VALUES ('admin', 'scrypt:x', "
    " '2026-10-01 08:00:00')",
]


def _legacy_sqlite(path: Path) -> str:
    with sqlite3.connect(path) as connection:
        connection.executescript((FIXTURES / "release_0_schema.sqlite.sql").read_text())
        for row in LEGACY_ROWS:
            connection.execute(row.replace("false", "0").replace("true", "1"))
    return f"sqlite:///{path}"


def _legacy_postgresql(url: str) -> None:
    reset_database(url)
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.exec_driver_sql((FIXTURES / "release_0_schema.postgresql.sql").read_text())
        for row in LEGACY_ROWS:
            conn.exec_driver_sql(row.replace("%", "%%"))
    engine.dispose()


def _assert_data_intact(app: Flask) -> None:
    with app.app_context():
        shop = db.session.scalar(sa.select(Shop).where(Shop.external_id == "otto"))
        assert (shop.name, shop.domains, shop.active) == ("OTTO", ["otto.de"], True)
        assert sorted((rate.raw_text, rate.value, rate.ends_at) for rate in shop.rates) == [
            ("1 °P pro 2 €", 0.5, None),
            ("10-fach °P", 10.0, datetime(2026, 7, 31, 21, 59, 59)),  # now UTC: 23:59:59 in Berlin's summer
        ]
        job = job_queue.get_job(LEGACY_JOB)
        assert job.status is JobStatus.COMPLETED and job.result == {"added": 1, "updated": 0}
        assert [m["message"] for m in job.messages] == ["Starte Payback-Scraper..."]
        with db.engine.connect() as conn:
            assert current_revision(conn) == head_revision()
        # and the upgraded database works on: a new rate and a new job
        db.session.add(Rate(shop_id=shop.id, kind="promotion", raw_text="10fach °P"))
        db.session.commit()
        new_job = job_queue.enqueue(lambda job: "läuft")
        assert job_queue.run_pending() == 1
        assert job_queue.get_job(new_job).result == "läuft"


def test_sqlite_database_of_the_last_release_upgrades_at_start(make_app: Callable[..., Flask],
                                                                tmp_path: Path) -> None:
    url = _legacy_sqlite(tmp_path / "release0.sqlite")
    _assert_data_intact(make_app(DATABASE_URL=url))


def test_postgresql_database_of_the_last_release_upgrades_with_flask_db_upgrade(
    make_app: Callable[..., Flask],
) -> None:
    url = pg_test_url()
    _legacy_postgresql(url)

    with pytest.raises(SystemExit) as refused:
        make_app(DATABASE_URL=url)
    assert "flask --app app db upgrade" in str(refused.value)

    env = dict(os.environ, DATABASE_URL=url, SECRET_KEY="test-only-secret-key-0123456789abcdef", JOBS_AUTOSTART="0")
    upgrade = subprocess.run([sys.executable, "-m", "flask", "--app", "app", "db", "upgrade"], cwd=REPO,
                             env=env, capture_output=True, text=True, timeout=60)
    assert upgrade.returncode == 0, upgrade.stdout + upgrade.stderr
    _assert_data_intact(make_app(DATABASE_URL=url))


def _schema_differences(url: str) -> list:
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        differences = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}),
                                       [db.metadata, job_metadata])
    engine.dispose()
    return differences


def test_migrations_build_exactly_the_models_schema_on_sqlite(make_app: Callable[..., Flask],
                                                              tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'fresh.sqlite'}"
    make_app(DATABASE_URL=url)
    assert _schema_differences(url) == []


def test_migrations_build_exactly_the_models_schema_on_postgresql(make_app: Callable[..., Flask]) -> None:
    url = pg_test_url()
    reset_database(url)
    make_app(DATABASE_URL=url)
    assert _schema_differences(url) == []


def test_outdated_schema_is_refused_with_the_command_to_run(make_app: Callable[..., Flask],
                                                            tmp_path: Path) -> None:
    url = _legacy_sqlite(tmp_path / "release0.sqlite")
    with pytest.raises(SystemExit) as refused:
        make_app(DATABASE_URL=url, DATABASE_AUTO_UPGRADE=False)
    assert "veraltet" in str(refused.value) and "flask --app app db upgrade" in str(refused.value)
    with sqlite3.connect(tmp_path / "release0.sqlite") as connection:  # and nothing was touched
        tables = {name for (name,) in connection.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert "alembic_version" not in tables
