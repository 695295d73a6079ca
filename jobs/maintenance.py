"""The job store's upkeep: recovering jobs of dead workers, clearing old jobs, keeping SQLite's WAL small.

Part of ``JobStore`` (``jobs/store.py``), on the plumbing of ``jobs/store_base.py``.
"""

from __future__ import annotations

import logging
import time
from contextlib import nullcontext
from datetime import datetime
from typing import Any, Optional

from database import utcnow
from jobs.identity import host_prefix, is_dead_local_owner
from jobs.schema import RECORD_COLUMNS, job_table
from jobs.status import JobStatus
from jobs.stats import Day, fold
from jobs.store_base import StoreBase, daily_from_row, run_from_row, to_json

log = logging.getLogger(__name__)

WORKER_LOST = "Worker verloren: der Prozess, der den Job ausführte, antwortet nicht mehr"
PROCESS_GONE = WORKER_LOST + " (sein Prozess auf diesem Rechner ist beendet, ohne Wartezeit erkannt)"
# Clearing old jobs: rows per transaction, and a pause after each so that writers
# waiting for SQLite's lock (a scraper storing shops) get it in between.
CLEAR_BATCH_ROWS = 500
CLEAR_PAUSE_SECONDS = 0.02
RUNNING, QUEUED = JobStatus.RUNNING.value, JobStatus.QUEUED.value


class StoreMaintenance(StoreBase):
    """Sweep, clear, checkpoint, and test backdating."""

    def sweep(self, failed_ids: Optional[list[str]] = None, own_token: str = "") -> tuple[int, int]:
        """Requeue running jobs whose worker is gone, or fail them when out of attempts.

        Gone means: its lease expired (any machine), or its owner was a
        process of this machine that no longer exists (requeued at once, no
        lease to wait for). Jobs of ``own_token`` (this process) are never
        taken: it knows they live, even when an outage let their leases end.
        Returns (requeued, failed); the ids of the failed ones are appended
        to ``failed_ids``.
        """
        now = utcnow()
        requeued = failed = 0
        with self._transaction() as cursor:
            lost = [(job_id, attempts, most, WORKER_LOST) for job_id, attempts, most in self._run(
                cursor, "expired", running=RUNNING, now=self._time(now),
                own_prefix=f"{own_token}:%" if own_token else "").fetchall()]
            seen = {job_id for job_id, *_ in lost}
            for job_id, attempts, most, owner in self._run(cursor, "running_on_host", running=RUNNING,
                                                           host_prefix=host_prefix() + "%").fetchall():
                if job_id not in seen and is_dead_local_owner(owner, own_token):
                    lost.append((job_id, attempts, most, PROCESS_GONE))
            for job_id, attempts, max_attempts, reason in lost:
                if attempts < max_attempts:
                    self._run(cursor, "requeue_lost", queued=QUEUED, id=job_id)
                    note = f"{reason}; neu eingereiht (Versuch {attempts + 1} von {max_attempts})"
                    requeued += 1
                else:
                    error = f"{reason} (nach {attempts} Versuchen)"
                    self._run(cursor, "fail_lost", failed=JobStatus.FAILED.value, now=self._time(now),
                              error=error, id=job_id)
                    self._add_event(cursor, job_id, JobStatus.FAILED.value, now)
                    note = f"Fehler: {error}"
                    failed += 1
                    if failed_ids is not None:
                        failed_ids.append(job_id)
                self._add_messages(cursor, job_id, [(now, note)])
        if requeued or failed:
            log.warning("job sweep: %d requeued, %d failed after their worker was lost", requeued, failed)
        return requeued, failed

    def delete_finished_before(self, cutoff: datetime, batch_rows: int = CLEAR_BATCH_ROWS,
                               pause: float = CLEAR_PAUSE_SECONDS) -> int:
        """Delete finished jobs completed before ``cutoff``, their messages and events, a batch per transaction.

        Each batch holds the write lock for a few milliseconds; writers that
        waited for it (a scraper, a worker finishing a job) go in between.
        """
        params = {"completed": JobStatus.COMPLETED.value, "failed": JobStatus.FAILED.value,
                  "cancelled": JobStatus.CANCELLED.value, "cutoff": self._time(cutoff), "batch": batch_rows}
        removed = 0
        while True:
            with self._transaction() as cursor:
                # Fold the batch into its days first: statistics outlive the jobs (jobs/stats.py).
                runs = [run_from_row(row) for row in self._run(cursor, "old_finished_batch", **params).fetchall()]
                self._add_to_days(cursor, fold(runs))
                self._run(cursor, "delete_old_messages", **params)
                self._run(cursor, "delete_old_events", **params)  # left unconsumed (no consumer ran)
                deleted = self._run(cursor, "delete_old_jobs", **params).rowcount
            removed += deleted
            if deleted < batch_rows:
                break
            time.sleep(pause)
        if removed:
            self.checkpoint()
        return removed

    def _add_to_days(self, cursor: Any, days: dict) -> None:
        for (day, name), figures in days.items():
            row = self._run(cursor, "daily_one", day=self._day(day), name=name).fetchone()
            if row is not None:
                _, _, completed, failed, cancelled, durations, totals, last = daily_from_row(row)
                figures = Day(completed, failed, cancelled, durations, totals, last).merge(figures)
            values = {"day": self._day(day), "name": name, "completed": figures.completed,
                      "failed": figures.failed, "cancelled": figures.cancelled,
                      "durations_json": to_json(figures.durations), "totals_json": to_json(figures.totals),
                      "last_success_at": self._time(figures.last_success_at)}
            self._run(cursor, "daily_update" if row is not None else "daily_insert", **values)

    def checkpoint(self) -> None:
        """SQLite: move the write-ahead log into the database and cut the log file back."""
        if not self.is_postgresql:
            self._connections.outside_transaction("PRAGMA wal_checkpoint(TRUNCATE)")

    def update_fields(self, job_id: str, values: dict[str, Any]) -> None:
        """Set columns of a job directly: for tests and operators, never for a running worker."""
        values = dict(values)
        if "result" in values:
            values["result_json"] = to_json(values.pop("result"))
        if "status" in values:
            values["status"] = JobStatus(values["status"]).value
        unknown = set(values) - set(RECORD_COLUMNS)
        if unknown:
            raise ValueError(f"unknown job fields: {sorted(unknown)}")
        writer = self._connections.writer if not self.is_postgresql else nullcontext()
        with writer, self.engine.begin() as conn:
            conn.execute(job_table.update().where(job_table.c.id == job_id).values(**values))
