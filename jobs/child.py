"""A job's child process: it builds the app from plain data, runs the job function, reports, and ends.

The supervising worker (``jobs/supervisor.py``) starts it from a fork server.
The child writes no job field: its ``ChildJob`` sends messages, progress and
the outcome over a pipe, and the worker writes them. It takes its stop
orders over a second pipe; the order raises the stop reason in the job's
(main) thread at once, through ``STOP_SIGNAL``, even in a blocked read or a
busy loop, so the function's ``finally`` blocks run. Ctrl-C and SIGTERM sent
to the whole process group do not reach the job: the worker decides. A child
whose worker is gone ends at once: nobody would record what it did.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
from dataclasses import dataclass
from datetime import datetime
from multiprocessing import forkserver
from multiprocessing.connection import Connection
from typing import Any, Optional

from flask import Flask

from database import is_database_unavailable, utcnow
from jobs.callables import load_callable
from jobs.job import Job, describe_error
from jobs.kinds import JobStopped
from jobs.schema import JobRecord

STOP_SIGNAL = getattr(signal, "SIGUSR1", None)  # None where there is no fork server either (Windows)
ORPHANED = 70  # exit status of a child whose worker went away


@dataclass(frozen=True)
class ChildTask:
    """What a child needs to run a claimed job, as plain data."""

    record: JobRecord  # the claimed job: its function, arguments, attempt and messages
    app_factory: Optional[str]  # "module:function" (config, instance_path) -> Flask; None: a bare Flask app
    config: dict[str, Any]  # the app's configuration, as far as it is plain data
    instance_path: str


class ChildJob(Job):
    """The job handle inside a child: what the function reports goes to the supervising worker."""

    def __init__(self, record: JobRecord, reports: Connection) -> None:
        self._setup(record)
        self._reports = reports
        self._sent = (record.progress, record.total_steps)

    def note(self, text: str, moment: Optional[datetime] = None) -> None:
        entry = (moment or utcnow(), text)
        with self._lock:
            self._record.messages.append(entry)
        self._send(("message", *entry))

    def record_progress(self, current: int, total: int = 100) -> None:
        super().record_progress(current, total)
        progress = (self._record.progress, self._record.total_steps)
        if progress != self._sent:
            self._sent = progress
            self._send(("progress", *progress))

    def _send(self, report: tuple) -> None:
        """Send one report whole: a stop signal is held back until it is in the pipe."""
        signal.pthread_sigmask(signal.SIG_BLOCK, {STOP_SIGNAL})
        try:
            self._reports.send(report)
        finally:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, {STOP_SIGNAL})


def lower_priority(niceness: int) -> None:
    """Give the calling thread, and the threads and processes it starts, at least ``niceness``.

    Jobs are background work: on a busy machine the kernel gives the web's
    threads a core first. Linux keeps a niceness per thread; raising one's
    own needs no privilege, and it is never lowered here.
    """
    if niceness > 0 and hasattr(os, "setpriority"):
        thread = threading.get_native_id()
        os.setpriority(os.PRIO_PROCESS, thread, max(niceness, os.getpriority(os.PRIO_PROCESS, thread)))


def run_child(task: ChildTask, reports: Connection, control: Connection) -> None:
    """The child's whole life: run the job, report how it ended, exit (never returning to the fork server)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    lower_priority(int(task.config.get("JOBS_NICENESS", 0)))
    job = ChildJob(task.record, reports)
    signal.signal(STOP_SIGNAL, lambda _signum, _frame: job.raise_if_stopped())
    threading.Thread(target=_obey, args=(control, job), name="job-control", daemon=True).start()
    try:
        try:
            outcome = _run(task, job)
        except JobStopped as stop:  # the one stop signal came while a failure was being handled
            outcome = ("stopped", stop)
        import resource  # Unix only, as children are

        reports.send(("outcome", *outcome, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss))
    finally:
        os._exit(0)  # no exit handlers, no waiting for threads a stopped job left behind


def _run(task: ChildTask, job: ChildJob) -> tuple[str, Any]:
    """("completed", result), ("stopped", reason) or ("failed", (error, traceback, retryable, expected))."""
    try:
        app = _build_app(task)
        args, kwargs = json.loads(task.record.args_json or "[[], {}]")
        with app.app_context():
            result = load_callable(task.record.func_path or "")(job, *args, **kwargs)
            job.committed = True  # it has ended: a stop that comes now comes too late
        return "completed", result
    except JobStopped as stop:
        return "stopped", stop
    except (Exception, SystemExit) as exc:
        if job.stop_reason is not None and not job.committed:  # a closed connection may raise first
            return "stopped", job.stop_reason
        outage = is_database_unavailable(exc)  # temporary: worth another attempt, no traceback in the log
        return "failed", (*describe_error(exc), outage or bool(getattr(exc, "retryable", False)),
                          outage or bool(getattr(exc, "expected", False)))


def _build_app(task: ChildTask) -> Flask:
    if task.app_factory:
        return load_callable(task.app_factory)(task.config, task.instance_path)
    app = Flask(__name__, instance_path=task.instance_path)
    app.config.update(task.config)
    return app


def _obey(control: Connection, job: ChildJob) -> None:
    """Take stop orders from the supervising worker; end this process once the worker is gone."""
    main = threading.main_thread().ident or 0
    try:
        while True:
            job.request_stop(control.recv())
            signal.pthread_kill(main, STOP_SIGNAL)
    except (EOFError, OSError):
        os._exit(ORPHANED)


# The fork server reports each child's end to the worker that started it. A SIGTERM sent to the
# whole process group (a service manager stopping the app) must not end it while children run:
# every running job would look dead. Its own end comes when the process that started it ends.
if getattr(sys.modules.get("__main__"), "main", None) is forkserver.main:  # only in the fork server
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
