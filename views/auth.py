"""The login blueprint: the admin's login and logout pages, and the wiring of access control.

Who may call what is decided in ``views/access.py``; accounts and tokens live
in ``views/accounts.py``, their shell commands in ``views/account_cli.py``.
"""

from __future__ import annotations

from typing import Optional
from urllib.parse import urlsplit

from flask import Blueprint, Flask, current_app, flash, jsonify, redirect, render_template, request, url_for
from flask_login import LoginManager, current_user
from flask_wtf.csrf import CSRFError

from models import AdminUser
from views import account_cli, login_limits
from views.access import csrf, guard_request, wants_json
from views.accounts import FIRST_ADMIN, MIN_ENV_TOKEN_LENGTH, verify_login
from views.errors import CSRF_FAILED
from views.login_limits import limiter, user_and_address_key
from views.private_files import forget_initial_password
from views.sessions import end_session, load_admin, start_session

bp = Blueprint("auth", __name__, url_prefix="/admin")

login_manager = LoginManager()

LOGIN_FAILED = "Benutzername oder Passwort falsch."


def _safe_next(target: Optional[str]) -> str:
    if target and target.startswith("/") and not target.startswith("//") and not urlsplit(target).netloc:
        return target
    return url_for("admin.index")


# -- login pages ----------------------------------------------------------------

@bp.route("/login", methods=["GET", "POST"])
@limiter.limit(lambda: current_app.config["LOGIN_RATE_LIMIT_PER_IP"], methods=["POST"])
@limiter.limit(lambda: current_app.config["LOGIN_RATE_LIMIT_PER_USER_AND_IP"], methods=["POST"],
               key_func=user_and_address_key)
def login():
    """Show the login form; log the admin in (the same answer for every failure)."""
    if request.method == "POST":
        username = request.form.get("username", "").strip()
        login_limits.slow_down(username)
        user = verify_login(username, request.form.get("password", ""))
        if user is None:
            login_limits.record_failure(username)
            flash(LOGIN_FAILED, "error")
            return render_template("login.html"), 401
        start_session(user)
        if user.username == FIRST_ADMIN:
            forget_initial_password(current_app.instance_path)
        return redirect(_safe_next(request.args.get("next")))
    if current_user.is_authenticated:
        return redirect(_safe_next(request.args.get("next")))
    return render_template("login.html")


@bp.post("/logout")
def logout():
    """End this admin's sessions everywhere, this cookie and its CSRF token included."""
    end_session(current_user if current_user.is_authenticated else None)
    flash("Abgemeldet.", "info")
    return redirect(url_for("auth.login"))


# -- wiring -----------------------------------------------------------------------

@login_manager.user_loader
def _load_user(login_id: str) -> Optional[AdminUser]:
    return load_admin(login_id)


def _csrf_failed(error: CSRFError):
    if wants_json() and request.endpoint != "auth.login":
        return jsonify(error=CSRF_FAILED), 400
    back = url_for("auth.login" if request.endpoint == "auth.login" else "admin.index")
    return render_template("error.html", message=CSRF_FAILED, back=back), 400


def _too_many_requests(error):
    if request.endpoint == "auth.login":
        flash("Zu viele Anmeldeversuche. Bitte später erneut versuchen.", "error")
        return render_template("login.html"), 429
    return jsonify(error="Zu viele Anfragen. Bitte später erneut versuchen."), 429


def init_app(app: Flask) -> None:
    """Bind login, CSRF, rate limiting and the account commands to ``app``."""
    configured = app.config.get("ADMIN_API_TOKEN")
    if configured and len(configured) < MIN_ENV_TOKEN_LENGTH:
        raise ValueError(f"ADMIN_API_TOKEN must be at least {MIN_ENV_TOKEN_LENGTH} characters long")
    app.config.setdefault("WTF_CSRF_CHECK_DEFAULT", False)  # checked in access.guard_request
    app.config.setdefault("WTF_CSRF_TIME_LIMIT", None)  # valid for the session's lifetime
    login_manager.init_app(app)
    login_manager.login_view = "auth.login"
    csrf.init_app(app)
    login_limits.init_app(app)
    app.before_request(guard_request)
    app.register_error_handler(CSRFError, _csrf_failed)
    app.register_error_handler(429, _too_many_requests)
    app.register_blueprint(bp)
    account_cli.init_app(app)
