"""This process's threads for one app's queue: workers, the housekeeper and the PostgreSQL listener.

Workers wait on the queue's condition (woken at once by an enqueue in this
process, by PostgreSQL ``NOTIFY`` from other processes, else by a timed poll
of the database) and claim jobs atomically with a lease. The housekeeper
writes progress and messages of running jobs at most every
``JOBS_FLUSH_INTERVAL`` seconds, renews their leases, and requeues jobs whose
worker died (in any process).
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Optional

from database import is_database_unavailable
from jobs.cpu_pool import lower_priority
from jobs.execution import (
    QueueState, announce_finished, enforce_time_limits, execute, give_back_running, write_progress,
)
from jobs.identity import owner_name
from jobs.schema import JobRecord
from jobs.sql import NOTIFY_CHANNEL

log = logging.getLogger(__name__)

# The housekeeper sweeps for dead workers this often, as a share of the lease.
SWEEPS_PER_LEASE = 4
# A running job's lease is renewed this often, as a share of the lease, even without news.
HEARTBEATS_PER_LEASE = 3


def start_threads(state: QueueState, threads: int) -> None:
    """Start worker threads up to ``threads``, and the housekeeper and listener if missing."""
    with state.condition:
        # A stop still waiting for running jobs is cancelled: the caller wants
        # workers, and joining here would block it.
        state.stopping = False
        state.stop_requested.clear()
        state.give_up_at = None
        state.workers = [worker for worker in state.workers if worker.is_alive()]
        for index in range(len(state.workers), threads):
            owner = owner_name(state.token, f"w{index}")
            state.workers.append(_thread(f"job-worker-{index}", work, state, owner))
        if state.housekeeper is None or not state.housekeeper.is_alive():
            state.housekeeper = _thread("job-housekeeper", housekeep, state)
        if state.store.is_postgresql and (state.listener is None or not state.listener.is_alive()):
            state.listener = _thread("job-listener", listen, state)


def _thread(name: str, target, *args) -> threading.Thread:  # type: ignore[no-untyped-def]
    thread = threading.Thread(target=target, args=args, name=name, daemon=True)
    thread.start()
    return thread


def stop_threads(state: QueueState, timeout: Optional[float]) -> bool:
    """Ask every thread to stop after its running job; return whether all have exited in time."""
    with state.condition:
        threads = [t for t in state.workers + [state.housekeeper, state.listener] if t is not None]
        if threads:
            state.stopping = True
            state.give_up_at = None if timeout is None else time.monotonic() + timeout
            state.condition.notify_all()
    if threads:
        state.stop_requested.set()
        state.housekeeper_alarm.set()
        deadline = state.give_up_at
        for thread in threads:
            thread.join(None if deadline is None else max(0.0, deadline - time.monotonic()))
    stopped = not any(thread.is_alive() for thread in threads)
    if stopped:  # no job is left waiting for the pool (run_pending() may have started it too)
        state.cpu_pool.shutdown()  # the next job starts it again
    return stopped


def warm_stop(state: QueueState, grace: float) -> bool:
    """Stop claiming; give running jobs ``grace`` seconds to finish, then give them back to the queue.

    Returns whether every job finished by itself. A job given back is queued
    again at once (its attempt not counted), so a restarted process, or any
    other worker, takes it up without waiting for a lease.
    """
    if stop_threads(state, grace):
        return True
    give_back_running(state, grace)
    return False


def _report(state: QueueState, error: Exception, what: str) -> None:
    """An unreachable database is one line per outage; anything else keeps its traceback."""
    if is_database_unavailable(error):
        state.outage.failed(error)
    else:
        log.exception("%s failed", what)


def _wait_for_work(state: QueueState, seen: int, timeout: float) -> None:
    with state.condition:
        if state.wakeups == seen and not state.stopping:
            state.condition.wait(timeout)


def work(state: QueueState, owner: str) -> None:
    """One worker thread: claim, run, finish-and-claim, until asked to stop.

    It runs at ``JOBS_THREAD_NICENESS``: jobs are background work, and where
    they share a process with the web, the kernel should give a core to a
    thread answering a page first. Processes a job starts (the parse pool,
    its fork server) inherit it.
    """
    lower_priority(int(state.config("JOBS_THREAD_NICENESS")))
    lease = state.config("JOBS_LEASE_SECONDS")
    record: Optional[JobRecord] = None
    while True:
        with state.condition:
            stopping, seen = state.stopping, state.wakeups
        if stopping:
            if record is not None:  # claimed, but stop() came first: back to the queue, unrun
                state.store.give_back(record.id, owner)
            return
        if record is not None:
            try:
                record = execute(state, record, owner, claim_next=True)
            except Exception:  # e.g. the database was away for the final write
                log.exception("job worker %s: could not finish a job; it is requeued when its lease ends",
                              owner)
                record = None
            continue
        try:
            record = state.store.claim(owner, state.token, lease)
            state.outage.recovered()
        except Exception as error:  # the database may be away for a moment; keep the worker
            _report(state, error, f"claim by job worker {owner}")
        if record is None:
            _wait_for_work(state, seen, state.config("JOBS_POLL_INTERVAL"))
        # with a job: back to the top, where a stop that came meanwhile is seen


def housekeep(state: QueueState) -> None:
    """Heartbeat running jobs, flush their progress, requeue jobs of dead workers.

    It wakes every ``JOBS_FLUSH_INTERVAL``; a tick without a running job or a
    due sweep touches no database.
    """
    flush_every = state.config("JOBS_FLUSH_INTERVAL")
    lease = state.config("JOBS_LEASE_SECONDS")
    sweep_every = max(flush_every, lease / SWEEPS_PER_LEASE)
    schedule_every = float(state.config("JOBS_SCHEDULE_INTERVAL"))
    next_sweep = next_schedule = time.monotonic()
    while True:
        with state.condition:
            if state.stopping and not state.running and not any(w.is_alive() for w in state.workers):
                return
        state.housekeeper_alarm.wait(flush_every)
        state.housekeeper_alarm.clear()
        now = time.monotonic()
        enforce_time_limits(state)
        for job in list(state.running.values()):
            if job.dirty or now - job.last_write >= lease / HEARTBEATS_PER_LEASE:
                job.last_write = now
                try:
                    write_progress(state, job)
                except Exception as error:  # keep heartbeating the others
                    _report(state, error, f"heartbeat of job {job.id}")
        if now >= next_sweep:
            next_sweep = now + sweep_every
            sweep(state)
        if now >= next_schedule:
            next_schedule = now + schedule_every
            run_schedules(state)
        if state.finished_since_checkpoint and not state.running:
            # Idle now: fold SQLite's write-ahead log into the database file and cut it back.
            state.finished_since_checkpoint = False
            try:
                state.store.checkpoint()
            except Exception as error:
                _report(state, error, "checkpoint")


def sweep(state: QueueState) -> tuple[int, int]:
    """Requeue or fail the jobs of dead workers; wake the workers, announce the failed ones."""
    failed_ids: list[str] = []
    try:
        counts = state.store.sweep(failed_ids, own_token=state.token)
    except Exception as error:
        _report(state, error, "job sweep")
        return 0, 0
    if any(counts):
        state.wake_workers()
    for job_id in failed_ids:
        record = state.store.get(job_id)
        if record is not None:
            announce_finished(state, record)
    return counts


def run_schedules(state: QueueState) -> None:
    """Enqueue the schedules that are due (each due time once, across every process)."""
    if state.schedules is None or state.submit is None or not state.kinds:
        return
    try:
        with state.app.app_context():
            state.schedules.run_due(state.submit)
    except Exception as error:
        _report(state, error, "schedules")


def listen(state: QueueState) -> None:
    """Wake this process's workers on PostgreSQL NOTIFY from any process."""
    import psycopg

    url = state.store.engine.url.set(drivername="postgresql")
    while True:
        try:
            with psycopg.connect(url.render_as_string(hide_password=False), autocommit=True) as conn:
                conn.execute(f"LISTEN {NOTIFY_CHANNEL}")
                while True:
                    with state.condition:
                        if state.stopping:
                            return
                    for _ in conn.notifies(timeout=1.0, stop_after=1):
                        state.wake_workers()
        except psycopg.Error:
            log.exception("job listener lost its PostgreSQL connection; reconnecting")
            with state.condition:
                if state.stopping:
                    return
                state.condition.wait(state.config("JOBS_POLL_INTERVAL"))
