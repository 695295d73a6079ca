"""Error answers: JSON for the API (``{"error": "..."}`` with the status code), quoting little input.

An error message may quote what the client sent, but never more than
``QUOTE_LIMIT`` characters of it: a 5 MB parameter must not come back as a
5 MB error.
"""

from __future__ import annotations

import socket

from flask import Response, current_app, jsonify, render_template, request, url_for
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException

from views.access import wants_json

CSRF_FAILED = "Sicherheitstoken fehlt oder ist abgelaufen: bitte die Seite neu laden und erneut senden."
QUOTE_LIMIT = 80


def quoted(value: object, limit: int = QUOTE_LIMIT) -> str:
    """``repr`` of client input, cut to ``limit`` characters (an ellipsis says it was cut)."""
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "…"


def json_error(error: HTTPException) -> Response:
    """Turn an HTTP error into JSON, in German where werkzeug's text would be English."""
    description = error.description
    if isinstance(error, CSRFError):
        description = CSRF_FAILED
    elif error.code == 405:
        description = f"Methode {request.method} ist für {quoted(request.path)} nicht erlaubt"
    elif error.code == 404 and description == type(error).description:
        description = f"Nicht gefunden: {quoted(request.path)}"
    elif error.code == 413:
        stop_reading_body()
        description = too_large_message()
    response = jsonify(error=description)
    response.status_code = error.code or 500
    if error.code == 405 and getattr(error, "valid_methods", None):
        response.headers["Allow"] = ", ".join(error.valid_methods)
    return response


def too_large_message() -> str:
    limit = current_app.config.get("MAX_CONTENT_LENGTH") or 0
    return f"Anfrage zu groß: höchstens {limit:,} Bytes.".replace(",", ".")


def stop_reading_body() -> None:
    """Let the development server close the connection without reading the refused body.

    werkzeug's server reads whatever a client still sends after the answer,
    10 MB at a time, so that the client sees the 413 instead of a reset; a
    200 MB upload would still pass through memory. Shutting the socket's read
    side makes that drain end at once. Other servers (gunicorn) never drain.
    """
    connection = request.environ.get("werkzeug.socket")
    if isinstance(connection, socket.socket):
        try:
            connection.shutdown(socket.SHUT_RD)
        except OSError:
            pass  # already gone: nothing left to read either


def request_too_large(error: HTTPException):
    """413 as JSON for API clients and under /admin/ (but the login page), else as a page."""
    if (request.path.startswith("/admin/") and request.endpoint != "auth.login") or wants_json():
        return json_error(error)
    stop_reading_body()
    return render_template("error.html", message=too_large_message(), back=url_for("shops.index")), 413
