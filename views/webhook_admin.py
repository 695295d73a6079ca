"""The webhook pages under /admin/webhooks: endpoints, their secrets (shown once) and attempts.

Pages only, for a logged-in admin (``views/access.py``); every POST carries
the CSRF token. A new or renewed secret is rendered into the answer of the
POST that made it, with ``Cache-Control: no-store``, and nowhere else: not
in a redirect, a flash message (the session cookie is only signed, not
encrypted) or a log.
"""

from __future__ import annotations

from typing import Any, Optional

import sqlalchemy as sa
from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from werkzeug.wrappers import Response

from models import begin_write, db
from views.admin_guard import guard_admin_blueprint
from webhooks import dispatcher
from webhooks.endpoints import (
    EndpointForm, create_endpoint, delete_endpoint, refusal_warning, renew_secret, send_test_event,
    set_enabled, update_endpoint,
)
from webhooks.models import EVENTS, WebhookAttempt, WebhookDelivery, WebhookEndpoint

bp = Blueprint("webhooks", __name__, url_prefix="/admin/webhooks")

ATTEMPTS_SHOWN = 50
DELIVERIES_SHOWN = 20


guard_admin_blueprint(bp, json_errors=False)  # HTML pages only


def _endpoint_or_404(endpoint_id: int) -> WebhookEndpoint:
    endpoint = db.session.get(WebhookEndpoint, endpoint_id)
    if endpoint is None:
        abort(404, description=f"Webhook-Endpunkt {endpoint_id} nicht gefunden")
    return endpoint


def _endpoint_to_change(endpoint_id: int) -> WebhookEndpoint:
    """The endpoint, read under the write lock: on SQLite a delivery's commit between our read and our
    write would fail the write at once ("database is locked") instead of letting it wait its turn."""
    begin_write()
    return _endpoint_or_404(endpoint_id)


def _form() -> EndpointForm:
    return EndpointForm.parse(request.form, request.form.getlist("events"))


def _warn_if_refused(url: str) -> None:
    warning = refusal_warning(url, dispatcher.state().sender_settings.allowed_hosts)
    if warning:
        flash(warning, "error")


def _no_store(body: str, status: int = 200) -> tuple[str, int, dict[str, str]]:
    return body, status, {"Cache-Control": "no-store"}


def _render_index(form: EndpointForm, new_secret: Optional[str] = None,
                  created: Optional[WebhookEndpoint] = None, status: int = 200) -> Any:
    endpoints = db.session.scalars(sa.select(WebhookEndpoint).order_by(WebhookEndpoint.id)).all()
    # The newest attempt per endpoint, all in one statement.
    newest = (sa.select(sa.func.max(WebhookAttempt.id)).group_by(WebhookAttempt.endpoint_id)).scalar_subquery()
    last_attempts = {attempt.endpoint_id: attempt for attempt in
                     db.session.scalars(sa.select(WebhookAttempt).where(WebhookAttempt.id.in_(newest)))}
    page = render_template("webhooks.html", endpoints=endpoints, last_attempts=last_attempts, form=form,
                           events=EVENTS, new_secret=new_secret, created=created)
    return _no_store(page, status)


@bp.get("")
def index() -> Any:
    """List the endpoints with their newest attempt, and the form to add one."""
    return _render_index(EndpointForm())


@bp.post("")
def create() -> Any:
    """Add an endpoint; the answer shows its secret, this once."""
    form = _form()
    if form.errors:
        for error in form.errors:
            flash(error, "error")
        return _render_index(form, status=400)
    endpoint, secret = create_endpoint(dispatcher.state(), form)
    _warn_if_refused(endpoint.url)
    flash(f"Endpunkt {endpoint.url} angelegt.", "info")
    return _render_index(EndpointForm(), new_secret=secret, created=endpoint)


def _render_endpoint(endpoint: WebhookEndpoint, form: Optional[EndpointForm] = None,
                     new_secret: Optional[str] = None, status: int = 200) -> Any:
    attempts = db.session.execute(
        sa.select(WebhookAttempt, WebhookDelivery.event)
        .join(WebhookDelivery, WebhookDelivery.id == WebhookAttempt.delivery_id)
        .where(WebhookAttempt.endpoint_id == endpoint.id)
        .order_by(WebhookAttempt.id.desc()).limit(ATTEMPTS_SHOWN)
    ).all()
    deliveries = db.session.scalars(
        sa.select(WebhookDelivery).where(WebhookDelivery.endpoint_id == endpoint.id)
        .order_by(WebhookDelivery.id.desc()).limit(DELIVERIES_SHOWN)
    ).all()
    form = form or EndpointForm(url=endpoint.url, events=endpoint.event_names, enabled=endpoint.enabled)
    page = render_template("webhook_endpoint.html", endpoint=endpoint, form=form, events=EVENTS,
                           attempts=attempts, deliveries=deliveries, new_secret=new_secret)
    return _no_store(page, status)


@bp.get("/<id:endpoint_id>")
def show(endpoint_id: int) -> Any:
    """One endpoint: edit it, switch it, test it, and its recorded attempts."""
    return _render_endpoint(_endpoint_or_404(endpoint_id))


@bp.post("/<id:endpoint_id>")
def update(endpoint_id: int) -> Any:
    """Change an endpoint's URL, events and switch."""
    endpoint = _endpoint_to_change(endpoint_id)
    form = _form()
    if form.errors:
        for error in form.errors:
            flash(error, "error")
        return _render_endpoint(endpoint, form=form, status=400)
    update_endpoint(endpoint, form)
    _warn_if_refused(endpoint.url)
    flash("Endpunkt gespeichert.", "info")
    return redirect(url_for("webhooks.show", endpoint_id=endpoint.id))


@bp.post("/<id:endpoint_id>/enabled")
def switch(endpoint_id: int) -> Response:
    """Enable (``enabled=1``) or disable an endpoint."""
    endpoint = _endpoint_to_change(endpoint_id)
    set_enabled(endpoint, request.form.get("enabled") == "1")
    flash("Endpunkt aktiviert." if endpoint.enabled else "Endpunkt deaktiviert.", "info")
    return redirect(url_for("webhooks.show", endpoint_id=endpoint.id))


@bp.post("/<id:endpoint_id>/test")
def test(endpoint_id: int) -> Response:
    """Send the endpoint a signed test event; its attempt appears on the endpoint's page."""
    endpoint = _endpoint_or_404(endpoint_id)
    send_test_event(dispatcher.state(), endpoint)
    flash("Test-Ereignis wird zugestellt: das Ergebnis erscheint unter „Zustellversuche“ "
          "(Seite neu laden).", "info")
    return redirect(url_for("webhooks.show", endpoint_id=endpoint.id))


@bp.post("/<id:endpoint_id>/secret")
def secret(endpoint_id: int) -> Any:
    """Replace the endpoint's secret; the answer shows the new one, this once."""
    endpoint = _endpoint_to_change(endpoint_id)
    new_secret = renew_secret(dispatcher.state(), endpoint)
    flash("Neues Geheimnis erzeugt: das alte gilt ab sofort nicht mehr.", "info")
    return _render_endpoint(endpoint, new_secret=new_secret)


@bp.post("/<id:endpoint_id>/delete")
def delete(endpoint_id: int) -> Response:
    """Delete an endpoint with its deliveries and attempts."""
    endpoint = _endpoint_to_change(endpoint_id)
    url = endpoint.url
    delete_endpoint(endpoint)
    flash(f"Endpunkt {url} gelöscht.", "info")
    return redirect(url_for("webhooks.index"))
