"""A small process pool for the CPU-heavy pure steps of jobs (parsing scraped pages).

Why: jobs run in threads of the web process (the design card's in-process
queue). Parsing hundreds of pages holds the interpreter lock that the web
threads need, so every page answer waited behind it (job_status p95 20–38×
its idle value). Pure functions that take and return plain data run here
instead, in other processes with their own interpreter lock, while the job
itself (progress, messages, cancellation, database writes) stays in its
thread.

The pool starts lazily on the first submit, is sized by
``SCRAPER_PARSE_PROCESSES`` and shut down with the queue. ``0`` runs the
functions in the calling thread: for comparison, and for platforms where
processes cannot be started. Processes come from a fork server (one clean,
single-threaded parent with the parsers imported once), never forked from the
multi-threaded web process. A pool process that dies (a crash, ``os._exit``,
the OOM killer) breaks the pool: the waiting job fails with ``PoolCrashed``
at once and the next submit starts a fresh pool.
"""

from __future__ import annotations

import logging
import multiprocessing
import multiprocessing.connection
import os
import signal
import threading
import time
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any, Callable, Optional, Sequence

log = logging.getLogger(__name__)

# Imported once in the fork server, so a new pool process starts with the parsers loaded.
PRELOAD = ("scrapers.miles_and_more_pages", "scrapers.payback")


# Long enough that every warm-up task finds the processes started before it busy (see warm_up).
WARM_UP_TASK_SECONDS = 0.2

# Pool processes yield the CPU to the web process: parsing is background work.
POOL_NICENESS = 19


def lower_priority(niceness: int) -> None:
    """Give the calling thread at least ``niceness`` (Linux: per thread; other threads keep theirs).

    Raising one's niceness needs no privilege; it is never lowered here.
    """
    if not niceness or not hasattr(os, "setpriority"):
        return
    thread = threading.get_native_id()
    try:
        os.setpriority(os.PRIO_PROCESS, thread, max(niceness, os.getpriority(os.PRIO_PROCESS, thread)))
    except OSError as exc:
        log.warning("could not lower the priority of thread %s: %s", thread, exc)


def _prepare_pool_process() -> None:
    """Run in each new pool process.

    Lower priority: a busy pool must not take the cores the web answers from.
    Ctrl-C and SIGTERM reach the whole process group; a pool process that died
    of them would fail the jobs the warm stop is letting finish. So they are
    ignored here, and the queue ends its pool itself once its jobs are done.
    """
    lower_priority(POOL_NICENESS)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    parent = multiprocessing.parent_process()
    if parent is not None:
        threading.Thread(target=_exit_with_parent, args=(parent.sentinel,), name="parent-watch",
                         daemon=True).start()


def _exit_with_parent(sentinel: int) -> None:
    """End this pool process once the process that owns the pool is gone.

    A pool is shut down by its queue; a web process that is killed (``kill -9``,
    the OOM killer, a supervisor's last resort) or ends with ``os._exit`` never
    does that, and its pool processes, which ignore SIGTERM and wait on a queue
    of their own, would live on with nothing to do. The sentinel is a pipe
    that only the owner writes to: it reads as ended when the owner is.
    """
    multiprocessing.connection.wait([sentinel])
    os._exit(0)


def _process_id_after(seconds: float) -> int:
    """The warm-up task: keep this process busy a moment (so the next task starts another), say which it is."""
    time.sleep(seconds)
    return os.getpid()


class PoolCrashed(RuntimeError):
    """A pool process ended while running a job's step: the job fails with this message."""


def crash_message(error: BaseException) -> str:
    return (
        "Ein Parser-Prozess wurde unerwartet beendet (abgestürzt oder vom System beendet); "
        f"Lauf abgebrochen, bitte erneut starten ({type(error).__name__})"
    )


def _start_method() -> Optional[str]:
    methods = multiprocessing.get_all_start_methods()
    for method in ("forkserver", "spawn"):
        if method in methods:
            return method
    return None


def completed(value: Any = None, error: Optional[BaseException] = None) -> Future:
    """A future that is already done: what an in-thread run returns."""
    future: Future = Future()
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(value)
    return future


class CpuPool:
    """Lazily started worker processes for pure functions; ``processes=0`` runs them inline."""

    def __init__(self, processes: int, preload: Sequence[str] = PRELOAD) -> None:
        self.processes = max(0, int(processes))
        self._preload = list(preload)
        self._lock = threading.Lock()
        self._executor: Optional[ProcessPoolExecutor] = None
        self._method = _start_method() if self.processes else None
        if self.processes and self._method is None:
            log.warning("no process start method on this platform: parsing runs in the job threads")
            self.processes = 0

    @property
    def in_thread(self) -> bool:
        return self.processes == 0

    def submit(self, fn: Callable[..., Any], *args: Any) -> Future:
        """Run ``fn(*args)`` in a pool process (inline when the pool has no processes).

        ``fn`` must be importable and its arguments and result picklable: only
        plain data crosses the boundary.
        """
        executor = self._ready_executor()
        if executor is None:
            try:
                return completed(fn(*args))
            except Exception as exc:  # the caller sees it when it asks for the result
                return completed(error=exc)
        try:
            return executor.submit(fn, *args)
        except BrokenProcessPool as exc:
            self.discard(executor)
            return completed(error=PoolCrashed(crash_message(exc)))

    def warm_up(self) -> Future:
        """Start every pool process in a background thread; return a future of their process ids.

        The thread takes the pool's niceness first: the fork server it starts
        inherits it, and its imports must not take a core from the web.
        Each process gets a short task, so all of them start (the executor
        starts one only when no started one is idle). Inline: no processes.
        """
        started: Future = Future()
        if self.in_thread:
            started.set_result(set())
            return started
        threading.Thread(target=self._start_processes, args=(started,), name="cpu-pool-warm-up",
                         daemon=True).start()
        return started

    def _start_processes(self, started: Future) -> None:
        lower_priority(POOL_NICENESS)
        try:
            executor = self._ready_executor()
            tasks = [executor.submit(_process_id_after, WARM_UP_TASK_SECONDS)
                     for _ in range(self.processes)] if executor is not None else []
            started.set_result({task.result() for task in tasks})
        except Exception as exc:  # shut down meanwhile (the queue stopped): the next submit starts it
            log.info("parse pool not warmed up: %s", exc)
            started.set_exception(exc)

    def _ready_executor(self) -> Optional[ProcessPoolExecutor]:
        with self._lock:
            if self.in_thread:
                return None
            if self._executor is None:
                context = multiprocessing.get_context(self._method)
                if self._method == "forkserver":
                    context.set_forkserver_preload(self._preload)
                self._executor = ProcessPoolExecutor(
                    max_workers=self.processes, mp_context=context, initializer=_prepare_pool_process
                )
            return self._executor

    def discard(self, executor: Optional[ProcessPoolExecutor] = None) -> None:
        """Drop a broken executor (the next submit starts a fresh one)."""
        with self._lock:
            if executor is None or executor is self._executor:
                executor, self._executor = self._executor, None
            else:
                executor = None
        if executor is not None:
            executor.shutdown(wait=False, cancel_futures=True)

    def result(self, future: Future) -> Any:
        """The result of a done future; a broken pool becomes ``PoolCrashed``."""
        try:
            return future.result(timeout=0)
        except BrokenProcessPool as exc:
            self.discard()
            raise PoolCrashed(crash_message(exc)) from exc

    def shutdown(self) -> None:
        """End the pool's processes now; a later submit starts it again.

        Called once no job waits for the pool any more (the queue stopped), so
        a step still running (a cancelled job's) is of no use: its process is
        terminated rather than waited for. ``ProcessPoolExecutor`` has no
        public way to do that before Python 3.14 (``terminate_workers``),
        hence its ``_processes``.
        """
        with self._lock:
            executor, self._executor = self._executor, None
        if executor is None:
            return
        processes = list(getattr(executor, "_processes", {}).values())
        executor.shutdown(wait=False, cancel_futures=True)
        for process in processes:
            process.kill()  # it ignores SIGTERM (see _prepare_pool_process)
        for process in processes:
            process.join(timeout=5)


# The pool of jobs that have none (detached jobs, a queue set to 0): steps run inline. One for all.
INLINE = CpuPool(0)
