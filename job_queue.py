"""In-process background job queue, bound to Flask apps as an extension.

The module-level ``job_queue`` is created unbound; ``job_queue.init_app(app)``
gives that app its own queue state (jobs, pending FIFO, one worker thread)
in ``app.extensions["job_queue"]``. Calls made inside an app context act on
that app's queue; outside one they act on the most recently bound app, so the
seed's debugging snippet works from a plain Python shell.

The worker blocks on a condition variable (no sleep-polling), runs each job
inside ``app.app_context()`` with the ``Job`` as first argument, and survives
every exception a job raises. Only the worker changes a job's status.
"""

from __future__ import annotations

import collections
import logging
import threading
import traceback
import uuid
import weakref
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from enum import Enum
from typing import Any, Callable, Optional

from flask import Flask, current_app, has_app_context

log = logging.getLogger(__name__)

EXTENSION_KEY = "job_queue"


class JobStatus(str, Enum):
    """The one source of truth for a job's state; serialises as a plain string."""

    QUEUED = "queued"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"

    @property
    def is_final(self) -> bool:
        return self in (JobStatus.COMPLETED, JobStatus.FAILED)


def utcnow() -> datetime:
    """Return the current time as an aware UTC datetime."""
    return datetime.now(timezone.utc)


def _iso(moment: Optional[datetime]) -> Optional[str]:
    return moment.isoformat() if moment is not None else None


class Job:
    """One unit of background work and its observable progress.

    Scrapers call ``add_message`` and ``set_progress`` from the worker thread
    while web requests call ``to_dict``; one lock per job makes every snapshot
    consistent (progress, percent and messages always belong together).
    """

    def __init__(
        self,
        func: Callable[..., Any],
        args: tuple = (),
        kwargs: Optional[dict] = None,
        name: Optional[str] = None,
    ) -> None:
        self.id: str = str(uuid.uuid4())
        self.func = func
        self.args = tuple(args)
        self.kwargs = dict(kwargs or {})
        self.name: str = name or getattr(func, "__name__", repr(func))
        self.status: JobStatus = JobStatus.QUEUED
        self.progress: int = 0
        self.total_steps: int = 100
        self.messages: list[dict[str, str]] = []
        self.result: Any = None
        self.error: Optional[str] = None
        self.traceback: Optional[str] = None
        self.created_at: datetime = utcnow()
        self.started_at: Optional[datetime] = None
        self.completed_at: Optional[datetime] = None
        self._lock = threading.Lock()

    # -- called by the job function -------------------------------------

    def add_message(self, msg: str) -> None:
        """Append a timestamped status message that the admin page shows."""
        entry = {"timestamp": utcnow().isoformat(), "message": str(msg)}
        with self._lock:
            self.messages.append(entry)
        log.info("job %s: %s", self.id, msg)

    def set_progress(self, current: int, total: int = 100) -> None:
        """Record ``current`` of ``total`` steps done, clamped to ``0..total``."""
        total = int(total)
        if total <= 0:
            raise ValueError(f"total must be positive, got {total}")
        current = max(0, min(int(current), total))
        with self._lock:
            self.progress = current
            self.total_steps = total

    def get_progress_percent(self) -> int:
        """Return progress as a whole percentage (0..100)."""
        with self._lock:
            return self._percent()

    def _percent(self) -> int:
        return int(self.progress * 100 // self.total_steps)

    def to_dict(self) -> dict[str, Any]:
        """Return the seed's JSON shape as one consistent snapshot."""
        with self._lock:
            return {
                "id": self.id,
                "status": self.status.value,
                "progress": self.progress,
                "progress_percent": self._percent(),
                "total_steps": self.total_steps,
                "messages": [dict(entry) for entry in self.messages],
                "error": self.error,
                "result": self.result,
                "created_at": _iso(self.created_at),
                "started_at": _iso(self.started_at),
                "completed_at": _iso(self.completed_at),
            }

    # -- called by the worker only ---------------------------------------

    def _mark_running(self) -> None:
        with self._lock:
            self.status = JobStatus.RUNNING
            self.started_at = utcnow()

    def _complete(self, result: Any) -> None:
        with self._lock:
            self.result = result
            self.progress = self.total_steps
            self.status = JobStatus.COMPLETED
            self.completed_at = utcnow()

    def _fail(self, exc: BaseException) -> None:
        # Progress stays where the job got to: a failure never reports 100 %.
        error = f"{type(exc).__name__}: {exc}"
        entry = {"timestamp": utcnow().isoformat(), "message": f"Fehler: {error}"}
        with self._lock:
            self.error = error
            self.traceback = "".join(
                traceback.format_exception(type(exc), exc, exc.__traceback__)
            )
            self.messages.append(entry)
            self.status = JobStatus.FAILED
            self.completed_at = utcnow()

    def __repr__(self) -> str:
        return f"<Job {self.id} {self.name} {self.status.value}>"


@dataclass
class _QueueState:
    """Everything one app's queue owns; guarded by ``condition``."""

    app: Flask
    condition: threading.Condition
    jobs: dict
    pending: collections.deque
    worker: Optional[threading.Thread] = None
    stopping: bool = False


class JobQueue:
    """Flask extension running enqueued callables on a background worker thread."""

    def __init__(self, app: Optional[Flask] = None) -> None:
        self._last_app: Optional[weakref.ref] = None
        if app is not None:
            self.init_app(app)

    def init_app(self, app: Flask) -> None:
        """Give ``app`` its own queue; the worker starts on the first enqueue."""
        if EXTENSION_KEY in app.extensions:
            raise RuntimeError("JobQueue is already registered on this app")
        app.config.setdefault("JOBS_AUTOSTART", True)
        app.extensions[EXTENSION_KEY] = _QueueState(
            app=app,
            condition=threading.Condition(threading.Lock()),
            jobs={},
            pending=collections.deque(),
        )
        self._last_app = weakref.ref(app)

    def _state(self) -> _QueueState:
        if has_app_context():
            app = current_app._get_current_object()  # type: ignore[attr-defined]
        else:
            app = self._last_app() if self._last_app is not None else None
        if app is None or EXTENSION_KEY not in app.extensions:
            raise RuntimeError(
                "JobQueue is not bound to an app: call job_queue.init_app(app)"
            )
        return app.extensions[EXTENSION_KEY]

    # -- the seed's public API ------------------------------------------

    def enqueue(
        self,
        func: Callable[..., Any],
        args: tuple = (),
        kwargs: Optional[dict] = None,
        name: Optional[str] = None,
    ) -> str:
        """Queue ``func(job, *args, **kwargs)`` and return the new job's id."""
        state = self._state()
        job = Job(func, args, kwargs, name=name)
        with state.condition:
            state.jobs[job.id] = job
            state.pending.append(job)
            state.condition.notify()
        if state.app.config["JOBS_AUTOSTART"]:
            self._start(state)
        return job.id

    def get_job(self, job_id: str) -> Optional[Job]:
        """Return the job with this id, or ``None``."""
        state = self._state()
        with state.condition:
            return state.jobs.get(job_id)

    def get_all_jobs(self) -> list[Job]:
        """Return every known job, newest first."""
        state = self._state()
        with state.condition:
            jobs = list(state.jobs.values())
        # dicts keep insertion order, so reversing is "newest first" even
        # when two jobs share a created_at timestamp.
        jobs.reverse()
        return jobs

    def start(self) -> None:
        """Start the worker thread if it is not running."""
        self._start(self._state())

    def stop(self, timeout: Optional[float] = 10.0) -> bool:
        """Stop the worker after its running job; return whether it has exited.

        Queued jobs stay queued and run after the next ``start()``.
        """
        state = self._state()
        with state.condition:
            worker = state.worker
            if worker is None:
                return True
            state.stopping = True
            state.condition.notify_all()
        worker.join(timeout)
        return not worker.is_alive()

    def clear_old_jobs(self, max_age_hours: float = 24) -> int:
        """Forget finished jobs that completed more than ``max_age_hours`` ago."""
        cutoff = utcnow() - timedelta(hours=max_age_hours)
        state = self._state()
        with state.condition:
            old_ids = [
                job_id
                for job_id, job in state.jobs.items()
                if job.status.is_final
                and job.completed_at is not None
                and job.completed_at < cutoff
            ]
            for job_id in old_ids:
                del state.jobs[job_id]
        return len(old_ids)

    # -- synchronous path for tests and scripts --------------------------

    def run_pending(self) -> int:
        """Run every queued job in the calling thread; return how many ran."""
        state = self._state()
        ran = 0
        while True:
            with state.condition:
                if not state.pending:
                    return ran
                job = state.pending.popleft()
            self._execute(state.app, job)
            ran += 1

    def is_running(self) -> bool:
        """Tell whether this app's worker thread is alive."""
        worker = self._state().worker
        return worker is not None and worker.is_alive()

    # -- the worker -------------------------------------------------------

    def _start(self, state: _QueueState) -> None:
        with state.condition:
            if state.worker is not None and state.worker.is_alive():
                # A stop still waiting for the running job is cancelled: the
                # caller wants a worker, and joining here would block it.
                state.stopping = False
                return
            state.stopping = False
            state.worker = threading.Thread(
                target=self._work, args=(state,), name="job-queue-worker", daemon=True
            )
            state.worker.start()

    def _work(self, state: _QueueState) -> None:
        while True:
            with state.condition:
                while not state.pending and not state.stopping:
                    state.condition.wait()
                if state.stopping:
                    return
                job = state.pending.popleft()
            self._execute(state.app, job)

    @staticmethod
    def _execute(app: Flask, job: Job) -> None:
        job._mark_running()
        try:
            with app.app_context():
                result = job.func(job, *job.args, **job.kwargs)
        except Exception as exc:  # the worker must survive every job
            log.exception("job %s (%s) failed", job.id, job.name)
            job._fail(exc)
        else:
            job._complete(result)


job_queue = JobQueue()
