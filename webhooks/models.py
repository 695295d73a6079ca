"""The webhook tables: endpoints the admin configures, deliveries owed to them, and every attempt.

A delivery is one event owed to one endpoint: the exact body to send (kept,
so every retry signs the same bytes even after the job itself was cleared)
and its schedule. Any process may claim a due delivery; the claim is a lease
(``lease_owner``/``lease_until``), so each attempt is made by one process
and a process that dies mid-attempt leaves the delivery to another after the
lease. Timestamps are naive UTC (``database.utcnow``).
"""

from __future__ import annotations

from datetime import datetime
from enum import Enum
from typing import Optional

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from database import utcnow
from models import db

# The events an endpoint can subscribe to, keyed by the job status that sends them.
EVENTS: dict[str, str] = {
    "completed": "Abgeschlossen",
    "failed": "Fehlgeschlagen",
    "cancelled": "Abgebrochen",
}
TEST_EVENT = "test"  # sent by the admin's "test" button, whatever the endpoint subscribed to


class DeliveryStatus(str, Enum):
    """Where a delivery stands; only ``PENDING`` and an expired ``SENDING`` are claimed."""

    PENDING = "pending"  # waiting for its next attempt (at ``next_attempt_at``)
    SENDING = "sending"  # a process holds the lease and is sending it now
    DELIVERED = "delivered"  # an attempt got a 2xx answer
    FAILED = "failed"  # given up: refused destination, 410 Gone, or retried for too long

    @property
    def is_final(self) -> bool:
        return self in (DeliveryStatus.DELIVERED, DeliveryStatus.FAILED)


class WebhookEndpoint(db.Model):
    """A URL that gets a signed POST for each event it subscribed to."""

    __tablename__ = "webhook_endpoint"

    id: Mapped[int] = mapped_column(primary_key=True)
    url: Mapped[str] = mapped_column(sa.String(2000))
    events: Mapped[str] = mapped_column(sa.String(200))  # event names, comma-separated
    enabled: Mapped[bool] = mapped_column(default=True)
    # The signing secret ("whsec_..."), encrypted with a key derived from SECRET_KEY.
    secret_encrypted: Mapped[str] = mapped_column(sa.String(500))
    # Why delivery turned the endpoint off by itself (e.g. it answered 410 Gone).
    disabled_reason: Mapped[Optional[str]] = mapped_column(sa.String(300), nullable=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    @property
    def event_names(self) -> list[str]:
        return [name for name in self.events.split(",") if name]

    def subscribes_to(self, event: str) -> bool:
        return event in self.event_names


class WebhookDelivery(db.Model):
    """One event owed to one endpoint, with its body and retry schedule."""

    __tablename__ = "webhook_delivery"
    __table_args__ = (
        sa.Index("ix_webhook_delivery_status_due", "status", "next_attempt_at"),
        # One delivery per job event and endpoint, however often the event is read (jobs/signals.py).
        sa.Index("uq_webhook_delivery_event_endpoint", "event_id", "endpoint_id", unique=True),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    endpoint_id: Mapped[int] = mapped_column(
        sa.ForeignKey("webhook_endpoint.id", ondelete="CASCADE"), index=True)
    message_id: Mapped[str] = mapped_column(sa.String(40))  # webhook-id: the same on every retry
    event: Mapped[str] = mapped_column(sa.String(20))
    job_id: Mapped[Optional[str]] = mapped_column(sa.String(36), nullable=True)
    # The job event (``job_event.id``) it was made from; None for the admin's test events.
    event_id: Mapped[Optional[int]] = mapped_column(sa.BigInteger, nullable=True)
    body: Mapped[str] = mapped_column(sa.Text)  # the exact JSON sent and signed
    status: Mapped[str] = mapped_column(sa.String(12), default=DeliveryStatus.PENDING.value)
    attempts: Mapped[int] = mapped_column(default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(default=utcnow)
    lease_owner: Mapped[Optional[str]] = mapped_column(sa.String(120), nullable=True)
    lease_until: Mapped[Optional[datetime]] = mapped_column(nullable=True)
    last_error: Mapped[Optional[str]] = mapped_column(sa.String(500), nullable=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[Optional[datetime]] = mapped_column(nullable=True)


class WebhookAttempt(db.Model):
    """One POST (or refusal to send one) for a delivery, as the admin sees it."""

    __tablename__ = "webhook_attempt"
    __table_args__ = (sa.Index("ix_webhook_attempt_endpoint_id", "endpoint_id", "id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    delivery_id: Mapped[int] = mapped_column(
        sa.ForeignKey("webhook_delivery.id", ondelete="CASCADE"), index=True)
    endpoint_id: Mapped[int] = mapped_column(sa.ForeignKey("webhook_endpoint.id", ondelete="CASCADE"))
    number: Mapped[int]  # 1 for the first attempt of its delivery
    attempted_at: Mapped[datetime] = mapped_column(default=utcnow)
    status_code: Mapped[Optional[int]] = mapped_column(nullable=True)
    duration_ms: Mapped[int] = mapped_column(default=0)
    error: Mapped[Optional[str]] = mapped_column(sa.String(500), nullable=True)
