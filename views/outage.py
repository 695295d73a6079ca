"""While the database cannot be reached: a clean 503 for every request, and two lines in the log.

Without this every request during an outage answers a generic 500 and logs a
traceback. Here the first failing request logs that the outage began, every
request answers ``503`` with ``Retry-After`` (JSON on the API, a short page
otherwise), and the first request that finds the database back logs the end.
"""

from __future__ import annotations

import sqlite3

import sqlalchemy as sa
from flask import Flask, current_app, jsonify, render_template, request

from database import is_database_unavailable, outage_log
from models import db
from views.access import wants_json

RETRY_AFTER_SECONDS = 5
UNAVAILABLE = "Die Datenbank ist gerade nicht erreichbar. Bitte in einigen Sekunden erneut versuchen."


def _database_unavailable(error: Exception):
    if not is_database_unavailable(error):
        raise error  # a bug, not an outage: Flask answers 500 and logs it as usual
    outage_log(current_app).failed(error)
    try:
        db.session.rollback()
    except sa.exc.SQLAlchemyError:
        pass  # the connection is gone with the database; the session is discarded after the request
    if request.path.startswith("/admin/") or wants_json():
        response = jsonify(error=UNAVAILABLE)
    else:
        # A page of its own: the site's layout asks the database who is logged in.
        response = current_app.make_response(render_template("unavailable.html", message=UNAVAILABLE))
    response.status_code = 503
    response.headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
    return response


def _notice_recovery() -> None:
    """During an outage, each request first looks whether the database is back."""
    log = outage_log(current_app)
    if log.is_down:
        db.session.execute(sa.text("SELECT 1"))  # raises while it is still away: 503 as above
        log.recovered()


def init_app(app: Flask) -> None:
    for error in _outage_errors():
        app.register_error_handler(error, _database_unavailable)
    app.before_request(_notice_recovery)


def _outage_errors() -> list[type[Exception]]:
    errors: list[type[Exception]] = [sa.exc.DBAPIError, sqlite3.OperationalError, sqlite3.InterfaceError]
    import psycopg

    return errors + [psycopg.OperationalError, psycopg.InterfaceError]
