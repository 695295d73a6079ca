"""Response hardening: security headers, HTTPS-aware cookies, proxy trust, a quiet Server header.

The Content-Security-Policy allows scripts and styles only from our own
origin, so even a scraped string that slipped past escaping could not run.
"""

from __future__ import annotations

from flask import Flask, Response, g, request
from flask.sessions import SecureCookieSessionInterface, SessionMixin
from werkzeug.middleware.proxy_fix import ProxyFix
from werkzeug.serving import WSGIRequestHandler

CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)
HSTS = "max-age=31536000; includeSubDomains"
SERVER_NAME_HEADER = "Bonusvergleich"


class HttpsAwareSessionInterface(SecureCookieSessionInterface):
    """Mark the session cookie ``Secure`` over HTTPS; never send one to a bearer-token client.

    A bearer request is authenticated afresh every time: giving it a cookie
    would hand it something that outlives the token's revocation.
    """

    def get_cookie_secure(self, app: Flask) -> bool:
        return bool(app.config["SESSION_COOKIE_SECURE"]) or request.is_secure

    def should_set_cookie(self, app: Flask, session: SessionMixin) -> bool:
        return g.get("api_client") is None and super().should_set_cookie(app, session)


def _add_security_headers(response: Response) -> Response:
    headers = response.headers
    headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
    headers.setdefault("X-Content-Type-Options", "nosniff")
    headers.setdefault("X-Frame-Options", "DENY")
    headers.setdefault("Referrer-Policy", "strict-origin-when-cross-origin")
    headers.setdefault("Cross-Origin-Opener-Policy", "same-origin")
    if request.is_secure:
        headers.setdefault("Strict-Transport-Security", HSTS)
    return response


def _quiet_development_server() -> None:
    """Stop werkzeug's server (``flask run``) announcing its and Python's version in ``Server``.

    It adds that header to every response itself, whatever the app sets, so
    its handler class is told once what to say instead. gunicorn says only
    ``gunicorn``, without a version.
    """
    WSGIRequestHandler.version_string = lambda self: SERVER_NAME_HEADER  # type: ignore[method-assign]


def init_app(app: Flask) -> None:
    """Install the headers, the cookie policy and, when configured, proxy trust."""
    app.config["SESSION_COOKIE_HTTPONLY"] = True
    app.config["SESSION_COOKIE_SAMESITE"] = "Lax"
    app.session_interface = HttpsAwareSessionInterface()
    if app.config.get("TRUST_PROXY"):
        # Behind exactly one reverse proxy that appends the client's address to
        # X-Forwarded-For: only its entry counts, whatever the client put before it.
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=1, x_proto=1, x_host=1)  # type: ignore[method-assign]
    app.after_request(_add_security_headers)
    _quiet_development_server()
