"""Durable background jobs, bound to Flask apps as an extension.

The module-level ``job_queue`` is created unbound; ``job_queue.init_app(app)``
gives that app its own queue state in ``app.extensions["job_queue"]``: a job
store on the app's database (``jobs/store.py``) and, once started, worker
threads of this process. Calls made inside an app context act on that app's
queue; outside one they act on the most recently bound app, so the seed's
debugging snippet works from a plain Python shell.

Jobs live in the database, so any process answers for any job and queued jobs
survive restarts. Workers wait on a condition (woken at once by an enqueue in
this process, by PostgreSQL ``NOTIFY`` from other processes, else by a timed
poll of the database), claim jobs atomically with a lease, and run each inside
``app.app_context()`` with the ``Job`` as first argument. A housekeeping
thread writes progress and messages of running jobs at most every
``JOBS_FLUSH_INTERVAL`` seconds (scrapers may call ``set_progress`` in tight
loops), renews their leases, and requeues jobs whose worker died.
"""

from __future__ import annotations

import importlib
import json
import logging
import os
import signal
import socket
import threading
import time
import traceback
import uuid
import weakref
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from enum import Enum
from typing import Any, Callable, Optional

import click
from flask import Flask, current_app, has_app_context
from flask.cli import with_appcontext

from jobs import store as job_store
from jobs.store import JobRecord, JobStore, create_tables, make_engine, utcnow_naive

log = logging.getLogger(__name__)

EXTENSION_KEY = "job_queue"

DEFAULT_CONFIG: dict[str, Any] = {
    "JOBS_AUTOSTART": True,  # start this process's workers on the first enqueue
    "JOBS_RUN_IN_WEB": True,  # web processes run jobs too (the default, one-process shape)
    "JOBS_WORKER_THREADS": 1,  # worker threads per process: the seed runs jobs one at a time
    "JOBS_LEASE_SECONDS": 30.0,  # a worker silent this long is presumed dead
    "JOBS_FLUSH_INTERVAL": 0.2,  # progress and messages reach the database this often
    "JOBS_POLL_INTERVAL": 1.0,  # idle workers look at the database this often (no NOTIFY)
    "JOBS_MAX_ATTEMPTS": 3,  # runs of a job whose worker keeps dying
    "JOBS_DURABLE_COMMIT": False,  # PostgreSQL: wait for the disk on every job write
}


class JobStatus(str, Enum):
    """The one source of truth for a job's state; serialises as a plain string."""

    QUEUED = job_store.QUEUED
    RUNNING = job_store.RUNNING
    COMPLETED = job_store.COMPLETED
    FAILED = job_store.FAILED

    @property
    def is_final(self) -> bool:
        return self in (JobStatus.COMPLETED, JobStatus.FAILED)


def utcnow() -> datetime:
    """Return the current time as an aware UTC datetime."""
    return datetime.now(timezone.utc)


def _aware(moment: Optional[datetime]) -> Optional[datetime]:
    return moment.replace(tzinfo=timezone.utc) if moment is not None and moment.tzinfo is None else moment


def _naive(moment: Optional[datetime]) -> Optional[datetime]:
    return moment.astimezone(timezone.utc).replace(tzinfo=None) if moment and moment.tzinfo else moment


def _iso(moment: Optional[datetime]) -> Optional[str]:
    return _aware(moment).isoformat() if moment is not None else None


def _message_dicts(record: JobRecord) -> list[dict[str, Optional[str]]]:
    return [{"timestamp": _iso(ts), "message": text} for ts, text in record.messages]


def _percent(record: JobRecord) -> int:
    return int(record.progress * 100 // record.total_steps)


_TIMESTAMPS = ("created_at", "started_at", "completed_at")
_WRITABLE = ("status", "progress", "total_steps", "result", "error", "traceback") + _TIMESTAMPS
_READABLE = _WRITABLE + ("messages", "attempts", "max_attempts", "owner", "lease_until")


class Job:
    """One job as its function and the API see it.

    A job running in this process is written to by its function
    (``add_message``, ``set_progress``) and read from memory; every other
    ``Job`` object reads the database on each access, so a poller always sees
    the latest state, whichever process runs the job. One lock per job makes
    each ``to_dict()`` a consistent snapshot.
    """

    def __init__(
        self,
        func: Optional[Callable[..., Any]] = None,
        args: tuple = (),
        kwargs: Optional[dict] = None,
        name: Optional[str] = None,
    ) -> None:
        """Make a detached job that lives only in memory (scripts, tests of a job function)."""
        record = JobRecord(
            id=str(uuid.uuid4()),
            name=name or getattr(func, "__name__", repr(func)),
            status=job_store.QUEUED,
            created_at=utcnow_naive(),
        )
        self._setup(None, record, None)
        object.__setattr__(self, "func", func)
        object.__setattr__(self, "args", tuple(args))
        object.__setattr__(self, "kwargs", dict(kwargs or {}))

    @classmethod
    def _bound(cls, state: "_QueueState", record: JobRecord, owner: Optional[str] = None) -> "Job":
        """A job of a queue; with ``owner`` it is the copy this process runs."""
        job = cls.__new__(cls)
        job._setup(state, record, owner)
        return job

    def _setup(self, state: Optional["_QueueState"], record: JobRecord, owner: Optional[str]) -> None:
        object.__setattr__(self, "_state", state)
        object.__setattr__(self, "_record", record)
        object.__setattr__(self, "_owner", owner)  # set: this object runs the job here
        object.__setattr__(self, "_lock", threading.Lock())
        # Heartbeat and final write must not overlap: messages taken by one must
        # not be lost when the other changes the row first.
        object.__setattr__(self, "_write_lock", threading.Lock())
        object.__setattr__(self, "_pending", [])  # messages not yet in the database
        object.__setattr__(self, "_dirty", False)
        object.__setattr__(self, "_lost", False)
        object.__setattr__(self, "_last_write", time.monotonic())  # the claim renewed the lease

    @property
    def _in_memory(self) -> bool:
        """This object holds the truth: it runs the job here, or it is detached."""
        return self._state is None or self._owner is not None

    # -- which copy is current --------------------------------------------------

    @property
    def id(self) -> str:
        return self._record.id

    @property
    def name(self) -> str:
        return self._record.name

    @property
    def func_path(self) -> Optional[str]:
        """``module:qualname`` of the function, None for one that only this process can run."""
        return self._record.func_path

    def _current(self) -> JobRecord:
        if self._in_memory:
            return self._record
        runner = self._state.running.get(self.id)
        if runner is not None:
            return runner._record
        fresh = self._state.store.get(self.id)
        if fresh is not None:
            object.__setattr__(self, "_record", fresh)
        return self._record

    def __getattr__(self, name: str) -> Any:
        # Only reached for names that are not attributes of the object itself.
        if name in _READABLE:
            record = self._current()
            with self._lock if self._in_memory else _NO_LOCK:
                if name == "status":
                    return JobStatus(record.status)
                if name == "messages":
                    return _message_dicts(record)
                value = getattr(record, name)
                return _aware(value) if name in _TIMESTAMPS or name == "lease_until" else value
        raise AttributeError(name)

    def __setattr__(self, name: str, value: Any) -> None:
        """Write a field straight to the database (an operator's or a test's override)."""
        if name not in _WRITABLE:
            raise AttributeError(f"Job has no writable attribute {name!r}")
        stored = value.value if isinstance(value, JobStatus) else _naive(value) if name in _TIMESTAMPS else value
        if self._state is None:
            setattr(self._record, name, stored)
            return
        self._state.store.update_fields(self.id, {name: stored})
        setattr(self._record, name, stored)
        runner = self._state.running.get(self.id)
        if runner is not None:  # the copy this process runs reads from memory
            setattr(runner._record, name, stored)

    # -- called by the job function -------------------------------------------------

    def add_message(self, msg: str) -> None:
        """Append a timestamped status message that the admin page shows."""
        entry = (utcnow_naive(), str(msg))
        log.info("job %s: %s", self.id, msg)
        if not self._in_memory:
            self._state.store.add_message(self.id, *entry)
            return
        with self._lock:
            self._record.messages.append(entry)
            self._pending.append(entry)
            object.__setattr__(self, "_dirty", True)

    def set_progress(self, current: int, total: int = 100) -> None:
        """Record ``current`` of ``total`` steps done, clamped to ``0..total``."""
        total = int(total)
        if total <= 0:
            raise ValueError(f"total must be positive, got {total}")
        current = max(0, min(int(current), total))
        if not self._in_memory:
            self._state.store.update_fields(self.id, {"progress": current, "total_steps": total})
            return
        with self._lock:
            self._record.progress = current
            self._record.total_steps = total
            object.__setattr__(self, "_dirty", True)

    def get_progress_percent(self) -> int:
        """Return progress as a whole percentage (0..100)."""
        return _percent(self._current())

    def to_dict(self) -> dict[str, Any]:
        """Return the seed's JSON shape as one consistent snapshot."""
        record = self._current()
        runner = self if self._in_memory else self._state.running.get(self.id)
        with runner._lock if runner is not None else _NO_LOCK:
            return {
                "id": record.id,
                "status": record.status,
                "progress": record.progress,
                "progress_percent": _percent(record),
                "total_steps": record.total_steps,
                "messages": _message_dicts(record),
                "error": record.error,
                "result": record.result,
                "created_at": _iso(record.created_at),
                "started_at": _iso(record.started_at),
                "completed_at": _iso(record.completed_at),
            }

    # -- called by this process's worker and housekeeper only ------------------------

    def _write_progress(self, lease_seconds: float) -> None:
        """Heartbeat: renew the lease, write progress and pending messages."""
        with self._write_lock:
            with self._lock:
                if self._lost or self._record.status != job_store.RUNNING:
                    return
                pending = list(self._pending)
                self._pending.clear()
                object.__setattr__(self, "_dirty", False)
                progress, total = self._record.progress, self._record.total_steps
            try:
                written = self._state.store.heartbeat(self.id, self._owner, lease_seconds, progress, total, pending)
            except Exception:
                with self._lock:  # keep the messages for the next try
                    self._pending[:0] = pending
                    object.__setattr__(self, "_dirty", True)
                raise
            if not written:
                object.__setattr__(self, "_lost", True)
                log.warning("job %s: lease lost; this worker's writes are ignored from now on", self.id)

    def _finish(self, status: str, result: Any = None, exc: Optional[BaseException] = None,
                claim_next: Optional[tuple[str, float]] = None) -> Optional[JobRecord]:
        """Write the outcome; with ``claim_next`` (token, lease) also claim this worker's next job."""
        now = utcnow_naive()
        with self._write_lock:
            with self._lock:
                record = self._record
                if exc is not None:
                    record.error = f"{type(exc).__name__}: {exc}"
                    record.traceback = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
                    entry = (now, f"Fehler: {record.error}")
                    record.messages.append(entry)
                    self._pending.append(entry)
                else:
                    record.result = result
                    record.progress = record.total_steps
                record.status, record.completed_at = status, now
                pending = list(self._pending)
                self._pending.clear()
            final = dict(status=status, progress=record.progress, total_steps=record.total_steps,
                         result=record.result, error=record.error, traceback=record.traceback,
                         completed_at=now, messages=[] if self._lost else pending)
            store = self._state.store
            for attempt in range(1, 4):  # the outcome matters: ride out a short database hiccup
                try:
                    if claim_next is None:
                        finished = False if self._lost else store.finish(self.id, self._owner, **final)
                        following = None
                    else:
                        finished, following = store.finish_and_claim(self.id, self._owner, *claim_next, **final)
                    break
                except Exception:
                    if attempt == 3:
                        raise
                    log.warning("job %s: final write failed (attempt %d), retrying", self.id, attempt)
                    time.sleep(0.5 * attempt)
        if not finished and not self._lost:
            log.warning("job %s: lease lost before it finished; its outcome was not written", self.id)
        return following

    def __repr__(self) -> str:
        return f"<Job {self.id} {self.name}>"


class _NoLock:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: Any) -> None:
        return None


_NO_LOCK = _NoLock()


def _callable_path(func: Callable[..., Any]) -> Optional[str]:
    """``module:qualname`` when another process can import exactly this function."""
    module, qualname = getattr(func, "__module__", None), getattr(func, "__qualname__", "")
    if not module or "<" in qualname or module == "__main__":
        return None
    try:
        target: Any = importlib.import_module(module)
        for part in qualname.split("."):
            target = getattr(target, part)
    except (ImportError, AttributeError):
        return None
    return f"{module}:{qualname}" if target is func else None


def _load_callable(path: str) -> Callable[..., Any]:
    module, _, qualname = path.partition(":")
    target: Any = importlib.import_module(module)
    for part in qualname.split("."):
        target = getattr(target, part)
    return target


@dataclass
class _QueueState:
    """One app's queue in this process; shared fields guarded by ``condition``."""

    app: Flask
    store: JobStore
    condition: threading.Condition
    token: str  # this process's queue: jobs pinned to it run only here
    running: dict = field(default_factory=dict)  # job id -> Job run by this process
    local_calls: dict = field(default_factory=dict)  # job id -> (func, args, kwargs)
    workers: list = field(default_factory=list)
    housekeeper: Optional[threading.Thread] = None
    listener: Optional[threading.Thread] = None
    stopping: bool = False
    wakeups: int = 0
    # The housekeeper's own alarm, so an enqueue wakes only the workers.
    housekeeper_alarm: threading.Event = field(default_factory=threading.Event)

    def config(self, key: str) -> Any:
        return self.app.config[key]

    def wake_workers(self) -> None:
        """Tell waiting workers there may be work (a new job, a requeued one)."""
        with self.condition:
            self.wakeups += 1
            self.condition.notify_all()


class JobQueue:
    """Flask extension running enqueued callables on background workers."""

    def __init__(self, app: Optional[Flask] = None) -> None:
        self._last_app: Optional[weakref.ref] = None
        if app is not None:
            self.init_app(app)

    def init_app(self, app: Flask) -> None:
        """Give ``app`` its queue on the app's database; workers start later."""
        if EXTENSION_KEY in app.extensions:
            raise RuntimeError("JobQueue is already registered on this app")
        for key, value in DEFAULT_CONFIG.items():
            app.config.setdefault(key, value)
        url = app.config.get("JOBS_DATABASE_URI") or app.config.get("SQLALCHEMY_DATABASE_URI")
        if not url:
            raise RuntimeError("JobQueue needs SQLALCHEMY_DATABASE_URI (or JOBS_DATABASE_URI)")
        engine = make_engine(url, durable_commit=bool(app.config["JOBS_DURABLE_COMMIT"]))
        create_tables(engine, job_store.metadata)
        app.extensions[EXTENSION_KEY] = _QueueState(
            app=app,
            store=JobStore(engine),
            condition=threading.Condition(threading.Lock()),
            token=f"{socket.gethostname()[:30]}-{os.getpid()}-{uuid.uuid4().hex[:8]}",
        )
        app.cli.add_command(worker_command)
        self._last_app = weakref.ref(app)

    def _state(self) -> _QueueState:
        if has_app_context():
            app = current_app._get_current_object()  # type: ignore[attr-defined]
        else:
            app = self._last_app() if self._last_app is not None else None
        if app is None or EXTENSION_KEY not in app.extensions:
            raise RuntimeError("JobQueue is not bound to an app: call job_queue.init_app(app)")
        return app.extensions[EXTENSION_KEY]

    # -- the seed's public API ------------------------------------------------------

    def enqueue(
        self,
        func: Callable[..., Any],
        args: tuple = (),
        kwargs: Optional[dict] = None,
        name: Optional[str] = None,
    ) -> str:
        """Queue ``func(job, *args, **kwargs)`` and return the new job's id.

        An importable function with JSON arguments can run in any worker
        process; anything else (a lambda, a closure) runs only in this one.
        """
        state = self._state()
        args, kwargs = tuple(args), dict(kwargs or {})
        func_path = _callable_path(func)
        try:
            args_json = json.dumps([list(args), kwargs])
        except (TypeError, ValueError):
            args_json = None
        portable = func_path is not None and args_json is not None
        if not portable and not state.config("JOBS_RUN_IN_WEB"):
            raise ValueError(
                f"{func!r} cannot run in a worker process: enqueue a module-level function "
                "with JSON-serialisable arguments"
            )
        record = JobRecord(
            id=str(uuid.uuid4()),
            name=name or getattr(func, "__name__", repr(func)),
            status=job_store.QUEUED,
            created_at=utcnow_naive(),
            func_path=func_path,
            args_json=args_json if portable else None,
            pinned_to=None if portable else state.token,
            max_attempts=int(state.config("JOBS_MAX_ATTEMPTS")),
        )
        if not portable:
            state.local_calls[record.id] = (func, args, kwargs)
        state.store.insert(record)
        state.wake_workers()
        if state.config("JOBS_AUTOSTART") and state.config("JOBS_RUN_IN_WEB"):
            self._start(state)
        return record.id

    def get_job(self, job_id: str) -> Optional[Job]:
        """Return the job with this id, or ``None``."""
        state = self._state()
        runner = state.running.get(job_id)
        if runner is not None:
            return Job._bound(state, runner._record)
        record = state.store.get(job_id)
        return Job._bound(state, record) if record is not None else None

    def get_all_jobs(self, limit: Optional[int] = None) -> list[Job]:
        """Return the known jobs, newest first (at most ``limit``)."""
        state = self._state()
        return [Job._bound(state, record) for record in state.store.newest(limit)]

    def start(self, threads: Optional[int] = None) -> None:
        """Start this process's worker threads if they are not running."""
        self._start(self._state(), threads)

    def stop(self, timeout: Optional[float] = 10.0) -> bool:
        """Stop the workers after their running jobs; return whether all have exited.

        Queued jobs stay queued and run after the next ``start()``.
        """
        state = self._state()
        with state.condition:
            threads = [t for t in state.workers + [state.housekeeper, state.listener] if t is not None]
            if not threads:
                return True
            state.stopping = True
            state.condition.notify_all()
        state.housekeeper_alarm.set()
        deadline = None if timeout is None else time.monotonic() + timeout
        for thread in threads:
            thread.join(None if deadline is None else max(0.0, deadline - time.monotonic()))
        return not any(thread.is_alive() for thread in threads)

    def clear_old_jobs(self, max_age_hours: float = 24) -> int:
        """Delete finished jobs that completed more than ``max_age_hours`` ago."""
        cutoff = utcnow_naive() - timedelta(hours=max_age_hours)
        return self._state().store.delete_finished_before(cutoff)

    # -- more -------------------------------------------------------------------------

    def run_pending(self) -> int:
        """Run every queued job this process may run, in the calling thread; return how many."""
        state = self._state()
        owner = f"{state.token}-sync-{uuid.uuid4().hex[:6]}"
        ran = 0
        while (record := state.store.claim(owner, state.token, state.config("JOBS_LEASE_SECONDS"))) is not None:
            self._execute(state, record, owner)
            ran += 1
        return ran

    def is_running(self) -> bool:
        """Tell whether this process has a live worker thread for the app."""
        return any(worker.is_alive() for worker in self._state().workers)

    def sweep(self) -> tuple[int, int]:
        """Requeue (or fail) jobs whose worker died; return (requeued, failed)."""
        return self._state().store.sweep()

    # -- workers ------------------------------------------------------------------------

    def _start(self, state: _QueueState, threads: Optional[int] = None) -> None:
        wanted = int(threads or state.config("JOBS_WORKER_THREADS"))
        with state.condition:
            # A stop still waiting for running jobs is cancelled: the caller wants
            # workers, and joining here would block it.
            state.stopping = False
            state.workers = [worker for worker in state.workers if worker.is_alive()]
            for index in range(len(state.workers), wanted):
                owner = f"{state.token}-w{index}-{uuid.uuid4().hex[:6]}"
                worker = threading.Thread(target=self._work, args=(state, owner),
                                          name=f"job-worker-{index}", daemon=True)
                state.workers.append(worker)
                worker.start()
            if state.housekeeper is None or not state.housekeeper.is_alive():
                state.housekeeper = threading.Thread(target=self._housekeep, args=(state,),
                                                     name="job-housekeeper", daemon=True)
                state.housekeeper.start()
            if state.store.is_postgresql and (state.listener is None or not state.listener.is_alive()):
                state.listener = threading.Thread(target=self._listen, args=(state,),
                                                  name="job-listener", daemon=True)
                state.listener.start()

    def _wait_for_work(self, state: _QueueState, seen: int, timeout: float) -> None:
        with state.condition:
            if state.wakeups == seen and not state.stopping:
                state.condition.wait(timeout)

    def _work(self, state: _QueueState, owner: str) -> None:
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
                    record = self._execute(state, record, owner, claim_next=True)
                except Exception:  # e.g. the database was away for the final write
                    log.exception("job worker %s: could not finish a job; it is requeued when its lease ends",
                                  owner)
                    record = None
                continue
            try:
                record = state.store.claim(owner, state.token, lease)
            except Exception:  # the database may be away for a moment; keep the worker
                log.exception("job worker %s could not claim a job", owner)
            if record is None:
                self._wait_for_work(state, seen, state.config("JOBS_POLL_INTERVAL"))
            # with a job: back to the top, where a stop that came meanwhile is seen

    def _execute(self, state: _QueueState, record: JobRecord, owner: str,
                 claim_next: bool = False) -> Optional[JobRecord]:
        """Run one claimed job; return the next job claimed with its finish, if asked to."""
        call = state.local_calls.pop(record.id, None)
        job = Job._bound(state, record, owner=owner)
        state.running[record.id] = job  # the housekeeper heartbeats it from now on
        with state.condition:
            claim = (state.token, state.config("JOBS_LEASE_SECONDS")) if claim_next and not state.stopping else None
        try:
            if call is None:
                func = _load_callable(record.func_path)
                args, kwargs = json.loads(record.args_json or "[[], {}]")
                call = (func, tuple(args), kwargs)
            func, args, kwargs = call
            with state.app.app_context():
                result = func(job, *args, **kwargs)
            json.dumps(result, default=str)  # a result the database cannot hold fails the job
        except BaseException as exc:  # the worker must survive every job, even SystemExit
            log.exception("job %s (%s) failed", record.id, record.name)
            return job._finish(job_store.FAILED, exc=exc, claim_next=claim)
        else:
            return job._finish(job_store.COMPLETED, result=result, claim_next=claim)
        finally:
            state.running.pop(record.id, None)

    def _housekeep(self, state: _QueueState) -> None:
        """Heartbeat running jobs, flush their progress, requeue jobs of dead workers.

        It wakes every ``JOBS_FLUSH_INTERVAL``; a tick without a running job or
        a due sweep touches no database.
        """
        flush_every = state.config("JOBS_FLUSH_INTERVAL")
        lease = state.config("JOBS_LEASE_SECONDS")
        sweep_every = max(flush_every, lease / 4)
        next_sweep = time.monotonic()
        while True:
            with state.condition:
                if state.stopping and not state.running and not any(w.is_alive() for w in state.workers):
                    return
            state.housekeeper_alarm.wait(flush_every)
            state.housekeeper_alarm.clear()
            now = time.monotonic()
            for job in list(state.running.values()):
                if job._dirty or now - job._last_write >= lease / 3:
                    object.__setattr__(job, "_last_write", now)
                    try:
                        job._write_progress(lease)
                    except Exception:  # keep heartbeating the others
                        log.exception("job %s: heartbeat failed", job.id)
            if now >= next_sweep:
                next_sweep = now + sweep_every
                try:
                    if any(state.store.sweep()):
                        state.wake_workers()
                except Exception:
                    log.exception("job sweep failed")

    def _listen(self, state: _QueueState) -> None:
        """Wake this process's workers on PostgreSQL NOTIFY from any process."""
        import psycopg

        url = state.store.engine.url.set(drivername="postgresql")
        while True:
            try:
                with psycopg.connect(url.render_as_string(hide_password=False), autocommit=True) as conn:
                    conn.execute(f"LISTEN {job_store.NOTIFY_CHANNEL}")
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


@click.command("worker")
@click.option("--threads", type=int, default=None, help="worker threads (default JOBS_WORKER_THREADS)")
@click.option("--until-empty", is_flag=True, help="exit once no job is queued (batch runs, tests)")
@with_appcontext
def worker_command(threads: Optional[int], until_empty: bool) -> None:
    """Run jobs from the database until interrupted (or, with --until-empty, done)."""
    state: _QueueState = current_app.extensions[EXTENSION_KEY]
    job_queue._start(state, threads)
    click.echo(f"Worker {state.token} läuft mit {len(state.workers)} Thread(s).")
    stopped = threading.Event()
    # SIGTERM (systemd, docker stop, gunicorn-style supervisors): a warm stop.
    signal.signal(signal.SIGTERM, lambda _signum, _frame: stopped.set())
    try:
        while not stopped.wait(0.5 if until_empty else 5):
            if until_empty and not state.running and state.store.count(job_store.QUEUED) == 0 \
                    and state.store.count(job_store.RUNNING) == 0:
                break
    except KeyboardInterrupt:
        click.echo("Beende nach den laufenden Jobs...")
    job_queue.stop(timeout=None)


job_queue = JobQueue()
