"""This process's threads for one app's queue: ``Worker`` owns them and decides how they stop.

Worker threads wait on a condition (woken at once by an enqueue in this
process, by PostgreSQL ``NOTIFY`` from other processes, else by a timed poll
of the database) and claim jobs atomically with a lease. A job of process
isolation runs in a child its worker thread supervises (``jobs/supervisor.py``).
The housekeeper writes progress and messages of running jobs at most every
``JOBS_FLUSH_INTERVAL`` seconds, renews their leases, enforces time limits,
requeues jobs whose worker died (in any process) and enqueues due schedules.
"""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import Future
from typing import Any, Callable, Optional

from database import is_database_unavailable
from jobs.child import lower_priority
from jobs.execution import enforce_time_limits, execute, give_back_running
from jobs.identity import owner_name
from jobs.outcome import Shutdown, announce_finished, write_progress
from jobs.schema import JobRecord
from jobs.wakeups import listen_postgresql, watch_sqlite
from jobs.state import QueueState
from jobs.supervisor import fork_server, warm_up

log = logging.getLogger(__name__)

# The housekeeper sweeps for dead workers this often, as a share of the lease.
SWEEPS_PER_LEASE = 4
# A running job's lease is renewed this often, as a share of the lease, even without news.
HEARTBEATS_PER_LEASE = 3


class Worker:
    """One app's worker threads, housekeeper and listener in this process, and their stop."""

    def __init__(self, state: QueueState) -> None:
        self.state = state
        self.condition = threading.Condition(threading.Lock())  # guards the fields below
        self.workers: list[threading.Thread] = []
        self.housekeeper: Optional[threading.Thread] = None
        self.listener: Optional[threading.Thread] = None
        self.stopping = False
        self.wakeups = 0
        self.alarm = threading.Event()  # the housekeeper's own, so an enqueue wakes only the workers
        self.shutdown = Shutdown()  # how a stop goes, for outcomes still waiting for the database
        self.finished_since_checkpoint = False  # SQLite: the housekeeper checkpoints the log when idle
        state.wake_workers = self.wake

    def wake(self) -> None:
        """Tell waiting workers there may be work (a new job, a requeued one)."""
        with self.condition:
            self.wakeups += 1
            self.condition.notify_all()

    def is_running(self) -> bool:
        return any(worker.is_alive() for worker in self.workers)

    def warm_up(self) -> Future:
        """Start the fork server of job children now (see ``supervisor.warm_up``); None-result if none."""
        context = fork_server(self.state.preload()) if self.state.config("JOBS_PROCESS_ISOLATION") else None
        if context is None:
            done: Future = Future()
            done.set_result(None)
            return done
        return warm_up(context, int(self.state.config("JOBS_NICENESS")))

    def start(self, threads: int) -> None:
        """Start worker threads up to ``threads``, and the housekeeper and listener if missing."""
        with self.condition:
            # A stop still waiting for running jobs is cancelled: the caller wants workers.
            self.stopping = False
            self.shutdown.requested.clear()
            self.shutdown.give_up_at = None
            self.workers = [worker for worker in self.workers if worker.is_alive()]
            for index in range(len(self.workers), threads):
                owner = owner_name(self.state.token, f"w{index}")
                self.workers.append(_thread(f"job-worker-{index}", self._work, owner))
            if self.housekeeper is None or not self.housekeeper.is_alive():
                self.housekeeper = _thread("job-housekeeper", self._housekeep)
            if self.listener is None or not self.listener.is_alive():
                if self.state.store.is_postgresql:
                    self.listener = _thread("job-listener", self._listen)
                elif self.state.store.engine.url.database not in (None, "", ":memory:"):
                    self.listener = _thread("job-watcher", self._watch_sqlite)

    def stop(self, timeout: Optional[float]) -> bool:
        """Ask every thread to stop after its running job; return whether all have exited in time."""
        with self.condition:
            threads = [t for t in [*self.workers, self.housekeeper, self.listener] if t is not None]
            if threads:
                self.stopping = True
                self.shutdown.give_up_at = None if timeout is None else time.monotonic() + timeout
                self.condition.notify_all()
        if threads:
            self.shutdown.requested.set()
            self.alarm.set()
            _join(threads, self.shutdown.give_up_at)
        return not any(thread.is_alive() for thread in threads)

    def warm_stop(self, grace: float) -> bool:
        """Stop claiming; give running jobs ``grace`` seconds to finish, then give them back to the queue.

        Returns whether every job finished by itself. A job given back is
        queued again at once (its attempt not counted), so a restarted
        process, or any other worker, takes it up without waiting for a lease.
        A child told to stop has ``JOBS_KILL_GRACE`` more seconds before it is killed.
        """
        if self.stop(grace):
            return True
        in_children = any(job.in_child for job in list(self.state.running.values()))
        give_back_running(self.state, grace)
        if in_children:  # their workers give them back once the children have ended
            _join(self.workers, time.monotonic() + float(self.state.config("JOBS_KILL_GRACE")) + 1.0)
        return False

    def _wait_for_work(self, seen: int, timeout: float) -> None:
        with self.condition:
            if self.wakeups == seen and not self.stopping:
                self.condition.wait(timeout)

    def _work(self, owner: str) -> None:
        """One worker thread: claim, run, finish-and-claim, until asked to stop.

        It runs at ``JOBS_NICENESS``: jobs are background work, and where they
        share a process with the web, a thread answering a page gets a core first.
        """
        lower_priority(int(self.state.config("JOBS_NICENESS")))
        state, lease = self.state, self.state.config("JOBS_LEASE_SECONDS")
        record: Optional[JobRecord] = None
        while True:
            with self.condition:
                stopping, seen = self.stopping, self.wakeups
            if stopping:
                if record is not None:  # claimed, but stop() came first: back to the queue, unrun
                    state.store.give_back(record.id, owner)
                return
            if record is not None:
                try:
                    record = execute(state, record, owner, self.shutdown, claim_next=(state.token, lease))
                except Exception:  # e.g. the database was away for the final write
                    log.exception("job worker %s: could not finish a job; it is requeued when its lease ends",
                                  owner)
                    record = None
                self.finished_since_checkpoint = True
                continue
            try:
                record = state.store.claim(owner, state.token, lease)
                state.outage.recovered()
            except Exception as error:  # the database may be away for a moment; keep the worker
                _report(self.state, error, f"claim by job worker {owner}")
            if record is None:
                self._wait_for_work(seen, state.config("JOBS_POLL_INTERVAL"))
            # with a job: back to the top, where a stop that came meanwhile is seen

    def _housekeep(self) -> None:
        """Heartbeat running jobs, flush their progress, requeue jobs of dead workers, run schedules.

        It wakes every ``JOBS_FLUSH_INTERVAL``; a tick without a running job or
        a due sweep touches no database.
        """
        state = self.state
        flush_every, lease = state.config("JOBS_FLUSH_INTERVAL"), state.config("JOBS_LEASE_SECONDS")
        sweep_every = max(flush_every, lease / SWEEPS_PER_LEASE)
        schedule_every = float(state.config("JOBS_SCHEDULE_INTERVAL"))
        next_sweep = next_schedule = time.monotonic()
        while True:
            with self.condition:
                if self.stopping and not state.running and not self.is_running():
                    return
            self.alarm.wait(flush_every)
            self.alarm.clear()
            now = time.monotonic()
            enforce_time_limits(state)
            for job in list(state.running.values()):
                if job.dirty or now - job.last_write >= lease / HEARTBEATS_PER_LEASE:
                    job.last_write = now
                    try:
                        write_progress(state, job)
                    except Exception as error:  # keep heartbeating the others
                        _report(self.state, error, f"heartbeat of job {job.id}")
            if now >= next_sweep:
                next_sweep = now + sweep_every
                self.sweep()
            if now >= next_schedule:
                next_schedule = now + schedule_every
                _run_schedules(state)
            if (self.finished_since_checkpoint or state.store.checkpoint_due) and not state.running:
                # Idle now: fold SQLite's write-ahead log into the database file and cut it back
                # (also after a consumer removed job events: those writes come after the jobs').
                self.finished_since_checkpoint = state.store.checkpoint_due = False
                try:
                    state.store.checkpoint()
                except Exception as error:
                    _report(self.state, error, "checkpoint")

    def sweep(self) -> tuple[int, int]:
        """Requeue or fail the jobs of dead workers; wake the workers, announce the failed ones."""
        failed_ids: list[str] = []
        try:
            counts = self.state.store.sweep(failed_ids, own_token=self.state.token)
        except Exception as error:
            _report(self.state, error, "job sweep")
            return 0, 0
        if any(counts):
            self.wake()
        for job_id in failed_ids:
            record = self.state.store.get(job_id)
            if record is not None:
                announce_finished(self.state, record)
        return counts

    def _watch_sqlite(self) -> None:
        """Wake this process's workers when another process queued a job (``jobs/wakeups.py``)."""
        watch_sqlite(self.state.store.engine.url.database, float(self.state.config("JOBS_SQLITE_WATCH_INTERVAL")),
                     self._stopping_after, self.wake)

    def _stopping_after(self, seconds: float) -> bool:
        """Wait up to ``seconds`` (or a wake-up) unless stopping; whether this process's workers are stopping."""
        with self.condition:
            if not self.stopping and seconds > 0:
                self.condition.wait(seconds)
            return self.stopping

    def _listen(self) -> None:
        """Wake this process's workers on PostgreSQL NOTIFY from any process (``jobs/wakeups.py``)."""
        url = self.state.store.engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
        listen_postgresql(url, self._stopping_after, self.wake, self.state.outage.recovered,
                          lambda error: _report(self.state, error, "job listener (reconnecting)"),
                          float(self.state.config("JOBS_POLL_INTERVAL")))


def _report(state: QueueState, error: Exception, what: str) -> None:
    """An unreachable database is one line per outage; anything else keeps its traceback."""
    if is_database_unavailable(error):
        state.outage.failed(error)
    else:
        log.exception("%s failed", what)


def _run_schedules(state: QueueState) -> None:
    """Enqueue the schedules that are due (each due time once, across every process)."""
    if state.schedules is None or state.submit is None or not state.kinds:
        return
    try:
        with state.app.app_context():
            state.schedules.run_due(state.submit)
    except Exception as error:
        _report(state, error, "schedules")


def _thread(name: str, target: Callable[..., Any], *args: Any) -> threading.Thread:
    thread = threading.Thread(target=target, args=args, name=name, daemon=True)
    thread.start()
    return thread


def _join(threads: list[threading.Thread], deadline: Optional[float]) -> None:
    for thread in threads:
        thread.join(None if deadline is None else max(0.0, deadline - time.monotonic()))
