"""Signed webhooks on job events: endpoints, deliveries with retries, the delivery threads.

``dispatcher`` is the Flask extension (created unbound; ``dispatcher.init_app(app)``
in the factory). Which module holds what:

* ``models.py``: the tables (endpoints, deliveries, attempts);
* ``signing.py``: Standard Webhooks signatures and ``whsec_`` secrets;
* ``secret_box.py``: secrets encrypted at rest under a key derived from WEBHOOK_SECRETS_KEY or SECRET_KEY;
* ``events.py``: the message bodies, and the ``job_finished`` receiver that wakes the threads;
* ``outbox.py``: turns the job store's events (its outbox) into deliveries, once per endpoint;
* ``store.py``: the statements delivery runs (claim with a lease, record an attempt);
* ``sender.py``: one guarded, time-limited POST; ``retry.py``: the backoff schedule;
* ``delivery.py``: this process's delivery threads;
* ``endpoints.py``: what the admin pages do to endpoints.

The admin pages are ``views/webhook_admin.py``. Nothing in ``jobs/`` knows
about webhooks: they read the job events ``jobs/`` writes with each final
state (``jobs.signals.event_outbox``) and listen to ``job_finished`` to do so at once.
"""

from __future__ import annotations

from typing import Any, Optional

from flask import Flask, current_app

from database import outage_log
from job_queue import job_finished
from jobs.signals import event_outbox
from models import db
from webhooks.delivery import DeliveryState, deliver_due
from webhooks.events import EXTENSION_KEY, on_job_finished
from webhooks.retry import RetrySchedule
from webhooks.secret_box import SecretBox
from webhooks.sender import SenderSettings, WebhookSender

# Every key can be set like the app's others (instance/config.py, environment).
DEFAULT_CONFIG: dict[str, Any] = {
    # "host" or "host:port", comma-separated: destinations exempt from the address guard.
    "WEBHOOK_ALLOWED_HOSTS": "",
    # The key endpoint secrets are encrypted under (at least 32 bytes); unset: derived from SECRET_KEY.
    # Set it from the environment to keep it apart from the database and the instance folder.
    "WEBHOOK_SECRETS_KEY": None,
    "WEBHOOK_CONNECT_TIMEOUT": 5.0,  # seconds to connect
    "WEBHOOK_READ_TIMEOUT": 15.0,  # seconds of silence while waiting for the answer
    "WEBHOOK_TOTAL_TIMEOUT": 30.0,  # seconds one attempt may take in all
    "WEBHOOK_RETRY_FIRST_DELAY": 5.0,  # seconds before the first retry; doubles with each failure
    "WEBHOOK_RETRY_MAX_DELAY": 6 * 3600.0,  # longest wait between two attempts
    "WEBHOOK_RETRY_FOR": 24 * 3600.0,  # seconds after the event when retrying stops
    "WEBHOOK_RETRY_JITTER": 0.2,  # each wait is randomly up to this share shorter or longer
    # Delivery threads per process, and how many of them may wait on one endpoint at a time: a
    # stalled endpoint holds at most WEBHOOK_ENDPOINT_CONCURRENCY threads, so up to 7 stalled
    # endpoints leave a thread for the healthy ones.
    "WEBHOOK_DELIVERY_THREADS": 8,
    "WEBHOOK_ENDPOINT_CONCURRENCY": 1,
    "WEBHOOK_POLL_INTERVAL": 60.0,  # seconds an idle delivery thread waits before looking itself
    "WEBHOOK_DELIVERY_AUTOSTART": True,  # start the threads when serving, and when a job of this process ends
}


def _allowed_hosts(raw: Any) -> tuple[str, ...]:
    entries = raw.split(",") if isinstance(raw, str) else list(raw or ())
    return tuple(entry.strip() for entry in entries if entry.strip())


class WebhookDispatcher:
    """Flask extension: records deliveries of job events and runs this process's delivery threads."""

    def __init__(self, app: Optional[Flask] = None) -> None:
        if app is not None:
            self.init_app(app)

    def init_app(self, app: Flask) -> None:
        """Bind to ``app`` (after ``db.init_app`` and ``job_queue.init_app``); threads start later."""
        if EXTENSION_KEY in app.extensions:
            raise RuntimeError("WebhookDispatcher is already registered on this app")
        for key, value in DEFAULT_CONFIG.items():
            app.config.setdefault(key, value)
        config = app.config
        with app.app_context():
            engine = db.engine
        app.extensions[EXTENSION_KEY] = DeliveryState(
            engine=engine,
            box=SecretBox(config["WEBHOOK_SECRETS_KEY"] or config["SECRET_KEY"],
                          key_name="WEBHOOK_SECRETS_KEY" if config["WEBHOOK_SECRETS_KEY"] else "SECRET_KEY"),
            sender_settings=SenderSettings(
                connect_timeout=float(config["WEBHOOK_CONNECT_TIMEOUT"]),
                read_timeout=float(config["WEBHOOK_READ_TIMEOUT"]),
                total_timeout=float(config["WEBHOOK_TOTAL_TIMEOUT"]),
                allowed_hosts=_allowed_hosts(config["WEBHOOK_ALLOWED_HOSTS"]),
            ),
            schedule=RetrySchedule(
                first_delay=float(config["WEBHOOK_RETRY_FIRST_DELAY"]),
                max_delay=float(config["WEBHOOK_RETRY_MAX_DELAY"]),
                retry_for=float(config["WEBHOOK_RETRY_FOR"]),
                jitter=float(config["WEBHOOK_RETRY_JITTER"]),
            ),
            thread_count=int(config["WEBHOOK_DELIVERY_THREADS"]),
            poll_interval=float(config["WEBHOOK_POLL_INTERVAL"]),
            autostart=bool(config["WEBHOOK_DELIVERY_AUTOSTART"]),
            endpoint_concurrency=max(1, int(config["WEBHOOK_ENDPOINT_CONCURRENCY"])),
            outbox=event_outbox(app),  # after job_queue.init_app; None for an app without a job queue
            outage=outage_log(app),
        )
        # One module-level receiver for every app: it finds the app's state through
        # the sender, so the signal holds no reference to any app.
        job_finished.connect(on_job_finished)

    @staticmethod
    def state(app: Optional[Flask] = None) -> DeliveryState:
        """The delivery state of ``app`` (default: the current app)."""
        target = app if app is not None else current_app._get_current_object()  # type: ignore[attr-defined]
        return target.extensions[EXTENSION_KEY]

    def start(self, app: Optional[Flask] = None) -> None:
        """Start this process's delivery threads."""
        self.state(app).start()

    def start_automatically(self, app: Optional[Flask] = None) -> None:
        """Start the threads as a serving process or ``flask worker`` does: unless WEBHOOK_DELIVERY_AUTOSTART is off.

        Started at once rather than on the first event, so retries that fell
        due while no process ran are sent without waiting for a new job.
        """
        state = self.state(app)
        if state.autostart:
            state.start()

    def stop(self, app: Optional[Flask] = None, timeout: Optional[float] = 10.0) -> bool:
        """Stop the delivery threads after their current attempt; return whether all have exited."""
        return self.state(app).stop(timeout)

    def wake(self, app: Optional[Flask] = None) -> None:
        """Tell the delivery threads a delivery was recorded (starting them if allowed)."""
        self.state(app).wake()

    def run_due(self, app: Optional[Flask] = None) -> int:
        """Consume job events and send every due delivery here (tests, scripts); return the attempts made."""
        state = self.state(app)
        with WebhookSender(state.sender_settings) as sender:
            return deliver_due(state, sender, f"{state.token}-sync")


dispatcher = WebhookDispatcher()

__all__ = ["DEFAULT_CONFIG", "WebhookDispatcher", "dispatcher"]
