"""Who may use /admin: logged-in admins (session + CSRF) and API clients (bearer tokens).

- Pages redirect anonymous visitors to the login page; JSON routes answer
  ``401`` with ``WWW-Authenticate``.
- ``Authorization: Bearer <token>`` works on the JSON routes only: tokens made
  by ``flask create-token`` (stored hashed, revocable) or ``ADMIN_API_TOKEN``.
  The maintenance route takes nothing else. A token in the query string is
  refused, because URLs end up in logs and browser histories.
- Every state-changing browser request carries a CSRF token; bearer requests
  cannot come from a cross-site form, so they are exempt.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import sys
from typing import Optional
from urllib.parse import urlsplit

import click
from flask.cli import with_appcontext
import sqlalchemy as sa
from flask import (
    Blueprint, Flask, abort, current_app, flash, g, jsonify, redirect, render_template, request, url_for,
)
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_login import LoginManager, current_user, login_user, logout_user
from flask_wtf.csrf import CSRFError, CSRFProtect
from werkzeug.security import check_password_hash, generate_password_hash

from models import AdminUser, ApiToken, begin_write, db, utcnow_naive

bp = Blueprint("auth", __name__, url_prefix="/admin")

login_manager = LoginManager()
csrf = CSRFProtect()
limiter = Limiter(get_remote_address)

MIN_PASSWORD_LENGTH = 12
MIN_ENV_TOKEN_LENGTH = 24
LOGIN_FAILED = "Benutzername oder Passwort falsch."
_TOKEN_IN_QUERY = re.compile(r"token|api[_-]?key|auth|bearer|secret", re.IGNORECASE)
# Checked when the username is unknown, so both failures take the same time.
_DUMMY_HASH = generate_password_hash(secrets.token_hex(16))


# -- credentials --------------------------------------------------------------

def _token_hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def set_admin_password(username: str, password: str) -> AdminUser:
    """Create the admin, or reset the password of an existing one."""
    if len(password) < MIN_PASSWORD_LENGTH:
        raise ValueError(f"Das Passwort braucht mindestens {MIN_PASSWORD_LENGTH} Zeichen.")
    begin_write()
    user = db.session.scalar(sa.select(AdminUser).where(AdminUser.username == username))
    if user is None:
        user = AdminUser(username=username)
        db.session.add(user)
    user.password_hash = generate_password_hash(password)
    db.session.commit()
    return user


def verify_login(username: str, password: str) -> Optional[AdminUser]:
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
    secret = secrets.token_urlsafe(32)
    token = ApiToken(name=name, token_hash=_token_hash(secret))
    db.session.add(token)
    db.session.commit()
    return f"{token.id}.{secret}"


def revoke_api_token(name: str) -> bool:
    begin_write()
    token = db.session.scalar(sa.select(ApiToken).where(ApiToken.name == name))
    if token is None or token.revoked_at is not None:
        return False
    token.revoked_at = utcnow_naive()
    db.session.commit()
    return True


def api_client_for(raw: str) -> Optional[str]:
    """Return the name of the client the bearer token belongs to, or None."""
    configured = current_app.config.get("ADMIN_API_TOKEN") or ""
    if configured and hmac.compare_digest(raw.encode(), configured.encode()):
        return "ADMIN_API_TOKEN"
    token_id, _, secret = raw.partition(".")
    if not token_id.isdigit() or not secret:
        return None
    begin_write()
    token = db.session.get(ApiToken, int(token_id))
    if token is None or token.revoked_at is not None or not hmac.compare_digest(
        token.token_hash, _token_hash(secret)
    ):
        db.session.rollback()
        return None
    token.last_used_at = utcnow_naive()
    db.session.commit()
    return token.name


def bearer_token() -> Optional[str]:
    """The token of an ``Authorization: Bearer`` header; None without the header."""
    header = request.headers.get("Authorization")
    if header is None:
        return None
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer":
        # Basic credentials a browser attaches by itself (behind a password-protected
        # proxy) are no API token: such a request stays a browser request, CSRF included.
        return None
    return value.strip()  # "" is a bearer header without a token: never valid


# -- answers --------------------------------------------------------------------

def wants_json() -> bool:
    """Tell API clients (and the page's fetch calls) from browsers navigating."""
    if not request.accept_mimetypes:
        return True
    return request.accept_mimetypes.best_match(["application/json", "text/html"]) == "application/json"


def unauthorized(message: str):
    response = jsonify(error=message)
    response.status_code = 401
    response.headers["WWW-Authenticate"] = 'Bearer realm="admin"'
    return response


def refuse_token_in_query() -> None:
    if any(_TOKEN_IN_QUERY.search(name) for name in request.args):
        abort(400, description="Zugangsdaten gehören in den Authorization-Header, nicht in die URL.")


def require_admin(api_endpoints: set[str], token_only: set[str]):
    """Authenticate a request to the admin blueprint, or return the refusal."""
    raw = bearer_token()
    endpoint = request.endpoint or ""
    if raw is not None and endpoint in api_endpoints:
        client = api_client_for(raw) if raw else None
        if client is None:
            return unauthorized("API-Token ungültig oder widerrufen.")
        g.api_client = client
        return None
    if endpoint in token_only:
        return unauthorized("Diese Route verlangt ein API-Token (Authorization: Bearer ...).")
    if current_user.is_authenticated:
        _check_csrf()  # only now: an anonymous request learns 401, not a CSRF error
        return None
    if endpoint in api_endpoints and wants_json():
        return unauthorized("Anmeldung erforderlich.")
    return redirect(url_for("auth.login", next=request.full_path.rstrip("?")))


def _safe_next(target: Optional[str]) -> str:
    if target and target.startswith("/") and not target.startswith("//") and not urlsplit(target).netloc:
        return target
    return url_for("admin.index")


# -- login pages ----------------------------------------------------------------

def _username_key() -> str:
    return "login-user:" + request.form.get("username", "").strip().casefold()


@bp.route("/login", methods=["GET", "POST"])
@limiter.limit(lambda: current_app.config["LOGIN_RATE_LIMIT_PER_IP"], methods=["POST"])
@limiter.limit(lambda: current_app.config["LOGIN_RATE_LIMIT_PER_USER"], methods=["POST"], key_func=_username_key)
def login():
    """Show the login form; log the admin in (the same answer for every failure)."""
    if request.method == "POST":
        user = verify_login(request.form.get("username", "").strip(), request.form.get("password", ""))
        if user is None:
            flash(LOGIN_FAILED, "error")
            return render_template("login.html"), 401
        login_user(user)
        return redirect(_safe_next(request.args.get("next")))
    if current_user.is_authenticated:
        return redirect(_safe_next(request.args.get("next")))
    return render_template("login.html")


@bp.post("/logout")
def logout():
    logout_user()
    flash("Abgemeldet.", "info")
    return redirect(url_for("auth.login"))


# -- wiring -----------------------------------------------------------------------

@login_manager.user_loader
def _load_user(user_id: str) -> Optional[AdminUser]:
    return db.session.get(AdminUser, int(user_id)) if user_id.isdigit() else None


def _check_csrf() -> None:
    if request.method in ("POST", "PUT", "PATCH", "DELETE") and bearer_token() is None:
        csrf.protect()


def _guard_request() -> None:
    if request.path.startswith("/admin"):
        refuse_token_in_query()
    if request.blueprint != "admin":  # the admin blueprint checks after authenticating
        _check_csrf()


def _csrf_failed(error: CSRFError):
    message = "Sicherheitstoken fehlt oder ist abgelaufen: bitte die Seite neu laden und erneut senden."
    if wants_json() and request.endpoint != "auth.login":
        return jsonify(error=message), 400
    back = url_for("auth.login" if request.endpoint == "auth.login" else "admin.index")
    return render_template("error.html", message=message, back=back), 400


def _too_many_requests(error):
    if request.endpoint == "auth.login":
        flash("Zu viele Anmeldeversuche. Bitte später erneut versuchen.", "error")
        return render_template("login.html"), 429
    return jsonify(error="Zu viele Anfragen. Bitte später erneut versuchen."), 429


def ensure_first_admin() -> Optional[str]:
    """Create the first admin with a random password when none exists; return the password."""
    if db.session.scalar(sa.select(sa.func.count(AdminUser.id))):
        return None
    password = secrets.token_urlsafe(15)
    try:
        set_admin_password("admin", password)
    except sa.exc.IntegrityError:  # another process of the app was quicker
        db.session.rollback()
        return None
    print(
        "\n" + "=" * 72 + "\nErster Start: Admin-Zugang angelegt (nur jetzt angezeigt)\n"
        f"  Benutzer: admin\n  Passwort: {password}\n"
        "  Anmelden unter /admin/login; ändern mit: flask --app app create-admin admin\n" + "=" * 72,
        file=sys.stderr,
        flush=True,
    )
    return password


def init_app(app: Flask) -> None:
    """Bind login, CSRF, rate limiting and the CLI commands to ``app``."""
    configured = app.config.get("ADMIN_API_TOKEN")
    if configured and len(configured) < MIN_ENV_TOKEN_LENGTH:
        raise ValueError(f"ADMIN_API_TOKEN must be at least {MIN_ENV_TOKEN_LENGTH} characters long")
    app.config.setdefault("WTF_CSRF_CHECK_DEFAULT", False)  # checked in _guard_request
    app.config.setdefault("WTF_CSRF_TIME_LIMIT", None)  # valid for the session's lifetime
    login_manager.init_app(app)
    login_manager.login_view = "auth.login"
    csrf.init_app(app)
    limiter.init_app(app)
    app.before_request(_guard_request)
    app.register_error_handler(CSRFError, _csrf_failed)
    app.register_error_handler(429, _too_many_requests)
    app.register_blueprint(bp)
    for command in (create_admin_command, create_token_command, revoke_token_command, list_tokens_command):
        app.cli.add_command(command)


# -- CLI ----------------------------------------------------------------------------

@click.command("create-admin")
@with_appcontext
@click.argument("username")
@click.password_option(help=f"at least {MIN_PASSWORD_LENGTH} characters; asked for when missing")
def create_admin_command(username: str, password: str) -> None:
    """Create an admin, or reset an existing admin's password."""
    try:
        set_admin_password(username, password)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"Admin {username!r} gespeichert.")


@click.command("create-token")
@with_appcontext
@click.argument("name")
def create_token_command(name: str) -> None:
    """Create a named API token and print it (it is not shown again)."""
    try:
        token = create_api_token(name)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(token)


@click.command("revoke-token")
@with_appcontext
@click.argument("name")
def revoke_token_command(name: str) -> None:
    """Revoke the API token with this name."""
    if not revoke_api_token(name):
        raise click.ClickException(f"Kein aktives Token namens {name!r}.")
    click.echo(f"Token {name!r} widerrufen.")


@click.command("list-tokens")
@with_appcontext
def list_tokens_command() -> None:
    """List API tokens (names and dates only)."""
    for token in db.session.scalars(sa.select(ApiToken).order_by(ApiToken.id)):
        state = f"widerrufen {token.revoked_at:%Y-%m-%d}" if token.revoked_at else "aktiv"
        used = f"{token.last_used_at:%Y-%m-%d %H:%M}" if token.last_used_at else "nie"
        click.echo(f"{token.name}\t{state}\tzuletzt benutzt: {used}")
