"""Blueprints: ``admin`` (job console and its JSON API) and ``shops`` (public pages)."""
