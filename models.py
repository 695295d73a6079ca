"""Database models: loyalty programmes, their partner shops, rates, scrape runs and admins.

Timestamps are stored as naive UTC (``database.utcnow``).
"""

from __future__ import annotations

import secrets
from datetime import datetime
from typing import Optional

import sqlalchemy as sa
from flask_login import UserMixin
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from database import utcnow


class Base(DeclarativeBase):
    pass


# Objects stay readable after commit without a new query: a job that commits and
# then works for minutes must not hold a database transaction open meanwhile.
db = SQLAlchemy(model_class=Base, session_options={"expire_on_commit": False})


def begin_write() -> None:
    """Start the session's next transaction holding the write lock.

    On SQLite a transaction that reads and then writes must lock up front, or
    a commit by another connection in between (the job queue heartbeats
    several times a second) makes its first write fail. Call this before a
    read-then-write unit of work; other databases ignore the option.
    """
    if db.session().in_transaction():
        db.session.commit()
    db.session.connection(execution_options={"sqlite_immediate": True})


class Programme(db.Model):
    """A loyalty programme (PAYBACK, Miles & More, the bundled example)."""

    __tablename__ = "programme"

    id: Mapped[int] = mapped_column(primary_key=True)
    slug: Mapped[str] = mapped_column(sa.String(40), unique=True)
    name: Mapped[str] = mapped_column(sa.String(120))
    unit_name: Mapped[str] = mapped_column(sa.String(40), default="Punkte")
    # The whole programme is made up (the Example scraper's catalogue).
    is_sample: Mapped[bool] = mapped_column(default=False)

    shops: Mapped[list["Shop"]] = relationship(back_populates="programme")


class Shop(db.Model):
    """A partner shop of one programme, keyed by the programme's stable id."""

    __tablename__ = "shop"
    __table_args__ = (sa.UniqueConstraint("programme_id", "external_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    programme_id: Mapped[int] = mapped_column(sa.ForeignKey("programme.id"), index=True)
    external_id: Mapped[str] = mapped_column(sa.String(120))
    name: Mapped[str] = mapped_column(sa.String(300))
    slug: Mapped[Optional[str]] = mapped_column(sa.String(300), nullable=True)
    detail_url: Mapped[Optional[str]] = mapped_column(sa.String(1000), nullable=True)
    logo_url: Mapped[Optional[str]] = mapped_column(sa.String(1000), nullable=True)
    domains: Mapped[list] = mapped_column(sa.JSON, default=list)
    categories: Mapped[list] = mapped_column(sa.JSON, default=list)
    active: Mapped[bool] = mapped_column(default=True, index=True)
    # Came from a bundled sample catalogue (offline mode), not the live site.
    is_sample: Mapped[bool] = mapped_column(default=False)
    first_seen: Mapped[datetime] = mapped_column(default=utcnow)
    last_seen: Mapped[datetime] = mapped_column(default=utcnow)

    programme: Mapped[Programme] = relationship(back_populates="shops")
    rates: Mapped[list["Rate"]] = relationship(
        back_populates="shop", order_by="Rate.valid_from", cascade="all, delete-orphan"
    )

    @property
    def current_rates(self) -> list["Rate"]:
        return [rate for rate in self.rates if rate.valid_to is None]


# -- The vocabulary of Rate.kind and Rate.rate_type ---------------------------
# Scrapers write these values and the views read them; both import them from here.

# Rate.kind: what role a rate plays in a shop's offer.
BASE = "base"  # the programme's standing earn rate
PROMOTION = "promotion"  # a campaign apart from the base rate, with its own validity
HINT = "hint"  # a voucher or notice: shown, never counted as an earn rate
EARN_RATE_KINDS = (BASE, PROMOTION)  # kinds whose unparsed texts are counted as "not understood"

# Rate.rate_type: how ``Rate.value`` is meant (None: the text was not understood).
PER_EURO = "per_euro"  # units per euro spent
PER_ORDER = "per_order"  # a fixed number of units per order, booking or contract
FIXED_UP_TO = "up_to"  # "up to N units", no base to relate them to
PERCENT = "percent"  # percent of the amount spent, paid in euro
MULTIPLIER = "multiplier"  # a promotion that multiplies the base rate ("10-fach °P")


class Rate(db.Model):
    """One earn rate of a shop over a period; ``valid_to`` is None while current.

    ``raw_text`` is always the programme's own wording; ``value`` and
    ``rate_type`` are filled only when the text was understood.
    """

    __tablename__ = "rate"

    id: Mapped[int] = mapped_column(primary_key=True)
    shop_id: Mapped[int] = mapped_column(sa.ForeignKey("shop.id"), index=True)
    kind: Mapped[str] = mapped_column(sa.String(20), default=BASE)  # BASE | PROMOTION | HINT
    raw_text: Mapped[str] = mapped_column(sa.String(500))
    rate_type: Mapped[Optional[str]] = mapped_column(sa.String(20), nullable=True)
    value: Mapped[Optional[float]] = mapped_column(sa.Float, nullable=True)
    up_to: Mapped[bool] = mapped_column(default=False)  # "Bis zu ...": an upper bound
    detail: Mapped[Optional[str]] = mapped_column(sa.String(500), nullable=True)
    ends_at: Mapped[Optional[datetime]] = mapped_column(nullable=True)  # promotion end
    valid_from: Mapped[datetime] = mapped_column(default=utcnow)
    valid_to: Mapped[Optional[datetime]] = mapped_column(nullable=True)

    shop: Mapped[Shop] = relationship(back_populates="rates")


# The programmes the scrapers fill; created on start-up so the admin page can
# show their counts before the first run.
DEFAULT_PROGRAMMES = (
    {"slug": "payback", "name": "PAYBACK", "unit_name": "°Punkte", "is_sample": False},
    {"slug": "miles_and_more", "name": "Miles & More", "unit_name": "Meilen", "is_sample": False},
    {"slug": "example", "name": "Beispiel-Bonusprogramm", "unit_name": "Punkte", "is_sample": True},
)


def seed_programmes() -> None:
    """Create any missing programme of ``DEFAULT_PROGRAMMES``."""
    begin_write()
    existing = set(db.session.scalars(sa.select(Programme.slug)))
    for spec in DEFAULT_PROGRAMMES:
        if spec["slug"] not in existing:
            db.session.add(Programme(**spec))
    try:
        db.session.commit()
    except sa.exc.IntegrityError:  # another process of the app seeded them first
        db.session.rollback()


# ScrapeRun.outcome: how a run ended, and whether its offers are in the shop tables ("applied").
RUN_RUNNING = "running"
RUN_SUCCESS = "success"  # applied when it ran
RUN_FAILED = "failed"  # an error: nothing applied
RUN_CANCELLED = "cancelled"  # its job was cancelled: nothing applied
RUN_INTERRUPTED = "interrupted"  # its process was stopping (a restart): nothing applied, the job queued again
RUN_HELD = "held"  # outside the drift guard's bounds: nothing applied, offers kept to accept later
RUN_ACCEPTED = "accepted"  # a held run an admin accepted: applied then
RUN_SUPERSEDED = "superseded"  # a held run a newer applied run made stale: no longer acceptable
APPLIED_OUTCOMES = (RUN_SUCCESS, RUN_ACCEPTED)


class ScrapeRun(db.Model):
    """The log of one scraper run, shown on the admin page, with the figures the drift guard compares.

    The figures (``shops_seen`` .. ``promotions``) are None for runs that
    failed before storing and for runs logged before the guard existed.
    """

    __tablename__ = "scrape_run"

    id: Mapped[int] = mapped_column(primary_key=True)
    scraper: Mapped[str] = mapped_column(sa.String(40), index=True)
    job_id: Mapped[Optional[str]] = mapped_column(sa.String(36), nullable=True)
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[Optional[datetime]] = mapped_column(nullable=True)
    outcome: Mapped[str] = mapped_column(sa.String(20), default=RUN_RUNNING)
    added: Mapped[int] = mapped_column(default=0)
    updated: Mapped[int] = mapped_column(default=0)
    message: Mapped[Optional[str]] = mapped_column(sa.Text, nullable=True)
    # Read bundled samples (offline mode): never compared, never a baseline for a live run.
    is_sample: Mapped[bool] = mapped_column(default=False, server_default=sa.false())
    # The run read the whole catalogue: only then may applying it deactivate shops.
    complete: Mapped[Optional[bool]] = mapped_column(nullable=True)
    shops_seen: Mapped[Optional[int]] = mapped_column(nullable=True)  # entries the source listed
    shops_offered: Mapped[Optional[int]] = mapped_column(nullable=True)  # offers to store
    rates_total: Mapped[Optional[int]] = mapped_column(nullable=True)  # earn rates (base, promotion)
    rates_understood: Mapped[Optional[int]] = mapped_column(nullable=True)  # of those, parsed
    promotions: Mapped[Optional[int]] = mapped_column(nullable=True)
    deactivated: Mapped[Optional[int]] = mapped_column(nullable=True)  # held: would deactivate
    # A held run's offers (scrapers/offer_json.py), applied when an admin accepts it.
    # Deferred: pages listing runs never load them (reading one unloaded raises instead of querying).
    held_offers: Mapped[Optional[list]] = mapped_column(
        sa.JSON, nullable=True, deferred=True, deferred_raiseload=True
    )
    accepted_at: Mapped[Optional[datetime]] = mapped_column(nullable=True)
    accepted_by: Mapped[Optional[str]] = mapped_column(sa.String(80), nullable=True)


def new_session_token() -> str:
    """A fresh random value for ``AdminUser.session_token``."""
    return secrets.token_urlsafe(32)


class AdminUser(UserMixin, db.Model):
    """Someone who may use /admin; the password is stored only as a salted hash.

    ``session_token`` is part of every login id handed out for this admin
    (``get_id``): replacing it, at logout and at a password change, ends all
    of the admin's sessions on the server, whatever cookies still exist.
    """

    __tablename__ = "admin_user"

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(sa.String(80), unique=True)
    password_hash: Mapped[str] = mapped_column(sa.String(255))
    session_token: Mapped[str] = mapped_column(sa.String(64), default=new_session_token)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    def get_id(self) -> str:
        return f"{self.id}:{self.session_token}"

    def end_sessions(self) -> None:
        """Invalidate every login id issued so far (the caller commits)."""
        self.session_token = new_session_token()


class ApiToken(db.Model):
    """A named, revocable bearer token for API clients and cron; only its hash is kept."""

    __tablename__ = "api_token"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(80), unique=True)
    token_hash: Mapped[str] = mapped_column(sa.String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_used_at: Mapped[Optional[datetime]] = mapped_column(nullable=True)
    revoked_at: Mapped[Optional[datetime]] = mapped_column(nullable=True)
