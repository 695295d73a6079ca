"""What a client submitted: a JSON object or a form, read strictly.

A body sent as JSON that is not a JSON object (cut off, a list, a string)
is refused with a German 400 rather than read as "nothing submitted": a
cron job whose ``{"max_age_hours": 48`` lost its brace must not clear with
the default, and a schedule must not be saved as switched off.
"""

from __future__ import annotations

from typing import Any, Mapping

from flask import abort, request

from views.errors import quoted

TRUE_WORDS, FALSE_WORDS = frozenset({"1", "true", "on", "yes"}), frozenset({"", "0", "false", "off", "no"})


def submitted_data() -> Mapping[str, Any]:
    """The JSON object of a JSON request, else the form and query values; 400 for JSON that is not an object."""
    if not request.is_json:
        return request.values
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        abort(400, description="Der Body ist kein gültiges JSON-Objekt (Content-Type: application/json)")
    return body


def submitted_flag(data: Mapping[str, Any], key: str) -> bool:
    """A yes/no value: JSON ``true``/``false``, or a form's ``on``, ``1``, ``true``, ``yes`` (absent: no)."""
    value = data.get(key, False)
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in TRUE_WORDS | FALSE_WORDS:
        return value.strip().lower() in TRUE_WORDS
    abort(400, description=f"{key} muss true oder false sein, nicht {quoted(value)}")
