"""Who may call /admin: the request guard for sessions, bearer tokens and CSRF.

- Pages redirect anonymous visitors to the login page; JSON routes answer
  ``401`` with ``WWW-Authenticate``.
- ``Authorization: Bearer <token>`` works on the JSON routes only: tokens made
  by ``flask create-token`` (stored hashed, revocable) or ``ADMIN_API_TOKEN``.
  The maintenance route takes nothing else. A token in the query string of
  any URL is refused before anything else happens (``url_secrets.py``).
- Every state-changing browser request carries a CSRF token. Only a request
  that a valid bearer token authenticated is exempt (a cross-site form cannot
  set that header); a junk ``Authorization`` header exempts nothing.
- A body larger than ``MAX_CONTENT_LENGTH`` is refused with ``413`` before it
  is read (``request_size.py``).
"""

from __future__ import annotations

from typing import Optional

from flask import abort, current_app, g, jsonify, redirect, request, url_for
from flask_login import current_user
from flask_wtf.csrf import CSRFProtect

from views.accounts import api_client_for
from views.request_size import refuse_oversized_body
from views.url_secrets import query_carries_secret

csrf = CSRFProtect()

STATE_CHANGING_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


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
    if request.query_string and query_carries_secret(request.args.items(multi=True),
                                                     current_app.config.get("ADMIN_API_TOKEN")):
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
        check_csrf()  # only now: an anonymous request learns 401, not a CSRF error
        return None
    if endpoint in api_endpoints and wants_json():
        return unauthorized("Anmeldung erforderlich.")
    return redirect(url_for("auth.login", next=request.full_path.rstrip("?")))


def check_csrf() -> None:
    """Demand the CSRF token unless a valid bearer token authenticated this request."""
    if request.method in STATE_CHANGING_METHODS and g.get("api_client") is None:
        csrf.protect()


# Blueprints whose before_request calls require_admin, which checks CSRF after authenticating:
# an anonymous request learns 401 (or the login page), and a bearer token is exempt.
SELF_GUARDED_BLUEPRINTS = frozenset({"admin", "schedules", "webhooks", "history"})


def guard_request() -> None:
    """Before every request: no credentials in URLs, no oversized body, CSRF outside the admin blueprint."""
    refuse_token_in_query()
    refuse_oversized_body()
    # Those blueprints check after authenticating. A request that matched no route changes
    # nothing: it learns 404 or 405, not that a token was missing.
    if request.blueprint not in SELF_GUARDED_BLUEPRINTS and request.url_rule is not None:
        check_csrf()
