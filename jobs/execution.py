"""Run one claimed job: the job boundary, time limits, and what becomes of each way a job ends.

The boundary catches ``Exception`` and ``SystemExit`` (a job calling
``sys.exit`` must not end the worker); a ``KeyboardInterrupt`` propagates
after the job is given back to the queue unrun, so Ctrl-C in
``run_pending()`` stops the caller and loses nothing. The writes themselves
are ``jobs.outcome``'s.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any, Callable, Optional

from database import is_database_unavailable
from jobs.callables import load_callable
from jobs.job import Job, too_late
from jobs.kinds import JobCancelled, JobInterrupted, JobStopped, JobTimedOut
from jobs.outcome import Shutdown, finish, give_back, retry_later
from jobs.schema import JobRecord
from jobs.state import QueueState
from jobs.status import JobStatus
from jobs.supervisor import run_in_child

log = logging.getLogger(__name__)


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
            give_back(state, job, str(stop))
            return None
        except JobStopped as stop:
            return _stopped(state, job, stop, shutdown, claim_next)
        except (Exception, SystemExit) as exc:  # the worker survives every job
            if job.stop_reason is not None and not job.committed:  # e.g. a closed connection raised first
                return _stopped(state, job, job.stop_reason, shutdown, claim_next)
            _log_failure(record, exc)
            if _may_retry(state, record, exc) and retry_later(state, job, exc, shutdown):
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
            give_back(state, job, str(JobInterrupted(grace)))


