"""Control of jobs by name and by hand: named kinds, one run per kind, cancel, run again.

Part of ``JobQueue`` (``jobs/queue.py``): the operator's and the admin page's
side, beside the seed's API.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Optional

from flask import Flask

from database import utcnow
from jobs.kinds import JobCancelled, JobKind
from jobs.outcome import announce_finished
from jobs.state import QueueState
from jobs.stats import WINDOWS_DAYS, JobStatistics, job_statistics
from jobs.status import JobStatus

log = logging.getLogger(__name__)

CANCELLED_BEFORE_START = "Abgebrochen, bevor der Job begann"
RERUNNABLE = frozenset({JobStatus.FAILED, JobStatus.CANCELLED})


@dataclass(frozen=True)
class Submission:
    """What an enqueue did: the job to follow, and whether it already existed (one run per key)."""

    job_id: str
    status: JobStatus
    existing: bool


class UnknownKind(LookupError):
    """No job kind of that name is registered."""


class JobControl:
    """Named kinds, cancel and run-again; mixed into ``JobQueue``."""

    def _state(self) -> QueueState:  # provided by JobQueue
        raise NotImplementedError

    def register_kind(self, kind: JobKind, app: Optional[Flask] = None) -> None:
        """Make ``kind`` known to this app's queue (every process registers the same kinds)."""
        state = app.extensions["job_queue"] if app is not None else self._state()
        state.kinds[kind.name] = kind

    def kinds(self) -> list[JobKind]:
        return list(self._state().kinds.values())

    def kind(self, name: str) -> JobKind:
        try:
            return self._state().kinds[name]
        except KeyError:
            raise UnknownKind(f"unbekannte Job-Art {name!r}") from None

    def submit(self, name: str, args: tuple = (), kwargs: Optional[dict] = None,
               pinned: bool = False, attempts: Optional[int] = None) -> Submission:
        """Queue a job of the kind ``name``; while one of it is queued or running, return that one instead.

        ``pinned``: only this process may run it (``flask scrape`` runs it in
        the foreground); ``attempts`` overrides the kind's.
        """
        kind = self.kind(name)
        return self._enqueue(kind.func, args, kwargs, kind.name,  # type: ignore[attr-defined]
                             kind.name if kind.one_at_a_time else None, kind.time_limit,
                             attempts or kind.max_attempts, kind.isolation, pinned)

    def cancel(self, job_id: str) -> Optional[JobStatus]:
        """Cancel a job: a queued one at once, a running one at its next progress report.

        Returns the job's status before (QUEUED: now cancelled; RUNNING: asked
        to stop; a final status: nothing changed), or None for an unknown job.
        A job running in this process hears it first, before the database
        write (which on SQLite may wait for a commit of that very job).
        """
        state = self._state()
        running = state.running.get(job_id)
        asked = running is not None and running.request_stop(JobCancelled())
        before = state.store.cancel(job_id, (utcnow(), CANCELLED_BEFORE_START))
        if asked and before is not None and before.is_final:
            before = JobStatus.RUNNING  # it was running when asked, and has ended since (by this cancel)
        if before is JobStatus.RUNNING:
            log.info("job %s: asked to stop", job_id)
        elif before is JobStatus.QUEUED:  # cancelled here and now: its event is stored, tell the consumers
            record = state.store.get(job_id)
            if record is not None:
                announce_finished(state, record)
        return before

    def retry(self, job_id: str) -> Submission:
        """Run a failed or cancelled job again, as a new job with the same function and arguments."""
        state = self._state()
        record = state.store.get(job_id)
        if record is None:
            raise LookupError(f"Job {job_id} nicht gefunden")
        if record.status not in RERUNNABLE:
            raise ValueError(f"Job {job_id} ist {record.status.value}: nur fehlgeschlagene oder "
                             "abgebrochene Jobs lassen sich neu starten")
        if record.name in state.kinds:
            args, kwargs = json.loads(record.args_json or "[[], {}]")
            return self.submit(record.name, tuple(args), kwargs)
        if record.func_path is None:
            raise ValueError(f"Job {job_id} lief als Funktion, die nur ihr eigener Prozess kannte")
        args, kwargs = json.loads(record.args_json or "[[], {}]")
        return self._enqueue(record.func_path, tuple(args), kwargs, record.name,  # type: ignore[attr-defined]
                             record.unique_key, record.time_limit, record.max_attempts, record.isolation)


    def find_jobs(self, *, name: Optional[str] = None, status: Optional[str] = None,
                  since: Optional[datetime] = None, until: Optional[datetime] = None,
                  before: Optional[str] = None, limit: int = 20, with_messages: bool = True) -> list:
        """Jobs matching the history's filters, newest first (snapshots); ``before``: a job id to page from."""
        state = self._state()
        records = state.store.find(name=name, status=status, since=since, until=until, before=before,
                                   limit=limit, with_messages=with_messages)
        return [self._snapshot(state, record) for record in records]  # type: ignore[attr-defined]

    def statistics(self, now: Optional[datetime] = None) -> JobStatistics:
        """Per job name, the figures of 7, 30 and 365 days (jobs already cleared included), in two statements."""
        now = now or utcnow()
        runs, days = self._state().store.finished_runs(now - timedelta(days=max(WINDOWS_DAYS)))
        return JobStatistics(job_statistics(runs, days, now), runs)

