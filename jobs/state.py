"""One app's queue in this process: ``QueueState``, what the parts of the job system share.

It holds no thread: this process's worker threads and how they stop belong
to ``Worker`` (``jobs/worker.py``), which the queue keeps here once made.
"""

from __future__ import annotations

import pickle  # nosec B403 - pickles the app's own configuration for its own child processes
from dataclasses import dataclass, field
from multiprocessing.context import BaseContext
from typing import Any, Callable, Optional

from flask import Flask

from database import OutageLog, outage_log
from jobs.child import ChildTask
from jobs.job import Job
from jobs.kinds import PROCESS, JobKind
from jobs.schedules import Schedules
from jobs.schema import JobRecord
from jobs.store import JobStore
from jobs.supervisor import fork_server


@dataclass
class QueueState:
    """One app's queue in this process: its store, its kinds, the jobs it runs now."""

    app: Flask
    store: JobStore
    token: str  # this process's queue: jobs pinned to it run only here
    schedules: Optional[Schedules] = None
    submit: Optional[Callable[[str], Any]] = None  # JobQueue.submit, for due schedules
    # "module:function" (config, instance_path) -> Flask: the app a job's child process builds.
    app_factory: Optional[str] = None
    kinds: dict[str, JobKind] = field(default_factory=dict)  # name -> the app's named kinds of jobs
    running: dict[str, Job] = field(default_factory=dict)  # job id -> handle of a job run here
    local_calls: dict[str, tuple] = field(default_factory=dict)  # job id -> (func, args, kwargs)
    # Run by `flask worker` before it takes jobs; each raises SystemExit to refuse.
    start_checks: list[Callable[[], None]] = field(default_factory=list)
    worker: Any = None  # jobs.worker.Worker (it imports this module): this process's threads
    wake_workers: Callable[[], None] = lambda: None  # tell waiting workers there may be work

    @property
    def outage(self) -> OutageLog:
        return outage_log(self.app)

    def config(self, key: str) -> Any:
        return self.app.config[key]

    def load_record(self, job_id: str) -> Optional[JobRecord]:
        """The freshest state of a job: from memory when it runs here, else from the database."""
        running = self.running.get(job_id)
        return running.snapshot_record() if running is not None else self.store.get(job_id)

    def child_context(self, record: JobRecord) -> Optional[BaseContext]:
        """The fork server to run ``record`` in a child of, or None to run it in the worker's thread.

        In a thread: jobs of thread isolation, functions only this process
        knows, a database only this process sees (SQLite in memory), and
        everything where there is no fork server or ``JOBS_PROCESS_ISOLATION`` is off.
        """
        if record.isolation != PROCESS or record.func_path is None or record.args_json is None \
                or not self.config("JOBS_PROCESS_ISOLATION") or _only_here(str(self.store.engine.url)) \
                or _only_here(self.app.config.get("SQLALCHEMY_DATABASE_URI") or ""):
            return None
        return fork_server(self.preload())

    def preload(self) -> set[str]:
        """The modules a child needs: the app factory's and every kind's function's."""
        paths = [self.app_factory or "", *(kind.func for kind in self.kinds.values())]
        return {path.partition(":")[0] for path in paths if path}

    def child_task(self, record: JobRecord) -> ChildTask:
        """What a child needs for ``record``: the app's configuration as plain data (what pickles)."""
        config = {key: value for key, value in self.app.config.items() if _plain(value)}
        config["JOBS_AUTOSTART"] = False  # a child runs its one job, no workers of its own
        return ChildTask(record, self.app_factory, config, self.app.instance_path)


def _only_here(url: str) -> bool:
    """Whether only this process can open the database at ``url`` (SQLite in memory)."""
    return url in ("sqlite://", "sqlite:///:memory:") or "mode=memory" in url


def _plain(value: Any) -> bool:
    try:
        pickle.dumps(value)
    except Exception:  # an object only this process can hold (a function, a lock, a client)
        return False
    return True
