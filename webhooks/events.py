"""Turn finished jobs into owed deliveries: the ``job_finished`` receiver and the message bodies.

The receiver runs in the worker thread that stored the job's outcome, before
that worker takes its next job: it only records deliveries (one read of the
endpoint table, one insert when anyone subscribed) and wakes this process's
delivery threads. It never sends anything itself.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any, Optional

from flask import Flask

from database import utcnow
from webhooks import store
from webhooks.models import EVENTS, TEST_EVENT
from webhooks.signing import new_message_id

EXTENSION_KEY = "webhooks"

# Job status (its string value) -> event name. Today's statuses are completed and
# failed; "cancelled" is listed so its event works the day the job system sends it.
EVENT_FOR_STATUS: dict[str, str] = {status: status for status in EVENTS}


def message_body(event_type: str, data: dict[str, Any], occurred_at: Optional[datetime] = None) -> str:
    """The JSON sent (and signed), in the Standard Webhooks shape: ``type``, ``timestamp``, ``data``.

    Compact and built once: every retry sends and signs exactly these bytes.
    """
    moment = occurred_at or utcnow()
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    payload = {"type": event_type, "timestamp": moment.isoformat(), "data": data}
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":"), default=str)


def on_job_finished(sender: Any, job: Any = None, **_extra: Any) -> None:
    """Record a delivery of the job's event for every enabled endpoint subscribed to it."""
    state = sender.extensions.get(EXTENSION_KEY) if isinstance(sender, Flask) else None
    if state is None or job is None:
        return  # an app without webhooks (e.g. a bare test app of the job queue)
    event = EVENT_FOR_STATUS.get(getattr(job.status, "value", job.status))
    if event is None:
        return
    recorded = store.record_event(
        state.engine, event, job.id,
        lambda: message_body(f"job.{event}", job.to_dict(), job.completed_at),
        new_message_id(),
    )
    if recorded:
        state.wake()


def test_event_body(endpoint_id: int) -> str:
    """The body of the admin's test event: says what it is, carries no job."""
    return message_body(f"webhook.{TEST_EVENT}", {
        "endpoint_id": endpoint_id,
        "message": "Test-Ereignis aus dem Bonusvergleich-Admin: die Zustellung funktioniert.",
    })
