"""Scrapers: each module exposes one job function ``scrape_<source>(job)``.

Layers, kept apart so each can be tested alone: a fetcher does HTTP only,
pure parsers turn payloads into offers, and ``store`` writes offers to the
database. Scrapers read their settings from ``current_app.config``.
"""
