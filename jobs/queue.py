"""The ``JobQueue`` Flask extension: the seed's API over the durable job store.

The module-level ``job_queue`` (``job_queue.py``) is created unbound;
``init_app(app)`` gives that app its own queue state in
``app.extensions["job_queue"]``: a job store on the app's database and, once
started, worker threads of this process. Calls made inside an app context act
on that app's queue; outside one they act on the most recently bound app, so
the seed's debugging snippet works from a plain Python shell.
"""

from __future__ import annotations

import json
import time
import uuid
import weakref
from concurrent.futures import Future
from datetime import timedelta
from typing import Any, Callable, Optional, Union

from flask import Flask, current_app, has_app_context

from database import create_missing_tables, is_database_unavailable, utcnow
from jobs.callables import resolve_job_function
from jobs.cli import init_cli
from jobs.connections import make_engine
from jobs.control import JobControl, Submission
from jobs.execution import execute
from jobs.identity import owner_name, process_token
from jobs.kinds import ISOLATIONS, THREAD
from jobs.schedules import Schedules
from jobs.schema import JobRecord, metadata
from jobs.state import QueueState
from jobs.status import JobStatus
from jobs.store import JobStore
from jobs.view import JobSnapshot
from jobs.worker import Worker

EXTENSION_KEY = "job_queue"

DEFAULT_CONFIG: dict[str, Any] = {
    "JOBS_AUTOSTART": True,  # start this process's workers on the first enqueue
    "JOBS_RUN_IN_WEB": True,  # web processes run jobs too (the default, one-process shape)
    "JOBS_WORKER_THREADS": 1,  # worker threads per process: the seed runs jobs one at a time
    "JOBS_LEASE_SECONDS": 30.0,  # a worker silent this long is presumed dead
    "JOBS_FLUSH_INTERVAL": 0.2,  # progress and messages reach the database this often
    "JOBS_POLL_INTERVAL": 1.0,  # idle workers look at the database this often (no NOTIFY)
    "JOBS_SQLITE_WATCH_INTERVAL": 0.02,  # SQLite: how often a process asks whether another queued a job
    "JOBS_MAX_ATTEMPTS": 3,  # runs of a job whose worker keeps dying
    "JOBS_DURABLE_COMMIT": False,  # PostgreSQL: wait for the disk on every job write
    "JOBS_CREATE_TABLES": True,  # create missing job tables in init_app (off where migrations own the schema)
    "JOBS_STOP_GRACE": 25.0,  # seconds a stopping process lets running jobs finish, then gives them back
    "JOBS_ENQUEUE_RETRY_SECONDS": 3.0,  # an enqueue rides out a database hiccup this long, then fails
    "JOBS_RETRY_BACKOFF": 30.0,  # seconds before a retryable failure's first retry (doubling, with jitter)
    "JOBS_RETRY_BACKOFF_MAX": 3600.0,  # the longest wait between two attempts
    "JOBS_SCHEDULE_INTERVAL": 20.0,  # how often a process looks for due schedules (seconds)
    "SCHEDULE_TIMEZONE": "Europe/Berlin",  # cron expressions are read in this zone
    # Kinds of process isolation run each job in a child process (jobs/supervisor.py); off: in a worker thread.
    "JOBS_PROCESS_ISOLATION": True,
    "JOBS_KILL_GRACE": 3.0,  # seconds a child told to stop may take before it is killed
    "JOBS_NICENESS": 10,  # worker threads, job children and their fork server yield the cores to the web
}

ENQUEUE_FIRST_BACKOFF, ENQUEUE_MAX_BACKOFF = 0.05, 0.5

JobFunction = Union[Callable[..., Any], str]


class JobQueue(JobControl):
    """Flask extension running enqueued callables on background workers."""

    def __init__(self, app: Optional[Flask] = None) -> None:
        self._last_app: Optional[weakref.ref] = None
        if app is not None:
            self.init_app(app)

    def init_app(self, app: Flask, app_factory: Optional[str] = None) -> None:
        """Give ``app`` its queue on the app's database; workers start later.

        ``app_factory`` ("module:function", called with the configuration and
        the instance path) builds the app a job's child process runs in;
        without it a child gets a bare Flask app with the configuration.
        """
        if EXTENSION_KEY in app.extensions:
            raise RuntimeError("JobQueue is already registered on this app")
        for key, value in DEFAULT_CONFIG.items():
            app.config.setdefault(key, value)
        url = app.config.get("JOBS_DATABASE_URI") or app.config.get("SQLALCHEMY_DATABASE_URI")
        if not url:
            raise RuntimeError("JobQueue needs SQLALCHEMY_DATABASE_URI (or JOBS_DATABASE_URI)")
        engine = make_engine(url, durable_commit=bool(app.config["JOBS_DURABLE_COMMIT"]))
        if app.config["JOBS_CREATE_TABLES"]:
            create_missing_tables(engine, metadata)
        state = QueueState(app=app, store=JobStore(engine), token=process_token(),
                           schedules=Schedules(engine, app.config["SCHEDULE_TIMEZONE"]), submit=self.submit,
                           app_factory=app_factory)
        state.worker = Worker(state)
        app.extensions[EXTENSION_KEY] = state
        init_cli(app, self)
        self._last_app = weakref.ref(app)

    def add_start_check(self, app: Flask, check: Callable[[], None]) -> None:
        """Run ``check`` before ``flask worker`` takes jobs; it raises ``SystemExit`` to refuse."""
        app.extensions[EXTENSION_KEY].start_checks.append(check)

    def _state(self) -> QueueState:
        if has_app_context():
            app = current_app._get_current_object()  # type: ignore[attr-defined]
        else:
            app = self._last_app() if self._last_app is not None else None
        if app is None or EXTENSION_KEY not in app.extensions:
            raise RuntimeError("JobQueue is not bound to an app: call job_queue.init_app(app)")
        return app.extensions[EXTENSION_KEY]

    def _snapshot(self, state: QueueState, record: JobRecord) -> JobSnapshot:
        kind = state.kinds.get(record.name)
        return JobSnapshot(record, state.load_record, kind.label if kind else None)

    # -- the seed's public API ------------------------------------------------------

    def enqueue(self, func: JobFunction, args: tuple = (), kwargs: Optional[dict] = None,
                name: Optional[str] = None, *, unique_key: Optional[str] = None,
                time_limit: Optional[float] = None, max_attempts: Optional[int] = None,
                isolation: str = THREAD) -> str:
        """Queue ``func(job, *args, **kwargs)`` and return the new job's id.

        ``func`` is a callable or a ``"module:function"`` string; anything else
        raises ``TypeError``. An importable function with JSON arguments can
        run in any worker process; anything else (a lambda, a closure) runs
        only in this one. With ``unique_key``, while another job with that key
        is queued or running, that job's id is returned instead of a new one
        (``submit`` tells the two apart). ``time_limit`` stops the job after so
        many seconds. ``isolation="process"`` runs it in a child process of
        its own (an importable function with JSON arguments only).
        """
        return self._enqueue(func, args, kwargs, name, unique_key, time_limit, max_attempts, isolation).job_id

    def _enqueue(self, func: JobFunction, args: tuple, kwargs: Optional[dict], name: Optional[str],
                 unique_key: Optional[str], time_limit: Optional[float], max_attempts: Optional[int],
                 isolation: str = THREAD, pinned: bool = False) -> Submission:
        """Queue a job; ``pinned``: only this process may run it (a foreground run)."""
        if isolation not in ISOLATIONS:
            raise ValueError(f"isolation must be one of {ISOLATIONS}, not {isolation!r}")
        state = self._state()
        func, func_path = resolve_job_function(func)
        args, kwargs = tuple(args), dict(kwargs or {})
        try:
            args_json: Optional[str] = json.dumps([list(args), kwargs])
        except (TypeError, ValueError):
            args_json = None
        portable = func_path is not None and args_json is not None
        if not portable and isolation != THREAD:
            raise ValueError(f"{func!r} cannot run in a child process: enqueue a module-level function "
                             "with JSON-serialisable arguments")
        if not portable and not state.config("JOBS_RUN_IN_WEB"):
            raise ValueError(
                f"{func!r} cannot run in a worker process: enqueue a module-level function "
                "with JSON-serialisable arguments"
            )
        record = JobRecord(
            id=str(uuid.uuid4()),
            name=name or getattr(func, "__name__", repr(func)),
            status=JobStatus.QUEUED,
            created_at=utcnow(),
            func_path=func_path,
            args_json=args_json if portable else None,
            pinned_to=None if portable and not pinned else state.token,
            max_attempts=int(max_attempts or state.config("JOBS_MAX_ATTEMPTS")),
            unique_key=unique_key,
            time_limit=time_limit,
            isolation=isolation,
        )
        if not portable:
            state.local_calls[record.id] = (func, args, kwargs)
        try:
            existing = _insert(state, record)
        except Exception:
            state.local_calls.pop(record.id, None)
            raise
        if existing is not None:  # another job holds the key: that one is the answer
            state.local_calls.pop(record.id, None)
            return Submission(existing[0], existing[1], existing=True)
        state.wake_workers()
        # A pinned job is run by its caller (flask scrape): starting workers here would race it.
        if state.config("JOBS_AUTOSTART") and state.config("JOBS_RUN_IN_WEB") and not pinned:
            self._start(state)
        return Submission(record.id, JobStatus.QUEUED, existing=False)

    def get_job(self, job_id: str) -> Optional[JobSnapshot]:
        """Return a snapshot of the job with this id, or ``None``."""
        state = self._state()
        record = state.load_record(job_id)
        return self._snapshot(state, record) if record is not None else None

    def get_all_jobs(self, limit: Optional[int] = None) -> list[JobSnapshot]:
        """Return snapshots of the known jobs, newest first (at most ``limit``)."""
        state = self._state()
        return [self._snapshot(state, record) for record in state.store.newest(limit)]

    def start(self, threads: Optional[int] = None) -> None:
        """Start this process's worker threads if they are not running."""
        self._start(self._state(), threads)

    def warm_up(self) -> Future:
        """Start the fork server of job children now, in the background; a future of a first child's exit code.

        It starts with the first process-isolated job otherwise, and its start
        (importing the app's modules) takes a second or two. A serving process
        calls this once its workers run. The future's result is None where
        jobs do not run in children.
        """
        return self._state().worker.warm_up()

    def stop(self, timeout: Optional[float] = 10.0) -> bool:
        """Stop the workers after their running jobs; return whether all have exited.

        Queued jobs stay queued and run after the next ``start()``.
        """
        return self._state().worker.stop(timeout)

    def shutdown(self, grace: Optional[float] = None) -> bool:
        """Stop warmly: let running jobs finish within ``grace`` (``JOBS_STOP_GRACE``), then give them back.

        Returns whether every running job finished. Used when the process
        ends (SIGTERM, Ctrl-C) in ``flask run``, gunicorn and ``flask worker``.
        """
        state = self._state()
        return state.worker.warm_stop(float(state.config("JOBS_STOP_GRACE") if grace is None else grace))

    def clear_old_jobs(self, max_age_hours: float = 24) -> int:
        """Delete finished jobs that completed more than ``max_age_hours`` ago."""
        cutoff = utcnow() - timedelta(hours=max_age_hours)
        return self._state().store.delete_finished_before(cutoff)

    # -- more -------------------------------------------------------------------------

    def run_pending(self) -> int:
        """Run every queued job this process may run, in the calling thread; return how many.

        Process-isolated jobs too run here (tests, scripts): stops are then
        cooperative, at the job's next ``add_message`` or ``set_progress``.
        """
        state = self._state()
        owner = owner_name(state.token, "sync")
        ran = 0
        while (record := state.store.claim(owner, state.token, state.config("JOBS_LEASE_SECONDS"))) is not None:
            execute(state, record, owner, state.worker.shutdown, in_thread=True)
            ran += 1
        return ran

    def is_running(self) -> bool:
        """Tell whether this process has a live worker thread for the app."""
        return bool(self._state().worker.is_running())

    def sweep(self) -> tuple[int, int]:
        """Requeue (or fail) jobs whose worker died; return (requeued, failed)."""
        return self._state().worker.sweep()

    def _start(self, state: QueueState, threads: Optional[int] = None) -> None:
        state.worker.start(int(threads or state.config("JOBS_WORKER_THREADS")))


def _insert(state: QueueState, record: JobRecord) -> Optional[tuple[str, JobStatus]]:
    """Store a new job; a database that is away is retried for a short, bounded time."""
    give_up_at = time.monotonic() + float(state.config("JOBS_ENQUEUE_RETRY_SECONDS"))
    delay = ENQUEUE_FIRST_BACKOFF
    while True:
        try:
            return state.store.insert(record)
        except Exception as error:
            if not is_database_unavailable(error) or time.monotonic() + delay > give_up_at:
                raise
            state.outage.failed(error)
        time.sleep(delay)
        delay = min(delay * 2, ENQUEUE_MAX_BACKOFF)
