"""Secrets out of logs, and files only the app's user can read, from the moment they exist."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Iterator

import pytest

from conftest import REPO, base_config, csrf_token_of
from app import create_app

FIRST_ADMIN_LINE = "Erster Start: Admin-Zugang angelegt"


def mode(path: Path) -> str:
    return oct(path.stat().st_mode & 0o777)


@pytest.fixture
def ordinary_umask() -> Iterator[None]:
    """The usual umask (022): privacy must not depend on a strict one."""
    previous = os.umask(0o022)
    yield
    os.umask(previous)


@pytest.fixture
def no_chmod(monkeypatch: pytest.MonkeyPatch) -> None:
    """Files must be private when created, not made private afterwards."""
    def refuse(*args, **kwargs):
        raise AssertionError("chmod after creation: the file was readable in between")

    for name in ("chmod", "fchmod", "lchmod"):
        if hasattr(os, name):
            monkeypatch.setattr(os, name, refuse)


def test_first_start_password_goes_to_a_private_file_not_the_console(tmp_path: Path, ordinary_umask) -> None:
    instance = tmp_path / "instance"
    env = dict(os.environ, DATABASE_URL=f"sqlite:///{tmp_path / 'first.sqlite'}", INSTANCE_PATH=str(instance),
               SECRET_KEY="test-only-secret-key-0123456789abcdef")
    done = subprocess.run([sys.executable, "-m", "flask", "--app", "app", "list-tokens"], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    password_file = instance / "initial-admin-password"
    password = password_file.read_text().strip()
    assert len(password) >= 16
    assert password not in done.stdout and password not in done.stderr
    announcement = [line for line in done.stderr.splitlines() if line.startswith(FIRST_ADMIN_LINE)]
    assert len(announcement) == 1 and str(password_file) in done.stderr  # where, not what
    assert mode(password_file) == "0o600" and mode(instance) == "0o700"

    # The first login with it deletes the file.
    app = create_app({**base_config(tmp_path), "DATABASE_URL": env["DATABASE_URL"]}, instance_path=str(instance))
    client = app.test_client()
    wrong = client.post("/admin/login", data={"username": "admin", "password": "falsch-falsch-falsch",
                                              "csrf_token": csrf_token_of(client)})
    assert wrong.status_code == 401 and password_file.exists()
    right = client.post("/admin/login", data={"username": "admin", "password": password,
                                              "csrf_token": csrf_token_of(client)})
    assert right.status_code == 302 and not password_file.exists()


def test_a_password_change_deletes_the_first_start_password_file(make_app, tmp_path: Path) -> None:
    app = make_app()
    from views.accounts import ensure_first_admin

    with app.app_context():
        ensure_first_admin()
    password_file = Path(app.instance_path) / "initial-admin-password"
    assert password_file.exists()
    changed = app.test_cli_runner().invoke(args=["create-admin", "admin", "--password-stdin"],
                                                 input="mein-eigenes-Passwort-9\n")
    assert changed.exit_code == 0, changed.output
    assert not password_file.exists()


def test_sqlite_database_and_its_wal_files_are_private_from_creation(tmp_path: Path, ordinary_umask,
                                                                     no_chmod) -> None:
    database = tmp_path / "data" / "app.sqlite"
    database.parent.mkdir()
    app = create_app(base_config(tmp_path, DATABASE_URL=f"sqlite:///{database}"),
                     instance_path=str(tmp_path / "instance"))
    from models import db

    with app.app_context():
        with db.engine.connect() as connection:  # an open connection keeps -wal and -shm in place
            connection.exec_driver_sql("SELECT count(*) FROM admin_user").scalar()
            files = {path.name: mode(path) for path in database.parent.iterdir()}
        db.engine.dispose()
        app.extensions["job_queue"].store.engine.dispose()
    assert files == {"app.sqlite": "0o600", "app.sqlite-wal": "0o600", "app.sqlite-shm": "0o600"}


def test_instance_folder_and_secret_key_are_private_from_creation(tmp_path: Path, ordinary_umask,
                                                                  no_chmod) -> None:
    instance = tmp_path / "instance"
    app = create_app({"DATABASE_URL": f"sqlite:///{tmp_path / 'x.sqlite'}", "TESTING": True},
                     instance_path=str(instance))
    assert mode(instance) == "0o700"
    assert mode(instance / "secret_key") == "0o600"
    assert app.config["SECRET_KEY"] == (instance / "secret_key").read_text().strip()
    default_database = create_app({"TESTING": True, "SECRET_KEY": "x" * 32}, instance_path=str(tmp_path / "other"))
    assert mode(tmp_path / "other" / "app.sqlite") == "0o600"
    assert default_database.config["SQLALCHEMY_DATABASE_URI"].endswith("other/app.sqlite")


@pytest.mark.parametrize("key", ["SECRET_KEY", "WEBHOOK_SECRETS_KEY"])
@pytest.mark.parametrize("value", ["a", "x" * 31, "ä" * 15])
def test_a_short_key_is_refused_at_start(tmp_path: Path, key: str, value: str) -> None:
    with pytest.raises(ValueError, match=f"{key} must be at least 32 bytes"):
        create_app({"DATABASE_URL": f"sqlite:///{tmp_path / 'x.sqlite'}", "TESTING": True,
                    "SECRET_KEY": "long-enough-secret-key-for-this-test-0123", key: value},
                   instance_path=str(tmp_path / "instance"))
