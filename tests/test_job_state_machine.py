"""A Hypothesis state machine over the job store: its invariants hold in every sequence."""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass
from datetime import timedelta
from typing import Optional

from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, invariant, precondition, rule

from database import create_missing_tables
from database import utcnow as utcnow_naive
from jobs.connections import make_engine
from jobs.schema import JobRecord, metadata
from jobs.status import JobStatus
from jobs.store import JobStore

QUEUED, RUNNING, COMPLETED, FAILED = JobStatus.QUEUED, JobStatus.RUNNING, JobStatus.COMPLETED, JobStatus.FAILED


@dataclass
class Expected:
    status: str
    max_attempts: int
    attempts: int = 0
    owner: Optional[str] = None
    lease_expired: bool = False


class JobQueueMachine(RuleBasedStateMachine):
    """Enqueue, claim, progress, complete, fail, crash, sweep and clear in any order."""

    jobs = Bundle("jobs")

    def __init__(self) -> None:
        super().__init__()
        self.folder = tempfile.mkdtemp()
        self.engine = make_engine(f"sqlite:///{self.folder}/machine.sqlite")
        create_missing_tables(self.engine, metadata)
        self.store = JobStore(self.engine)
        self.expected: dict[str, Expected] = {}
        self.order: list[str] = []  # enqueue order: the claim order
        self.dead: set[str] = set()  # owners that crashed
        self.generation = 0

    def teardown(self) -> None:
        self.engine.dispose()
        shutil.rmtree(self.folder, ignore_errors=True)

    def _owner(self, worker: str) -> str:
        return f"{worker}-{self.generation}"

    def _running(self, job_id: str) -> Optional[Expected]:
        job = self.expected.get(job_id)
        if job and job.status == RUNNING and job.owner not in self.dead:
            return job
        return None

    @rule(target=jobs, max_attempts=st.integers(min_value=1, max_value=3))
    def enqueue(self, max_attempts: int) -> str:
        record = JobRecord(id=f"job-{len(self.order)}", name="noop", status=QUEUED,
                           created_at=utcnow_naive(), func_path="jobs:noop", args_json="[[], {}]",
                           max_attempts=max_attempts)
        self.store.insert(record)
        self.expected[record.id] = Expected(QUEUED, max_attempts)
        self.order.append(record.id)
        return record.id

    @rule(worker=st.sampled_from(["w1", "w2", "w3"]))
    def claim(self, worker: str) -> None:
        owner = self._owner(worker)
        if owner in self.dead:
            return
        record = self.store.claim(owner, "token", lease_seconds=600)
        waiting = [job_id for job_id in self.order if self.expected.get(job_id, Expected("", 0)).status == QUEUED]
        if not waiting:
            assert record is None
            return
        assert record is not None and record.id == waiting[0]  # FIFO
        job = self.expected[record.id]
        job.status, job.owner, job.attempts, job.lease_expired = RUNNING, owner, job.attempts + 1, False
        assert record.attempts == job.attempts

    @rule(job_id=jobs, progress=st.integers(min_value=0, max_value=10))
    def progress(self, job_id: str, progress: int) -> None:
        job = self._running(job_id)
        if job is None:
            return
        assert self.store.heartbeat(job_id, job.owner, 600, progress, 10, [(utcnow_naive(), "weiter")])
        job.lease_expired = False

    @rule(job_id=jobs, outcome=st.sampled_from([COMPLETED, FAILED]))
    def finish(self, job_id: str, outcome: str) -> None:
        job = self._running(job_id)
        if job is None:
            return
        assert self.store.finish(job_id, job.owner, status=outcome, progress=10, total_steps=10,
                                 result=None, error=None if outcome == COMPLETED else "boom",
                                 traceback=None, completed_at=utcnow_naive(), messages=[])
        job.status, job.owner = outcome, None

    @rule(job_id=jobs)
    def crash(self, job_id: str) -> None:
        """The worker running this job dies: it writes nothing more, its lease runs out."""
        job = self._running(job_id)
        if job is None:
            return
        self.dead.add(job.owner)
        self.store.update_fields(job_id, {"lease_until": utcnow_naive() - timedelta(seconds=1)})
        job.lease_expired = True
        self.generation += 1  # the dead worker's replacement gets a new identity

    @rule()
    def sweep(self) -> None:
        requeued, failed = self.store.sweep()
        want_requeued = want_failed = 0
        for job in self.expected.values():
            if job.status == RUNNING and job.lease_expired:
                if job.attempts < job.max_attempts:
                    job.status, job.owner = QUEUED, None
                    want_requeued += 1
                else:
                    job.status, job.owner = FAILED, None
                    want_failed += 1
                job.lease_expired = False
        assert (requeued, failed) == (want_requeued, want_failed)

    @precondition(lambda self: self.dead)
    @rule(job_id=jobs, data=st.data())
    def late_write(self, job_id: str, data) -> None:
        """A dead worker comes back after its job was taken over: nothing it writes lands."""
        job = self.expected.get(job_id)
        owner = data.draw(st.sampled_from(sorted(self.dead)))
        if job is None or (job.status == RUNNING and job.owner == owner):
            return  # not taken over yet
        before = self.store.get(job_id)
        event("late write after takeover")
        assert not self.store.heartbeat(job_id, owner, 600, 7, 10, [(utcnow_naive(), "zu spät")])
        assert not self.store.finish(job_id, owner, status=COMPLETED, progress=10, total_steps=10,
                                     result="zu spät", error=None, traceback=None,
                                     completed_at=utcnow_naive(), messages=[])
        assert self.store.get(job_id) == before

    @rule(hours=st.sampled_from([0, -1]))
    def clear(self, hours: int) -> None:
        # a cut-off in the future (-1 hour of age) covers every finished job
        removed = self.store.delete_finished_before(utcnow_naive() - timedelta(hours=hours))
        finished = [job_id for job_id, job in self.expected.items() if job.status in (COMPLETED, FAILED)]
        if hours == -1:
            assert removed == len(finished)
            for job_id in finished:
                del self.expected[job_id]
        else:
            remaining = {record.id for record in self.store.newest()}
            for job_id in finished:
                if job_id not in remaining:
                    del self.expected[job_id]

    @invariant()
    def database_agrees_with_the_model(self) -> None:
        records = {record.id: record for record in self.store.newest()}
        assert set(records) == set(self.expected)  # clearing never lost a queued or running job
        for job_id, record in records.items():
            job = self.expected[job_id]
            assert record.status in (QUEUED, RUNNING, COMPLETED, FAILED)
            assert record.status == job.status
            if record.status == RUNNING:
                assert record.owner == job.owner and record.lease_until is not None
                if not job.lease_expired:
                    assert record.lease_until > utcnow_naive()  # a live lease
            else:
                assert record.owner is None and record.lease_until is None
            if record.status in (COMPLETED, FAILED):
                assert record.completed_at is not None


JobQueueMachine.TestCase.settings = settings(
    max_examples=100, stateful_step_count=30, deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
test_job_queue_state_machine = JobQueueMachine.TestCase
