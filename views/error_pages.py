"""German error pages inside the site's layout; JSON for the admin API, as before.

A person who mistypes a URL, posts to a page or meets a bug sees a page in
German with the site's header and a way back. Under ``/admin/`` (except the
login page) and for clients that ask for JSON every error stays
``{"error": "..."}`` (``views/errors.py``): scripts and the console's fetch
calls read that.
"""

from __future__ import annotations

import logging

from flask import Flask, Response, render_template, request, url_for
from werkzeug.exceptions import HTTPException, InternalServerError

from views.errors import json_error

log = logging.getLogger(__name__)

# Title and what the person can do, per status code; werkzeug's texts are English.
PAGES: dict[int, tuple[str, str]] = {
    400: ("Ungültige Anfrage", "Die Anfrage ließ sich nicht verarbeiten. Bitte die Eingaben prüfen."),
    404: ("Seite nicht gefunden", "Diese Seite gibt es nicht (mehr). Vielleicht hilft die Shopsuche weiter."),
    405: ("Methode nicht erlaubt", "Diese Adresse lässt sich so nicht aufrufen. Bitte über die Links der Seite gehen."),
    500: ("Interner Fehler", "Auf dem Server ist ein Fehler aufgetreten. Bitte später erneut versuchen."),
}


def _is_api_request() -> bool:
    """Under /admin/ (but the login page) as the API always was; elsewhere only when JSON is asked for."""
    if request.path.startswith("/admin/") and request.endpoint != "auth.login":
        return True
    accepted = request.accept_mimetypes
    return bool(accepted) and accepted.best_match(["text/html", "application/json"]) == "application/json"


def _own_description(error: HTTPException) -> str | None:
    """A description the app set itself (German), not werkzeug's default text."""
    default = type(error).description
    return error.description if error.description and error.description != default else None


def error_page(error: HTTPException) -> tuple[str, int] | Response:
    """Answer an HTTP error: JSON for the API, else a German page with the right status (and ``Allow``)."""
    if _is_api_request():
        return json_error(error)
    code = error.code or 500
    title, message = PAGES.get(code, PAGES[500])
    if code != 500:
        message = _own_description(error) or message
    response = Response(render_template("error.html", title=title, message=message, code=code,
                                        back=url_for("shops.index")), status=code)
    if code == 405 and getattr(error, "valid_methods", None):
        response.headers["Allow"] = ", ".join(error.valid_methods)
    return response


def internal_error(error: InternalServerError) -> tuple[str, int] | Response:
    """A crash: logged with its traceback by Flask already; the person sees no internals."""
    return error_page(InternalServerError(description=PAGES[500][1]))


def init_app(app: Flask) -> None:
    for code in (400, 404, 405):
        app.register_error_handler(code, error_page)
    app.register_error_handler(InternalServerError, internal_error)
