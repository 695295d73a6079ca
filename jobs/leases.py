"""What a worker writes: claim with a lease, heartbeats, the outcome, a retry, a job given back.

Every write after the claim names the owner: a worker whose lease was taken
over writes nothing.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, NamedTuple, Optional

from database import storable_text
from jobs.schema import RECORD_COLUMNS, JobRecord, Message
from jobs.status import JobStatus
from jobs.store_base import QUEUED, RUNNING, StoreBase, message_from_row, record_from_row, to_json


def _storable(text: Optional[str]) -> Optional[str]:
    return None if text is None else storable_text(text)


class Heartbeat(NamedTuple):
    """What a heartbeat learned: whether the lease is still ours, whether someone asked the job to stop."""

    written: bool
    cancel_requested: bool = False

    def __bool__(self) -> bool:
        return self.written


class LeasedWrites(StoreBase):
    """The worker's side of the job table."""

    # -- worker side: claim, heartbeat, finish ----------------------------------

    def claim(self, owner: str, process_token: str, lease_seconds: float) -> Optional[JobRecord]:
        """Atomically take the oldest runnable queued job, or return None."""
        with self._transaction(single=True) as cursor:
            return self._claim_in(cursor, owner, process_token, lease_seconds)

    def claim_job(self, job_id: str, owner: str, lease_seconds: float) -> Optional[JobRecord]:
        """Take the queued job ``job_id``; None if it is not queued (any more)."""
        with self._transaction(single=True) as cursor:
            row = self._run(cursor, "claim_one", id=job_id, queued=QUEUED,
                            **self._lease_params(owner, lease_seconds)).fetchone()
        return self._claimed(row)

    def _claim_in(self, cursor: Any, owner: str, process_token: str, lease_seconds: float) -> Optional[JobRecord]:
        row = self._run(cursor, "claim", queued=QUEUED, token=process_token,
                        **self._lease_params(owner, lease_seconds)).fetchone()
        return self._claimed(row, cursor)

    def _claimed(self, row: Any, cursor: Any = None) -> Optional[JobRecord]:
        """A claimed row (job columns, then whether it has messages) as a record with its earlier messages.

        Its messages from earlier attempts come along, so that the copy this
        process runs answers ``job_status`` with the whole log; a new job has
        none, and costs no read.
        """
        if row is None:
            return None
        record = record_from_row(row[:len(RECORD_COLUMNS)])
        if row[len(RECORD_COLUMNS)]:
            if cursor is None:
                with self._transaction(write=False, single=True) as own:
                    return self._claimed(row, own)
            record.messages = [message_from_row(ts, text) for ts, text in
                               self._run(cursor, "messages_of_one", id=record.id).fetchall()]
        return record

    def heartbeat(self, job_id: str, owner: str, lease_seconds: float, progress: int, total_steps: int,
                  messages: list[Message]) -> Heartbeat:
        """Write progress and new messages and renew the lease; learn whether the job should stop.

        False (``written``) when the lease was lost: nothing was written.
        """
        with self._transaction(single=not messages) as cursor:
            row = self._run(cursor, "heartbeat", id=job_id, progress=progress, total_steps=total_steps,
                            **self._lease_params(owner, lease_seconds)).fetchone()
            if row is not None:
                self._add_messages(cursor, job_id, messages)
        return Heartbeat(row is not None, row is not None and row[0] is not None)

    def finish(self, job_id: str, owner: str, *, status: JobStatus, progress: int, total_steps: int,
               result: Any, error: Optional[str], traceback: Optional[str],
               completed_at: datetime, messages: list[Message]) -> bool:
        """Write a final state and its job event together; False (and nothing written) if the lease was lost."""
        with self._transaction(single=not messages) as cursor:
            return self._finish_in(cursor, job_id, owner, status=status, progress=progress,
                                   total_steps=total_steps, result=result, error=error,
                                   traceback=traceback, completed_at=completed_at, messages=messages)

    def finish_and_claim(self, job_id: str, owner: str, token: str, lease_seconds: float,
                         **final: Any) -> tuple[bool, Optional[JobRecord]]:
        """Finish a job (with its event) and claim the next: one transaction on SQLite, one statement on PostgreSQL."""
        if self.is_postgresql:
            if final["messages"]:
                return self.finish(job_id, owner, **final), self.claim(owner, token, lease_seconds)
            with self._transaction(single=True) as cursor:
                row = self._run(cursor, "finish_and_claim", queued=QUEUED, token=token,
                                **self._final_params(job_id, final),
                                **self._lease_params(owner, lease_seconds)).fetchone()
            finished, claimed = row[0] == 1, row[1:]
            return finished, (self._claimed(claimed) if claimed[0] is not None else None)
        with self._transaction() as cursor:
            finished = self._finish_in(cursor, job_id, owner, **final)
            return finished, self._claim_in(cursor, owner, token, lease_seconds)

    def _final_params(self, job_id: str, final: dict[str, Any]) -> dict[str, Any]:
        return {"id": job_id, "status": JobStatus(final["status"]).value, "progress": final["progress"],
                "total_steps": final["total_steps"], "result_json": to_json(final["result"]),
                "error": _storable(final["error"]), "traceback": _storable(final["traceback"]),
                "completed_at": self._time(final["completed_at"])}

    def _finish_in(self, cursor: Any, job_id: str, owner: str, **final: Any) -> bool:
        """The final state and its job event (the outbox row), in the caller's transaction.

        PostgreSQL writes both in one statement; SQLite adds the event's
        insert to the same transaction, which costs no round trip there.
        """
        params = self._final_params(job_id, final)
        if self.is_postgresql:
            updated = self._run(cursor, "finish_recording_event", owner=owner, running=RUNNING, **params).rowcount
        else:
            updated = self._run(cursor, "finish", owner=owner, running=RUNNING, **params).rowcount
            if updated == 1:
                self._add_event(cursor, job_id, params["status"], final["completed_at"])
        if updated:
            self._add_messages(cursor, job_id, final["messages"])
        return updated == 1

    def retry_later(self, job_id: str, owner: str, retry_at: datetime, progress: int, total_steps: int,
                    messages: list[Message]) -> bool:
        """Put a failed job back in the queue for another attempt, due at ``retry_at``."""
        with self._transaction() as cursor:
            retried = self._run(cursor, "retry_later", id=job_id, owner=owner, running=RUNNING, queued=QUEUED,
                                retry_at=self._time(retry_at), progress=progress,
                                total_steps=total_steps).rowcount == 1
            if retried:
                self._add_messages(cursor, job_id, messages)
        return retried

    def give_back(self, job_id: str, owner: str, messages: Optional[list[Message]] = None) -> bool:
        """Return a job this worker will not finish (it is stopping) to the queue; its attempt is not counted.

        ``messages`` (those not yet written, and why it goes back) are kept.
        """
        with self._transaction(single=not messages) as cursor:
            returned = self._run(cursor, "give_back", queued=QUEUED, running=RUNNING, id=job_id,
                                 owner=owner).rowcount == 1
            if returned:
                self._add_messages(cursor, job_id, messages or [])
        return returned

