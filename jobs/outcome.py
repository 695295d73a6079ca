"""Write what a job did: its heartbeat, its outcome, a retry, or its return to the queue unrun.

Every write names the job's owner (``JobStore``) and is made under the job's
write lock, so a heartbeat never interleaves with the final write. An outcome
is never lost to a database that is away: it stays in memory and its write
is retried until it is stored or, after a stop, the grace ends.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Callable, Optional

from database import is_database_unavailable, utcnow
from jobs.job import Job, describe_error
from jobs.kinds import JobCancelled, retry_delay
from jobs.schema import JobRecord
from jobs.signals import job_finished
from jobs.state import QueueState
from jobs.status import JobStatus
from jobs.view import JobSnapshot

log = logging.getLogger(__name__)

# The outcome matters: the final write is retried until it is stored or the worker stops,
# first quickly, then every FINAL_WRITE_MAX_BACKOFF seconds (short, so it lands soon after the
# database is back, long before the job's lease could end).
FINAL_WRITE_FIRST_BACKOFF, FINAL_WRITE_MAX_BACKOFF = 0.1, 1.0


@dataclass
class Shutdown:
    """A stop of this process's workers, as the final write sees it: retry it until ``give_up_at``."""

    requested: threading.Event = field(default_factory=threading.Event)
    give_up_at: Optional[float] = None  # time.monotonic() after which unwritten outcomes are given up


def write_progress(state: QueueState, job: Job) -> None:
    """Heartbeat: renew the lease, write progress and pending messages.

    Also while the final write is still being retried: the lease must not end
    for a job whose outcome is only waiting for the database.
    """
    with job.write_lock:
        if job.lost or job.settled:
            return
        progress, total, pending = job.take_changes()
        try:
            beat = state.store.heartbeat(job.id, job.owner or "", state.config("JOBS_LEASE_SECONDS"),
                                         progress, total, pending)
        except Exception:
            job.give_back_messages(pending)
            raise
        if not beat.written:
            job.lost = True
            log.warning("job %s: lease lost; this worker's writes are ignored from now on", job.id)
        elif beat.cancel_requested:
            job.request_stop(JobCancelled())



def finish(state: QueueState, job: Job, status: JobStatus, shutdown: Shutdown, result: Any = None,
           exc: Optional[BaseException] = None,
           claim_next: Optional[tuple[str, float]] = None) -> Optional[JobRecord]:
    """Write the outcome; with ``claim_next`` (token, lease) also claim this worker's next job.

    A database that is away does not lose the outcome: it stays in memory and
    the write is retried until it is stored or, after a stop, the grace ends.
    """
    with job.write_lock:
        final = job.record_outcome(status, result, exc)
    owner = job.owner or ""

    def write() -> tuple[bool, Optional[JobRecord]]:
        if job.lost:
            written: tuple[bool, Optional[JobRecord]] = (False, None)
        elif claim_next is None or shutdown.requested.is_set():
            written = (state.store.finish(job.id, owner, **final), None)
        else:
            written = state.store.finish_and_claim(job.id, owner, *claim_next, **final)
        job.settled = True
        return written

    written = until_stored(state, job, shutdown, write)
    if written is None:
        log.error("job %s: outcome not stored, the database stayed away until the stop; "
                  "it runs again once its lease ends", job.id)
        return None
    finished, following = written
    if finished:
        announce_finished(state, job.snapshot_record())
    elif not job.lost:
        log.warning("job %s: lease lost before it finished; its outcome was not written", job.id)
    return following


def until_stored(state: QueueState, job: Job, shutdown: Shutdown, write: Callable[[], Any]) -> Any:
    """Make an outcome's write (under the job's write lock), waiting out a database that is away.

    Tried again first quickly, then every ``FINAL_WRITE_MAX_BACKOFF`` seconds,
    until it is stored or, after a stop, the grace ends (then None).
    """
    delay = FINAL_WRITE_FIRST_BACKOFF
    while True:
        with job.write_lock:
            try:
                written = write()
                state.outage.recovered()
                return written
            except Exception as error:
                if not is_database_unavailable(error):
                    raise
                state.outage.failed(error)
        if shutdown.give_up_at is not None and time.monotonic() >= shutdown.give_up_at:
            return None
        shutdown.requested.wait(delay)
        delay = min(delay * 2, FINAL_WRITE_MAX_BACKOFF)


def retry_later(state: QueueState, job: Job, exc: BaseException, shutdown: Shutdown) -> bool:
    """Queue the job again for its next attempt after a backoff; the error stays in its messages.

    A database that is away is waited for, as for any outcome; False (the
    job fails instead) only when the write cannot be made at all.
    """
    delay = retry_delay(job.attempts, float(state.config("JOBS_RETRY_BACKOFF")),
                        float(state.config("JOBS_RETRY_BACKOFF_MAX")))
    retry_at = utcnow() + timedelta(seconds=delay)
    note = (f"Versuch {job.attempts} von {job.max_attempts} fehlgeschlagen: {describe_error(exc)[0]}; "
            f"nächster Versuch in {delay:.3g} s")
    with job.write_lock:
        progress, total, pending = job.record_retry(note, retry_at)

    def write() -> bool:
        job.settled = not job.lost and state.store.retry_later(job.id, job.owner or "", retry_at, progress,
                                                               total, pending)
        return job.settled

    try:
        retried = until_stored(state, job, shutdown, write)
    except Exception as error:
        log.error("job %s: could not queue it for a retry (%s); it fails instead", job.id, error)
        return False
    if retried:
        state.wake_workers()  # another worker's timed poll picks it up when it is due
    return bool(retried)


def give_back(state: QueueState, job: Job, why: str) -> None:
    with job.write_lock:
        if job.lost or job.settled:
            return
        _progress, _total, pending = job.take_changes()
        job.lost = True  # from now on nothing of this run is written
        try:
            returned = state.store.give_back(job.id, job.owner or "", pending + [(utcnow(), why)])
        except Exception as error:
            log.error("job %s could not be given back (%s): it runs again once its lease ends", job.id, error)
            return
    if returned:
        log.warning("job %s (%s) given back to the queue: %s", job.id, job.name, why)
        state.wake_workers()


def announce_finished(state: QueueState, record: JobRecord) -> None:
    """Send ``job_finished``; a failing receiver is logged, never the job's or the worker's problem.

    Only a wake-up: the job's event was stored with its outcome (the outbox,
    ``jobs/signals.py``), so nothing depends on this signal being heard.
    """
    if not job_finished.receivers:
        return
    try:
        kind = state.kinds.get(record.name)
        job_finished.send(state.app, job=JobSnapshot(record, state.load_record, kind.label if kind else None))
    except Exception:
        log.exception("a job_finished receiver failed for job %s", record.id)
