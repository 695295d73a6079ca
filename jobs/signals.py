"""What the job system tells others about finished jobs: the ``job_finished`` signal and the event outbox.

Each final state (completed, failed or cancelled: by its worker, by a cancel
of a queued job, or by the sweep that gave up on a lost worker) is written
together with a ``job_event`` row, in the same transaction (the outbox). That
row is the durable news: it outlives a crash of the process, a database
outage between the write and anything after it, and a receiver that fails.
A consumer (``webhooks/``) reads the outbox through ``event_outbox(app)``,
turns each event into its own work idempotently (keyed on the event's id,
which is never reused) and then removes it; ``clear_old_jobs`` removes what
no consumer took, with its job.

``job_finished`` (blinker, as Flask's own signals) is only the fast path: it
is sent once a worker's outcome is stored, with the Flask app as sender and
``job``, a ``JobSnapshot`` of the final state, so a consumer in this process
can look at the outbox at once instead of at its next poll. A receiver runs
in the thread that stored the outcome, before that worker takes its next
job: it must be quick (wake something, do not work), and it may be missed.
"""

from __future__ import annotations

from typing import Any, Optional

from blinker import Namespace
from flask import Flask

from jobs.schema import JobEvent
from jobs.view import JobSnapshot

_signals = Namespace()

job_finished = _signals.signal("job-finished")

QUEUE_EXTENSION_KEY = "job_queue"


class JobEventOutbox:
    """One app's job events as a consumer sees them: take the pending ones, read their jobs, remove them."""

    def __init__(self, state: Any) -> None:
        self._state = state  # jobs.state.QueueState (not imported: it imports what sends the signal)

    def pending(self, limit: int = 100) -> list[JobEvent]:
        """The oldest events not yet removed, oldest first."""
        return self._state.store.pending_events(limit)

    def job(self, job_id: str) -> Optional[JobSnapshot]:
        """The job an event is about, as ``get_job`` shows it; None once it was cleared."""
        record = self._state.load_record(job_id)
        if record is None:
            return None
        kind = self._state.kinds.get(record.name)
        return JobSnapshot(record, self._state.load_record, kind.label if kind else None)

    def forget(self, event_ids: list[int]) -> None:
        """Remove events whose consequences are stored (in the consumer's own tables)."""
        self._state.store.forget_events(event_ids)


def event_outbox(app: Flask) -> Optional[JobEventOutbox]:
    """The job-event outbox of ``app``'s job queue; None for an app without one."""
    state = app.extensions.get(QUEUE_EXTENSION_KEY)
    return JobEventOutbox(state) if state is not None else None
