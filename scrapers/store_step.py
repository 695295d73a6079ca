"""Store a run's offers as one step in the parse pool: compare with the last run, write, log.

Why in the pool: after parsing moved there, storing was the largest piece of
Python left in a job thread of the web process (reading the programme's
shops and rates, comparing, building a row per shop and rate: 50–130 ms for
a first run), and every millisecond of it is one the web threads wait for
the interpreter lock. A pool process opens the app's database itself (a
small Flask app with the same URI and engine options, one per process), so
only plain data crosses: the offers in, German messages and counts out.

A database only this process can see (SQLite in memory) is stored in the
job's thread, as is everything when the job has no pool.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

from flask import Flask, has_app_context

from database import configure_sqlite_engine
from models import RUN_SUCCESS, ScrapeRun, begin_write, db
from scrapers.drift_guard import DriftBounds, RunFigures, compare_with_last_run, how_to_accept
from scrapers.german_text import count_of, number_de
from scrapers.held_runs import hold_run, supersede_older_held_runs
from scrapers.store import Offer, write_offers


@dataclass(frozen=True)
class StoreTarget:
    """The app's database and drift bounds, as a pool process needs them."""

    database_uri: str
    engine_options: dict[str, Any]
    bounds: DriftBounds

    @property
    def shareable(self) -> bool:
        """Whether another process can open this database (not SQLite in memory)."""
        uri = self.database_uri
        return not (uri in ("sqlite://", "sqlite:///:memory:") or "mode=memory" in uri)


@dataclass(frozen=True)
class StoreRequest:
    """One run's fitted offers and what the run log needs to know about them."""

    run_id: int
    offers: list[Offer]
    complete: bool
    is_sample: bool
    seen: Optional[int]
    unparsed: int


@dataclass
class StoreReport:
    """What the store did: the job's messages in order, the counts, and why a held run was held."""

    messages: list[str] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)
    held: Optional[str] = None  # the job's error when the drift guard held the run


_apps: dict[tuple, Flask] = {}


def _database_app(target: StoreTarget) -> Flask:
    """A Flask app bound to ``target``'s database, one per pool process (its engine is kept)."""
    key = (target.database_uri, repr(sorted(target.engine_options.items())))
    app = _apps.get(key)
    if app is None:
        app = Flask(__name__)
        app.config.update(SQLALCHEMY_DATABASE_URI=target.database_uri,
                          SQLALCHEMY_ENGINE_OPTIONS=target.engine_options)
        db.init_app(app)
        if target.database_uri.startswith("sqlite"):
            with app.app_context():
                configure_sqlite_engine(db.engine)
        _apps[key] = app
    return app


def store_run(target: StoreTarget, request: StoreRequest) -> StoreReport:
    """Compare, write and log one run in one transaction; in a pool process or the job's thread."""
    if has_app_context():
        return _store(target.bounds, request)
    with _database_app(target).app_context():
        return _store(target.bounds, request)


def _store(bounds: DriftBounds, request: StoreRequest) -> StoreReport:
    report = StoreReport()
    offers = request.offers
    begin_write()  # compare and write in one transaction: nothing changes in between
    run = db.session.get(ScrapeRun, request.run_id)
    run.is_sample, run.complete = request.is_sample, request.complete
    figures = RunFigures.of(offers, request.seen)
    figures.record_on(run)
    comparison = compare_with_last_run(run, figures, (offer.external_id for offer in offers),
                                       request.complete, bounds)
    report.messages.append(comparison.note)
    if comparison.held:
        report.held = f"{hold_run(run, offers, comparison)} {how_to_accept(run.id)}"
        return report

    stored = write_offers(run.scraper, offers, complete=request.complete, is_sample=request.is_sample)
    run.added, run.updated, run.deactivated = stored.added, stored.updated, stored.deactivated
    run.outcome = RUN_SUCCESS  # in the same commit as the data: the next run's baseline
    run.message = (
        f"{count_of(len(offers), 'Shop', 'Shops')} gelesen, {number_de(stored.deactivated)} deaktiviert, "
        f"{count_of(request.unparsed, 'Prämiensatz', 'Prämiensätze')} nicht erkannt"
        + ("" if request.complete else ", unvollständiger Lauf")
    )
    supersede_older_held_runs(run)
    db.session.commit()
    report.messages.append(f"Fertig: {stored.added} neu, {stored.updated} aktualisiert, {stored.deactivated} deaktiviert")
    report.counts = {"added": stored.added, "updated": stored.updated, "deactivated": stored.deactivated,
                     "unparsed_rates": request.unparsed}
    return report
