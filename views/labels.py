"""German words for the machine's words on the pages: run outcomes, scraper names, status tooltips.

The seed's status badges keep their names (QUEUED, RUNNING, COMPLETED, FAILED)
and get a German tooltip; everything else a person reads is German here,
once, for every template (``static/admin.js`` carries the same tooltips).
"""

from __future__ import annotations

from flask import Flask

from scrapers.registry import SCRAPERS, SCRAPERS_BY_NAME

STATUS_TITLES = {
    "queued": "wartet",
    "running": "läuft",
    "completed": "abgeschlossen",
    "failed": "fehlgeschlagen",
    "cancelled": "abgebrochen",
}
OUTCOME_LABELS = {
    "running": "läuft",
    "success": "erfolgreich",
    "failed": "fehlgeschlagen",
    "cancelled": "abgebrochen",
    "interrupted": "unterbrochen (Neustart), neu eingereiht",
    "held": "ANGEHALTEN – Formatänderung?",
    "accepted": "ÜBERNOMMEN",
    "superseded": "ÜBERHOLT",
}
# Runs logged by older versions name the scraper by its route.
_BY_ENDPOINT = {spec.endpoint: spec for spec in SCRAPERS}


def status_title(status: str) -> str:
    return STATUS_TITLES.get(status, status)


def outcome_label(outcome: str) -> str:
    return OUTCOME_LABELS.get(outcome, outcome)


def scraper_label(name: str) -> str:
    """``"payback"`` or its route ``"run_payback"`` → ``"PAYBACK"``; an unknown name as it is."""
    spec = SCRAPERS_BY_NAME.get(name) or _BY_ENDPOINT.get(name)
    return spec.label if spec else name


def init_app(app: Flask) -> None:
    for function in (status_title, outcome_label, scraper_label):
        app.add_template_filter(function, function.__name__)
