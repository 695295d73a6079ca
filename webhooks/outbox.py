"""Turn job events into deliveries: the consumer of the job store's outbox.

A job's final state and its ``job_event`` row are written in one transaction
(``jobs/signals.py``), so the news that a job ended is as durable as the end
itself. Here each event becomes one delivery per endpoint subscribed to it,
with the job's JSON as it is now, and then the event is removed. Recording
comes first and is keyed on (event, endpoint), so a consumer that fails or
dies between the two steps, or two processes consuming at once, leave one
delivery per endpoint, never two and never none.

The delivery threads consume before each look for due deliveries: at once
when ``job_finished`` wakes them, else at their next timed look, which also
picks up events of a process that died, or that were written while this
process could not reach the database.
"""

from __future__ import annotations

import logging
import threading
from typing import Optional

from sqlalchemy.engine import Engine

from jobs.signals import JobEventOutbox
from webhooks import store
from webhooks.events import EVENT_FOR_STATUS, message_body
from webhooks.signing import new_message_id

log = logging.getLogger(__name__)

# Events read and recorded per transaction.
BATCH = 100


def consume_events(outbox: Optional[JobEventOutbox], engine: Engine, busy: threading.Lock) -> int:
    """Owe every pending job event to its subscribers, then remove it; return how many deliveries were offered.

    ``busy`` keeps this process's threads from consuming side by side (the
    second would only repeat the work): a thread that finds it taken goes
    on, and the thread consuming now wakes the others when it recorded something.
    """
    if outbox is None or not busy.acquire(blocking=False):
        return 0
    try:
        offered = 0
        while True:
            events = outbox.pending(BATCH)
            if not events:
                return offered
            subscribed = store.subscriptions(engine)
            owed = []
            for event in events:
                name = EVENT_FOR_STATUS.get(event.status.value)
                # Only endpoints that existed when the job ended: an event may wait here a while.
                targets = tuple(endpoint_id for endpoint_id, chosen, created_at in subscribed
                                if name is not None and name in chosen.split(",")
                                and created_at <= event.occurred_at)
                if not targets:
                    continue
                job = outbox.job(event.job_id)
                if job is None:  # cleared by hand before anyone consumed its event
                    log.warning("job event %s: job %s is gone; no webhook", event.id, event.job_id)
                    continue
                body = message_body(f"job.{name}", job.to_dict(), job.completed_at)
                owed.append(store.OwedEvent(event.id, name, event.job_id, body, new_message_id(), targets))
            offered += store.record_job_events(engine, owed)
            outbox.forget([event.id for event in events])
            if len(events) < BATCH:
                return offered
    finally:
        busy.release()
