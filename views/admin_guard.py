"""The one way an admin blueprint is guarded: ``views/access.require_admin`` before every request.

Blueprints that serve a JSON API also answer their errors in JSON
(``views/errors.json_error``), so a script never has to read an HTML page.
Their names belong in ``views/access.SELF_GUARDED_BLUEPRINTS``.
"""

from __future__ import annotations

from typing import AbstractSet

from flask import Blueprint
from werkzeug.exceptions import HTTPException

from views.access import require_admin
from views.errors import json_error


def guard_admin_blueprint(bp: Blueprint, api_endpoints: AbstractSet[str] = frozenset(),
                          token_only: AbstractSet[str] = frozenset(), json_errors: bool = True) -> None:
    """Demand an admin on every request of ``bp`` (``api_endpoints`` also take a bearer token)."""
    bp.before_request(lambda: require_admin(api_endpoints, token_only))
    if json_errors:
        bp.register_error_handler(HTTPException, json_error)
