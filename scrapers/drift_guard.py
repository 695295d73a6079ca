"""The drift guard: a run that suddenly looks very different from the last one changes nothing.

Live sources change their formats without notice. A field a parser filters
on changes its value, a maintenance page comes in the right format, a
catalogue is cut short: the run still "succeeds", finds far fewer shops or
understands far fewer rates, and storing it would deactivate shops or close
their rates. So before a run writes, its figures (``RunFigures``) are
compared with those of the last applied run of the same source; outside the
configured bounds (``DriftBounds``) the run is held: nothing is stored, the
offers are kept on its ``ScrapeRun`` and an admin can accept it
(``scrapers/held_runs.py``).

Not compared: the first run of a source (no baseline yet) and runs reading
bundled samples (offline mode). Sample runs are never a baseline either: the
samples have nothing to do with the size of the live catalogue.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Optional

import sqlalchemy as sa

from models import APPLIED_OUTCOMES, EARN_RATE_KINDS, PROMOTION, Programme, ScrapeRun, Shop, db
from scrapers.errors import ScrapeError
from scrapers.store import Offer

# Config key -> (DriftBounds field, default); README "Configuration" explains each.
BOUND_KEYS = {
    "DRIFT_GUARD_MIN_OFFERED_PERCENT": ("min_offered_percent", 70.0),
    "DRIFT_GUARD_MAX_DEACTIVATED_PERCENT": ("max_deactivated_percent", 30.0),
    "DRIFT_GUARD_MAX_UNDERSTOOD_DROP": ("max_understood_drop", 20.0),
    "DRIFT_GUARD_MIN_PROMOTIONS_PERCENT": ("min_promotions_percent", 0.0),
}
DEFAULT_CONFIG = {key: default for key, (_, default) in BOUND_KEYS.items()}


class RunHeld(ScrapeError):
    """A run fell outside the drift guard's bounds: held, nothing stored.

    Expected in the sense of ``ScrapeError.expected``: the message says all
    there is to say, a traceback would not help.
    """

    expected = True


@dataclass(frozen=True)
class RunFigures:
    """What a run found, as the guard compares it."""

    seen: int  # entries the source listed (M&M: partner pages read)
    offered: int  # offers to store (entries offered to shoppers)
    rates_total: int  # earn rates (base and promotion)
    rates_understood: int  # of those, the ones whose text was understood
    promotions: int

    @classmethod
    def of(cls, offers: list[Offer], seen: Optional[int] = None) -> RunFigures:
        earn = [rate for offer in offers for rate in offer.rates if rate.kind in EARN_RATE_KINDS]
        return cls(
            seen=len(offers) if seen is None else seen,
            offered=len(offers),
            rates_total=len(earn),
            rates_understood=sum(1 for rate in earn if rate.parsed.is_parsed),
            promotions=sum(1 for rate in earn if rate.kind == PROMOTION),
        )

    @classmethod
    def of_run(cls, run: ScrapeRun) -> RunFigures:
        return cls(run.shops_seen or 0, run.shops_offered or 0, run.rates_total or 0,
                   run.rates_understood or 0, run.promotions or 0)

    def record_on(self, run: ScrapeRun) -> None:
        run.shops_seen, run.shops_offered = self.seen, self.offered
        run.rates_total, run.rates_understood = self.rates_total, self.rates_understood
        run.promotions = self.promotions

    @property
    def understood_percent(self) -> Optional[float]:
        """Share of earn rates understood, in percent; None for a run that offered nothing.

        Offers without any earn rate count as 0 %: a renamed rate field must not
        pass as "nothing to understand".
        """
        if self.rates_total:
            return 100.0 * self.rates_understood / self.rates_total
        return 0.0 if self.offered else None


@dataclass(frozen=True)
class DriftBounds:
    """How far a run may differ from the last applied one before it is held."""

    min_offered_percent: float = 70.0  # fewer offered shops than this share of the last run's
    max_deactivated_percent: float = 30.0  # more of the active shops would be deactivated
    max_understood_drop: float = 20.0  # percentage points the understood-rate share may drop
    min_promotions_percent: float = 0.0  # fewer promotions than this share of the last run's (0: off)

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> DriftBounds:
        """Read the bounds; raise ``ValueError`` for one outside 0..100."""
        values = {}
        for key, (name, default) in BOUND_KEYS.items():
            value = float(config.get(key, default))
            if not 0 <= value <= 100:
                raise ValueError(f"{key} must be between 0 and 100, not {value!r}")
            values[name] = value
        return cls(**values)


def _percent(value: float) -> str:
    return f"{value:.0f} %"


def drift_reasons(run: RunFigures, last: RunFigures, active: int, deactivating: int,
                  bounds: DriftBounds) -> list[str]:
    """Say (in German) each way ``run`` falls outside ``bounds`` against ``last``; [] when it does not."""
    reasons = []
    if run.offered < last.offered * bounds.min_offered_percent / 100:
        of_seen = f" von {run.seen} Partnern" if run.seen != run.offered else " Partner"
        reasons.append(f"nur {run.offered}{of_seen} angeboten, letzter Lauf {last.offered} "
                       f"(Grenze {_percent(bounds.min_offered_percent)})")
    if active and deactivating > active * bounds.max_deactivated_percent / 100:
        reasons.append(f"{deactivating} von {active} aktiven Partnern würden deaktiviert "
                       f"(Grenze {_percent(bounds.max_deactivated_percent)})")
    now, before = run.understood_percent, last.understood_percent
    if now is not None and before is not None and before - now > bounds.max_understood_drop:
        reasons.append(f"Prämiensätze erkannt: {_percent(now)} statt {_percent(before)} im letzten Lauf "
                       f"(Grenze {bounds.max_understood_drop:g} Punkte weniger)")
    if bounds.min_promotions_percent and run.promotions < last.promotions * bounds.min_promotions_percent / 100:
        reasons.append(f"nur {run.promotions} Aktionen, letzter Lauf {last.promotions} "
                       f"(Grenze {_percent(bounds.min_promotions_percent)})")
    return reasons


def held_message(reasons: list[str]) -> str:
    """The held run's message for the run log and the admin page."""
    return f"{'; '.join(reasons)}: nichts deaktiviert, nichts geändert – Formatänderung?"


def how_to_accept(run_id: int) -> str:
    """The sentence telling an admin how to accept held run ``run_id``."""
    return (f"Stimmen die Zahlen, Lauf {run_id} übernehmen (Admin-Seite oder "
            f"flask --app app runs accept {run_id}).")


@dataclass(frozen=True)
class Comparison:
    """The guard's verdict on one run, with a German note for the job's messages."""

    note: str
    reasons: tuple[str, ...] = ()
    deactivating: int = 0
    baseline_id: Optional[int] = None

    @property
    def held(self) -> bool:
        return bool(self.reasons)


def last_applied_run(scraper: str, other_than: Optional[int] = None) -> Optional[ScrapeRun]:
    """The newest live run of ``scraper`` whose offers were applied and whose figures are known."""
    query = sa.select(ScrapeRun).where(
        ScrapeRun.scraper == scraper,
        ScrapeRun.outcome.in_(APPLIED_OUTCOMES),
        sa.not_(ScrapeRun.is_sample),
        ScrapeRun.shops_offered.is_not(None),
    )
    if other_than is not None:
        query = query.where(ScrapeRun.id != other_than)
    return db.session.scalars(query.order_by(ScrapeRun.id.desc()).limit(1)).first()


def compare_with_last_run(run: ScrapeRun, figures: RunFigures, offered_ids: Iterable[str],
                          complete: bool, bounds: DriftBounds) -> Comparison:
    """Compare a run about to be stored with the last applied run of its source.

    Call inside the write transaction that will store the run, so nothing
    changes between the comparison and the write.
    """
    if run.is_sample:
        return Comparison("Beispieldaten: kein Vergleich mit dem letzten Lauf (nur Live-Quellen werden verglichen)")
    baseline = last_applied_run(run.scraper, other_than=run.id)
    if baseline is None:
        return Comparison("Erster Lauf dieser Quelle: kein Vergleich; seine Zahlen sind die Grundlage des nächsten")
    active = set(db.session.scalars(
        sa.select(Shop.external_id).join(Programme).where(Programme.slug == run.scraper, Shop.active)
    ))
    deactivating = len(active - set(offered_ids)) if complete else 0
    last = RunFigures.of_run(baseline)
    reasons = drift_reasons(figures, last, len(active), deactivating, bounds)
    now, before = figures.understood_percent, last.understood_percent
    understood = (f", Prämiensätze erkannt {_percent(now)} (zuletzt {_percent(before)})"
                  if now is not None and before is not None else "")
    note = (f"Vergleich mit Lauf {baseline.id}: {figures.offered} Partner angeboten (zuletzt {last.offered})"
            f"{understood}, {deactivating} von {len(active)} aktiven würden deaktiviert: "
            + ("außerhalb der Grenzen" if reasons else "innerhalb der Grenzen"))
    return Comparison(note, tuple(reasons), deactivating, baseline.id)
