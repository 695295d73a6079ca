"""What a job event looks like on the wire, and the ``job_finished`` receiver that hurries it along.

The receiver runs in the worker thread that stored the job's outcome, before
that worker takes its next job: it only wakes this process's delivery
threads, which turn the job's event (``webhooks/outbox.py``) into deliveries.
It touches no database and never sends anything itself.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any, Optional

from flask import Flask

from database import utcnow
from webhooks.models import EVENTS, TEST_EVENT

EXTENSION_KEY = "webhooks"

# Job status (its string value) -> event name: completed, failed, cancelled.
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
    """Wake this process's delivery threads: the job's event is in the outbox, written with its outcome.

    Nothing is read or written here, in the worker's thread: the event is
    already stored (``jobs/signals.py``), and a delivery thread turns it into
    deliveries. Missing this signal only delays that until the threads' next look.
    """
    state = sender.extensions.get(EXTENSION_KEY) if isinstance(sender, Flask) else None
    if state is None or job is None:
        return  # an app without webhooks (e.g. a bare test app of the job queue)
    if getattr(job.status, "value", job.status) in EVENT_FOR_STATUS:
        state.wake()


def test_event_body(endpoint_id: int) -> str:
    """The body of the admin's test event: says what it is, carries no job."""
    return message_body(f"webhook.{TEST_EVENT}", {
        "endpoint_id": endpoint_id,
        "message": "Test-Ereignis aus dem Bonusvergleich-Admin: die Zustellung funktioniert.",
    })
