"""JSON error answers for the API: ``{"error": "..."}`` with the matching status code."""

from __future__ import annotations

from flask import Response, jsonify, request
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException

CSRF_FAILED = "Sicherheitstoken fehlt oder ist abgelaufen: bitte die Seite neu laden und erneut senden."


def json_error(error: HTTPException) -> Response:
    """Turn an HTTP error into JSON, in German where werkzeug's text would be English."""
    description = error.description
    if isinstance(error, CSRFError):
        description = CSRF_FAILED
    elif error.code == 405:
        description = f"Methode {request.method} ist für {request.path} nicht erlaubt"
    elif error.code == 404 and description == type(error).description:
        description = f"Nicht gefunden: {request.path}"
    response = jsonify(error=description)
    response.status_code = error.code or 500
    if error.code == 405 and getattr(error, "valid_methods", None):
        response.headers["Allow"] = ", ".join(error.valid_methods)
    return response
