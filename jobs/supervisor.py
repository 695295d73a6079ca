"""Run a job in a child process and watch over it, as RQ's worker does with its work horse.

Children come from a fork server (one per process, started once, with the
app's modules imported; never a fork of the multi-threaded web process).
The worker thread that claimed the job relays what the child reports into
the job's handle, so its housekeeper writes progress, messages and the lease
as for any job, and this thread writes the outcome: the job's row has one
writer. A stop (cancel, time limit, the process stopping) goes to the child
over its pipe; a child still running ``JOBS_KILL_GRACE`` seconds later is
killed. A child that ends without reporting (a signal, the OOM killer) is
asked after: the kind's ``settle`` tells whether its work was stored.
"""

from __future__ import annotations

import logging
import multiprocessing
import signal
import threading
import time
from concurrent.futures import Future
from multiprocessing.connection import Connection, wait
from multiprocessing.context import BaseContext
from typing import Any, Callable, Iterable, Optional

from jobs.child import ChildTask, lower_priority, run_child
from jobs.job import Job

log = logging.getLogger(__name__)

SIGNAL_MEANINGS = {"SIGSEGV": "Speicherzugriffsfehler", "SIGKILL": "vom System beendet, z. B. Speichermangel",
                   "SIGABRT": "abgebrochen", "SIGBUS": "Busfehler"}

_preload_lock = threading.Lock()
_preloaded = False


class ChildFailed(Exception):
    """The job's function raised in its child: the error and traceback as the child described them."""

    def __init__(self, error: str, traceback: Optional[str], retryable: bool, expected: bool) -> None:
        super().__init__(error)
        self.error_text, self.traceback_text = error, traceback
        self.retryable, self.expected = retryable, expected


class ChildDied(Exception):
    """The child ended without reporting an outcome: a signal, ``os._exit``, the OOM killer."""

    retryable = True  # a crash or a killed process may well not happen again
    traceback_text = None

    def __init__(self, exitcode: Optional[int]) -> None:
        if exitcode is not None and exitcode < 0:
            name = {sig.value: sig.name for sig in signal.Signals}.get(-exitcode, str(-exitcode))
            meaning = SIGNAL_MEANINGS.get(name)
            text = f"Job-Prozess durch Signal {name} beendet" + (f" ({meaning})" if meaning else "")
        else:
            text = f"Job-Prozess ohne Ergebnis beendet (Exit-Code {exitcode})"
        super().__init__(text)
        self.error_text = text


def fork_server(preload: Iterable[str]) -> Optional[BaseContext]:
    """This process's fork server (its modules imported once), or None where there is none (Windows)."""
    global _preloaded
    if "forkserver" not in multiprocessing.get_all_start_methods():
        return None
    context = multiprocessing.get_context("forkserver")
    with _preload_lock:
        if not _preloaded:  # takes effect only before the server starts: the first app's modules
            context.set_forkserver_preload(sorted({"jobs.child", *preload}))
            _preloaded = True
    return context


def warm_up(context: BaseContext, niceness: int) -> Future:
    """Start the fork server now, in the background, and one child; a future of that child's exit code.

    The fork server imports the app's modules first (a second or two): a
    serving process does that at start rather than at the first job. It is
    started from a thread at ``niceness`` and inherits it (Linux: niceness
    is per thread), so those imports leave the cores to the web.
    """
    started: Future = Future()

    def start() -> None:
        try:
            lower_priority(niceness)
            process = context.Process(target=_nothing, name="job-warm-up", daemon=True)
            process.start()
            process.join()
            started.set_result(process.exitcode)
        except Exception as exc:  # e.g. this process is ending
            started.set_exception(exc)

    threading.Thread(target=start, name="fork-server-warm-up", daemon=True).start()
    return started


def _nothing() -> None:
    """The warm-up child's job."""


def run_in_child(job: Job, task: ChildTask, context: BaseContext, kill_grace: float,
                 settle: Callable[[BaseException], Any]) -> Any:
    """Run the claimed job's function in a child; return its result or raise what ended it.

    ``settle(why)`` is asked when the child ended without an outcome: the
    result its stored work stands for, else None (then ``why`` is raised).
    """
    if job.stop_reason is not None:  # stopped before it began (the process is stopping): no child
        raise job.stop_reason
    reports, child_reports = context.Pipe(duplex=False)
    child_control, control = context.Pipe(duplex=False)
    wake, waker = context.Pipe(duplex=False)
    process = context.Process(target=run_child, args=(task, child_reports, child_control),
                              name=f"job-{job.id[:8]}")
    process.start()
    child_reports.close()
    child_control.close()
    job.on_stop(lambda: _send(waker, None))  # from any thread: this one passes the stop on
    try:
        outcome = _watch(job, process, reports, wake, control, kill_grace)
    finally:
        if process.exitcode is None:
            process.kill()
        process.join()
        for connection in (reports, control, wake, waker):
            connection.close()
    if outcome is None:
        why = job.stop_reason or ChildDied(process.exitcode)
        log.warning("job %s (%s): child %s ended without an outcome (exit code %s)",
                    job.id, job.name, process.pid, process.exitcode)
        result = settle(why)
        if result is None:
            raise why
        job.note(f"{ChildDied(process.exitcode).error_text}, nachdem die Daten gespeichert waren")
        return result
    kind, payload, peak_kib = outcome
    log.info("job %s (%s): child %s ended (%s), peak memory %.1f MiB",
             job.id, job.name, process.pid, kind, peak_kib / 1024)
    if kind == "stopped":
        raise job.stop_reason or payload
    if kind == "failed":
        raise ChildFailed(*payload)
    return payload


def _watch(job: Job, process: Any, reports: Connection, wake: Connection, control: Connection,
           kill_grace: float) -> Optional[tuple]:
    """Relay the child's reports until it ends; pass stops on, kill it past the grace. Its outcome, if it sent one."""
    outcome, kill_at = None, None
    while True:
        timeout = None if kill_at is None else max(0.0, kill_at - time.monotonic())
        ready = wait([reports, wake, process.sentinel], timeout)
        if wake in ready:
            wake.recv()
            _send(control, job.stop_reason)
            kill_at = time.monotonic() + kill_grace
        if not ready:
            log.warning("job %s: child %s did not stop within %g s: killed", job.id, process.pid, kill_grace)
            process.kill()
            kill_at = None
        outcome = _relay(job, reports) or outcome
        if process.sentinel in ready:
            return _relay(job, reports) or outcome  # what it wrote just before it ended


def _relay(job: Job, reports: Connection) -> Optional[tuple]:
    """Hand the reports waiting in the pipe to the job's handle; return the outcome if one came."""
    outcome = None
    try:
        while reports.poll():
            kind, *rest = reports.recv()
            if kind == "message":
                job.note(rest[1], rest[0])
            elif kind == "progress":
                job.record_progress(*rest)
            else:
                outcome = tuple(rest)
    except EOFError:  # the child has ended and everything it sent is read
        pass
    return outcome


def _send(connection: Connection, message: Any) -> None:
    try:
        connection.send(message)
    except OSError:  # the other end has gone: nothing to tell any more
        pass

