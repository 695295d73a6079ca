"""Run one claimed job and write what it did: the job boundary, heartbeats and the final write.

Only the worker that owns a job's lease changes its state, and every write
names that owner (``JobStore``). The boundary catches ``Exception`` and
``SystemExit`` (a job calling ``sys.exit`` must not end the worker); a
``KeyboardInterrupt`` propagates after the job is given back to the queue
unrun, so Ctrl-C in ``run_pending()`` stops the caller and loses nothing.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Callable, Optional

from database import is_database_unavailable, utcnow
from jobs.callables import load_callable
from jobs.job import Job, describe_error, too_late
from jobs.kinds import JobCancelled, JobInterrupted, JobStopped, JobTimedOut, retry_delay
from jobs.schema import JobRecord
from jobs.signals import job_finished
from jobs.state import QueueState
from jobs.status import JobStatus
from jobs.supervisor import run_in_child
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


def _call_of(state: QueueState, record: JobRecord) -> tuple[Callable[..., Any], tuple, dict]:
    call = state.local_calls.get(record.id)
    if call is not None:
        return call
    func = load_callable(record.func_path or "")
    args, kwargs = json.loads(record.args_json or "[[], {}]")
    return func, tuple(args), kwargs


def execute(state: QueueState, record: JobRecord, owner: str, shutdown: Shutdown,
            claim_next: Optional[tuple[str, float]] = None, in_thread: bool = False) -> Optional[JobRecord]:
    """Run one claimed job, in a child or (``in_thread``, or by its kind) here; write its outcome.

    With ``claim_next`` (token, lease) the final write also claims the
    worker's next job, which is returned.
    """
    job = Job.claimed(record, owner)
    state.running[record.id] = job  # the housekeeper heartbeats it from now on
    given_back = False
    try:
        try:
            result = _run(state, job, record, in_thread)
            json.dumps(result, default=str)  # a result the database cannot hold fails the job
        except JobInterrupted as stop:  # this process is stopping: the job goes back to the queue
            _give_back(state, job, str(stop))
            return None
        except JobStopped as stop:
            return _stopped(state, job, stop, shutdown, claim_next)
        except (Exception, SystemExit) as exc:  # the worker survives every job
            if job.stop_reason is not None and not job.committed:  # e.g. a closed connection raised first
                return _stopped(state, job, job.stop_reason, shutdown, claim_next)
            _log_failure(record, exc)
            if _may_retry(state, record, exc) and _retry_later(state, job, exc, shutdown):
                return None
            return finish(state, job, JobStatus.FAILED, shutdown, exc=exc, claim_next=claim_next)
        except KeyboardInterrupt:
            state.store.give_back(record.id, owner)
            given_back = True
            raise
        if job.stop_reason is not None:
            job.note(too_late(job.stop_reason))
        return finish(state, job, JobStatus.COMPLETED, shutdown, result=result, claim_next=claim_next)
    finally:
        if state.running.get(record.id) is job:  # not a later claim of the same job in this process
            del state.running[record.id]
        if not given_back:
            state.local_calls.pop(record.id, None)


def _run(state: QueueState, job: Job, record: JobRecord, in_thread: bool) -> Any:
    """Call the job's function: in a child process it supervises, or in this thread."""
    context = None if in_thread else state.child_context(record)
    job.in_child = context is not None  # from now on a stopping process asks it to stop, not gives it back
    if context is not None:
        return run_in_child(job, state.child_task(record), context, float(state.config("JOBS_KILL_GRACE")),
                            settle=lambda why: _settle(state, record, why))
    func, args, kwargs = _call_of(state, record)
    with state.app.app_context():
        return func(job, *args, **kwargs)


def _settle(state: QueueState, record: JobRecord, why: BaseException) -> Any:
    """Ask the job's kind what a child that ended without an outcome had stored (None: nothing)."""
    kind = state.kinds.get(record.name)
    if kind is None or kind.settle is None:
        return None
    with state.app.app_context():
        return load_callable(kind.settle)(record.id, why)


def _stopped(state: QueueState, job: Job, stop: JobStopped, shutdown: Shutdown,
             claim: Optional[tuple[str, float]]) -> Optional[JobRecord]:
    """A cancelled job ends CANCELLED; one past its time limit FAILED with the reason."""
    log.info("job %s (%s) stopped: %s", job.id, job.name, stop)
    status = JobStatus.CANCELLED if isinstance(stop, JobCancelled) else JobStatus.FAILED
    return finish(state, job, status, shutdown, exc=stop, claim_next=claim)


def _may_retry(state: QueueState, record: JobRecord, exc: BaseException) -> bool:
    """A kind's retry rule, and for any kind a database that went away: an outage is temporary."""
    kind = state.kinds.get(record.name)
    return kind is not None and record.attempts < record.max_attempts and (
        kind.retry_if(exc) or is_database_unavailable(exc))


def _retry_later(state: QueueState, job: Job, exc: BaseException, shutdown: Shutdown) -> bool:
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
        retried = _until_stored(state, job, shutdown, write)
    except Exception as error:
        log.error("job %s: could not queue it for a retry (%s); it fails instead", job.id, error)
        return False
    if retried:
        state.wake_workers()  # another worker's timed poll picks it up when it is due
    return bool(retried)


def _log_failure(record: JobRecord, exc: BaseException) -> None:
    """One line for a failure the job calls expected (``exc.expected``: a host that is down), else the traceback.

    The traceback is kept on the job either way; a failure in a child brings its own.
    """
    if getattr(exc, "expected", False):
        log.warning("job %s (%s) failed: %s", record.id, record.name, exc)
    elif hasattr(exc, "error_text"):
        log.error("job %s (%s) failed in its child process: %s", record.id, record.name,
                  getattr(exc, "traceback_text", None) or exc)
    else:
        log.exception("job %s (%s) failed", record.id, record.name)


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

    written = _until_stored(state, job, shutdown, write)
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


def _until_stored(state: QueueState, job: Job, shutdown: Shutdown, write: Callable[[], Any]) -> Any:
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


def enforce_time_limits(state: QueueState) -> None:
    """Ask every job of this process that ran past its time limit to stop."""
    now = time.time()
    for job in list(state.running.values()):
        started, limit = job.started_at, job.time_limit
        if limit and started is not None and job.stop_reason is None and now - started.timestamp() > limit:
            log.warning("job %s (%s) ran past its time limit of %g s: stopping it", job.id, job.name, limit)
            job.request_stop(JobTimedOut(limit))


def give_back_running(state: QueueState, grace: float) -> None:
    """Return the jobs this process still runs to the queue, unfinished: the process is stopping.

    A job in a child is told to stop; its worker gives it back once the child
    has ended (or completes it, if its work was stored meanwhile). A job in
    a thread is given back at once, and whatever its function does
    afterwards is not written. Their attempt is not counted, their messages
    are kept, and a message says why.
    """
    for job in list(state.running.values()):
        if job.in_child:
            job.request_stop(JobInterrupted(grace))
        else:
            _give_back(state, job, str(JobInterrupted(grace)))


def _give_back(state: QueueState, job: Job, why: str) -> None:
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
    """Send ``job_finished``; a failing receiver is logged, never the job's or the worker's problem."""
    if not job_finished.receivers:
        return
    try:
        kind = state.kinds.get(record.name)
        job_finished.send(state.app, job=JobSnapshot(record, state.load_record, kind.label if kind else None))
    except Exception:
        log.exception("a job_finished receiver failed for job %s", record.id)
