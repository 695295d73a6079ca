"""Processes started at the same instant on a fresh database all come up; the schema is made once."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa

from conftest import pg_test_url

REPO = Path(__file__).resolve().parent.parent
LAUNCHER = Path(__file__).resolve().parent / "start_race.py"
SCHEMA_MADE = "Datenbankschema auf Revision"
FIRST_ADMIN = "Erster Start: Admin-Zugang angelegt"


def _race(database: str, iterations: int, env: dict[str, str]) -> list[list[dict]]:
    done = subprocess.run([sys.executable, str(LAUNCHER), "--database", database, "--iterations", str(iterations)],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout)


def _assert_every_round_clean(rounds: list[list[dict]]) -> None:
    for number, processes in enumerate(rounds):
        for process in processes:
            assert process["came_up"], f"round {number}: {process['args']} exited {process['exit']}:\n{process['text']}"
            assert "Traceback" not in process["text"] and "database is locked" not in process["text"], process["text"]
        outputs = [process["text"] for process in processes]
        assert sum(SCHEMA_MADE in text for text in outputs) == 1, f"round {number}: schema made not exactly once"
        assert sum(FIRST_ADMIN in text for text in outputs) == 1, f"round {number}: first admin announced twice"


@pytest.mark.timeout(600)  # 100 process starts: about 45 s on an idle machine of 2 cores
def test_four_workers_and_a_web_process_start_together_on_fresh_sqlite_20_times() -> None:
    rounds = _race("sqlite", 20, dict(os.environ))
    assert len(rounds) == 20 and all(len(processes) == 5 for processes in rounds)
    _assert_every_round_clean(rounds)


@pytest.mark.timeout(300)
def test_four_workers_and_a_web_process_start_together_on_fresh_postgresql() -> None:
    url = pg_test_url()
    rounds = _race("postgresql", 5, dict(os.environ, TEST_DATABASE_URL=url))
    _assert_every_round_clean(rounds)


@pytest.mark.parametrize("command", [["worker", "--until-empty"], ["run", "--port", "0"]])
def test_a_process_that_cannot_get_the_schema_lock_exits_with_a_clear_message(tmp_path: Path,
                                                                              command: list[str]) -> None:
    path = tmp_path / "busy.sqlite"
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("PRAGMA journal_mode=WAL")
    holder.execute("BEGIN IMMEDIATE")  # another process is in the middle of its upgrade
    try:
        env = dict(os.environ, DATABASE_URL=f"sqlite:///{path}", SECRET_KEY="test-only-secret-key-0123456789abcdef",
                   DATABASE_SCHEMA_LOCK_TIMEOUT="1")
        done = subprocess.run([sys.executable, "-m", "flask", "--app", "app", *command], cwd=REPO, env=env,
                              capture_output=True, text=True, timeout=120)
    finally:
        holder.rollback()
        holder.close()
    assert done.returncode != 0
    assert "Start abgebrochen" in done.stderr and "Schema-Sperre" in done.stderr, done.stderr
    assert "Traceback" not in done.stderr + done.stdout


def test_a_start_that_finds_the_database_locked_at_once_tries_again(make_app, monkeypatch) -> None:
    """SQLite sometimes answers "database is locked" at once, not after its busy timeout: the start waits and retries."""
    import app as app_module
    from database import SchemaError

    real_upgrade, calls = app_module.upgrade_schema, []

    def locked_the_first_time(*args, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            locked = sa.exc.OperationalError("BEGIN IMMEDIATE", {}, sqlite3.OperationalError("database is locked"))
            raise SchemaError("die Schema-Sperre war noch belegt") from locked
        return real_upgrade(*args, **kwargs)

    monkeypatch.setattr(app_module, "upgrade_schema", locked_the_first_time)
    app = make_app()
    assert len(calls) == 2
    assert app.test_client().get("/").status_code == 200
