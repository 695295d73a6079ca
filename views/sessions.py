"""Admin sessions that end on the server, not only in the browser.

A Flask session is a signed cookie: deleting it at logout does not stop a
copy of it from working. So every login id names the admin *and* the admin's
current ``session_token`` (``AdminUser.get_id``); logout and a password change
replace that token, and the user loader, which runs its one query on every
request anyway, refuses an id whose token is no longer the admin's. On top,
each session carries when it began and when it was last used: older than
``SESSION_LIFETIME_SECONDS`` or idle longer than ``SESSION_IDLE_TIMEOUT_SECONDS``
and it ends. Starting and ending a session clear the whole cookie, the CSRF
token in it included, so a CSRF token never outlives its session.
"""

from __future__ import annotations

import hmac
import time
from typing import Optional

from flask import current_app, flash, session
from flask_login import login_user, logout_user

from models import AdminUser, begin_write, db
from views.ids import parse_row_id

LOGIN_AT, SEEN_AT = "_login_at", "_seen_at"
# The last-used time is written back at most this often (seconds): every write
# sends a new cookie, and a poll's cookie could overwrite a flash message set by
# a request running beside it. An idle session may so end up to a minute early.
SEEN_AT_RESOLUTION = 60
SESSION_ENDED = "Sitzung abgelaufen: bitte erneut anmelden."


def now() -> float:
    """Wall-clock seconds: sessions are checked by every process of the app, on any machine."""
    return time.time()


def start_session(user: AdminUser) -> None:
    """Log ``user`` in with a fresh cookie: nothing of the anonymous session (CSRF token) survives."""
    session.clear()
    login_user(user)
    session[LOGIN_AT] = session[SEEN_AT] = int(now())


def end_session(user: Optional[AdminUser]) -> None:
    """Log out: end every session of ``user`` on the server, then clear this cookie."""
    if user is not None:
        begin_write()
        fresh = db.session.get(AdminUser, user.id)
        if fresh is not None:
            fresh.end_sessions()
        db.session.commit()
    logout_user()
    session.clear()


def _expired() -> bool:
    login_at, seen_at = session.get(LOGIN_AT), session.get(SEEN_AT)
    if not isinstance(login_at, int) or not isinstance(seen_at, int):
        return True  # not made by start_session (e.g. a remember-me cookie): no session of ours
    moment = now()
    config = current_app.config
    return (moment - login_at > float(config["SESSION_LIFETIME_SECONDS"])
            or moment - seen_at > float(config["SESSION_IDLE_TIMEOUT_SECONDS"]))


def load_admin(login_id: str) -> Optional[AdminUser]:
    """Flask-Login's user loader: the admin of a live session, else None (and the session ends)."""
    raw_id, _, token = login_id.partition(":")
    user_id = parse_row_id(raw_id)
    if user_id is None or not token or _expired():
        return _ended()
    user = db.session.get(AdminUser, user_id)
    if user is None or not hmac.compare_digest(user.session_token.encode(), token.encode()):
        return _ended()
    moment = int(now())
    if moment - session[SEEN_AT] >= SEEN_AT_RESOLUTION:
        session[SEEN_AT] = moment
    return user


def _ended() -> None:
    session.clear()
    flash(SESSION_ENDED, "info")
    return None
