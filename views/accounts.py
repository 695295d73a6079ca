"""Admin accounts and API tokens: passwords, bearer tokens and the first admin.

Passwords are stored as salted scrypt hashes (werkzeug), tokens as SHA-256
hashes compared in constant time; neither is ever stored or shown again after
it was made. The first admin's random password goes to a file only the app's
user can read, never to the console (consoles end up in log files).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import sys
from datetime import timedelta
from pathlib import Path
from typing import Optional

import sqlalchemy as sa
from flask import current_app
from werkzeug.security import check_password_hash, generate_password_hash

from database import utcnow
from models import AdminUser, ApiToken, begin_write, db
from views.ids import parse_row_id
from views.passwords import password_problem
from views.token_cache import token_cache
from views.private_files import forget_initial_password, initial_password_path, write_private_file

MIN_ENV_TOKEN_LENGTH = 24
# Longer login fields are refused unhashed: scrypt over a megabyte costs real time.
MAX_USERNAME_LENGTH = 80
MAX_PASSWORD_LENGTH = 1024
TOKEN_SECRET_BYTES = 32
FIRST_ADMIN = "admin"
FIRST_PASSWORD_BYTES = 15
# How exactly ``ApiToken.last_used_at`` is kept: a token polled twice a second writes once a minute.
LAST_USED_PRECISION = timedelta(minutes=1)
# Checked when the username is unknown, so both failures take the same time.
_DUMMY_HASH = generate_password_hash(secrets.token_hex(16))


def _token_hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def set_admin_password(username: str, password: str) -> AdminUser:
    """Create the admin, or reset the password of an existing one and end its sessions."""
    problem = password_problem(password, username)
    if problem is None and len(password) > MAX_PASSWORD_LENGTH:
        problem = f"Das Passwort darf höchstens {MAX_PASSWORD_LENGTH} Zeichen haben."
    if problem is not None:
        raise ValueError(problem)
    begin_write()
    user = db.session.scalar(sa.select(AdminUser).where(AdminUser.username == username))
    if user is None:
        user = AdminUser(username=username)
        db.session.add(user)
    user.password_hash = generate_password_hash(password)
    user.end_sessions()
    db.session.commit()
    if username == FIRST_ADMIN:
        forget_initial_password(current_app.instance_path)
    return user


def verify_login(username: str, password: str) -> Optional[AdminUser]:
    """Return the admin when the password is right; the same work either way."""
    # No user name holds a NUL (PostgreSQL cannot even compare one): a wrong login, not a query.
    if len(username) > MAX_USERNAME_LENGTH or len(password) > MAX_PASSWORD_LENGTH or "\x00" in username:
        check_password_hash(_DUMMY_HASH, "")
        return None
    user = db.session.scalar(sa.select(AdminUser).where(AdminUser.username == username))
    if user is None:
        check_password_hash(_DUMMY_HASH, password)
        return None
    return user if check_password_hash(user.password_hash, password) else None


def create_api_token(name: str) -> str:
    """Store a new token under ``name`` and return it; it is shown only this once."""
    begin_write()
    if db.session.scalar(sa.select(ApiToken).where(ApiToken.name == name)) is not None:
        raise ValueError(f"Es gibt schon ein Token namens {name!r}.")
    secret = secrets.token_urlsafe(TOKEN_SECRET_BYTES)
    token = ApiToken(name=name, token_hash=_token_hash(secret))
    db.session.add(token)
    db.session.commit()
    return f"{token.id}.{secret}"


def revoke_api_token(name: str) -> bool:
    """Revoke the token named ``name``; False when there is no active one."""
    begin_write()
    token = db.session.scalar(sa.select(ApiToken).where(ApiToken.name == name))
    if token is None or token.revoked_at is not None:
        return False
    token.revoked_at = utcnow()
    db.session.commit()
    token_cache().clear()  # at once here; other processes within TOKEN_CACHE_SECONDS
    return True


def api_client_for(raw: str) -> Optional[str]:
    """Return the name of the client the bearer token belongs to, or None.

    One read by primary key, then remembered for ``TOKEN_CACHE_SECONDS``
    (``views/token_cache.py``); ``last_used_at`` is kept to the minute.
    """
    configured = current_app.config.get("ADMIN_API_TOKEN") or ""
    if configured and hmac.compare_digest(raw.encode(), configured.encode()):
        return "ADMIN_API_TOKEN"
    raw_id, _, secret = raw.partition(".")
    token_id = parse_row_id(raw_id)
    if token_id is None or not secret:
        return None
    digest = _token_hash(secret)
    key = f"{token_id}.{digest}"
    cache = token_cache()
    client = cache.get(key)
    if client is not None:
        return client
    token = db.session.get(ApiToken, token_id)
    if token is None or token.revoked_at is not None or not hmac.compare_digest(token.token_hash, digest):
        db.session.rollback()
        return None
    name, last_used, now = token.name, token.last_used_at, utcnow()
    db.session.rollback()  # end the read; a write, when due, takes the write lock first
    if last_used is None or now - last_used >= LAST_USED_PRECISION:
        begin_write()
        db.session.execute(sa.update(ApiToken).where(ApiToken.id == token_id).values(last_used_at=now))
        db.session.commit()
    cache.put(key, name)
    return name


def list_api_tokens() -> list[ApiToken]:
    return list(db.session.scalars(sa.select(ApiToken).order_by(ApiToken.id)))


def ensure_first_admin() -> Optional[str]:
    """Create the first admin with a random password when none exists; return the password.

    Only ever creates: of several processes starting at once on an empty
    database, one inserts the admin and the others see it (or lose the insert
    on the unique name), so no process resets a password another announced.
    The password goes to ``instance/initial-admin-password`` (0600); the
    console only says where it is. The file is deleted at the first login as
    this admin or when its password is changed.
    """
    begin_write()
    if db.session.scalar(sa.select(sa.func.count(AdminUser.id))):
        db.session.rollback()
        return None
    password = secrets.token_urlsafe(FIRST_PASSWORD_BYTES)
    db.session.add(AdminUser(username=FIRST_ADMIN, password_hash=generate_password_hash(password)))
    try:
        db.session.commit()
    except sa.exc.IntegrityError:  # another process of the app was quicker
        db.session.rollback()
        return None
    path = initial_password_path(current_app.instance_path)
    write_private_file(path, password + "\n", replace=True)
    _announce_first_admin(path)
    return password


def _announce_first_admin(path: Path) -> None:
    print(
        "\n" + "=" * 72 + "\nErster Start: Admin-Zugang angelegt\n"
        f"  Benutzer: {FIRST_ADMIN}\n  Passwort: in {path} (nur für diesen Benutzer lesbar;\n"
        "  wird nach der ersten Anmeldung oder einer Passwortänderung gelöscht)\n"
        f"  Anmelden unter /admin/login; ändern mit: flask --app app create-admin {FIRST_ADMIN}\n" + "=" * 72,
        file=sys.stderr,
        flush=True,
    )
