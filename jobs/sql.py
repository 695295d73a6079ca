"""Every statement the job store runs, built once from the tables and compiled per database.

The statements are SQLAlchemy expressions over ``jobs.schema``, so each is
written once for both databases: the claim's ``FOR UPDATE SKIP LOCKED`` is
the PostgreSQL compiler's rendering of ``with_for_update(skip_locked=True)``,
which the SQLite compiler leaves out (there, ``BEGIN IMMEDIATE`` serialises
claims). The store runs the compiled text on DB-API cursors: SQLAlchemy's
statement layer would cost several times the database's own work per job.
Values always travel as named parameters.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from jobs.schema import daily_stats_table, job_event_table, job_table, message_table

NOTIFY_CHANNEL = "job_queue"

job, message, daily, event = job_table.c, message_table.c, daily_stats_table.c, job_event_table.c
_param = sa.bindparam


def _has_messages() -> sa.ColumnElement[bool]:
    """Whether a claimed job has messages already (an earlier attempt's): only then are they read."""
    return sa.exists().where(message.job_id == job.id).label("has_messages")


def _claim_one() -> sa.Update:
    """Take one particular queued job (``flask scrape`` runs the job it just queued, itself)."""
    return (
        job_table.update()
        .where(job.id == _param("id"), job.status == _param("queued"))
        .values(status=_param("running"), owner=_param("owner"), lease_until=_param("lease_until"),
                attempts=job.attempts + 1, started_at=_param("now"), retry_at=sa.null())
        .returning(*job_table.columns, _has_messages())
    )


def _claim_next() -> sa.Update:
    """Take the oldest queued job this process may run: record the owner, a lease, one more attempt."""
    oldest = (
        sa.select(job.seq)
        .where(job.status == _param("queued"),
               sa.or_(job.pinned_to.is_(None), job.pinned_to == _param("token")),
               sa.or_(job.retry_at.is_(None), job.retry_at <= _param("now")))
        .order_by(job.seq)
        .limit(sa.literal_column("1"))  # a literal, so a prepared plan knows it takes one row
        .with_for_update(skip_locked=True)
        .scalar_subquery()
    )
    return (
        job_table.update()
        .where(job.seq == oldest)
        .values(status=_param("running"), owner=_param("owner"), lease_until=_param("lease_until"),
                attempts=job.attempts + 1, started_at=_param("now"), retry_at=sa.null())
        .returning(*job_table.columns, _has_messages())
    )


def _owned_by_worker() -> sa.ColumnElement[bool]:
    """Every write of a running job names its owner: a worker whose lease was taken over writes nothing."""
    return sa.and_(job.id == _param("id"), job.owner == _param("owner"), job.status == _param("running"))


def _finish() -> sa.Update:
    return (
        job_table.update()
        .where(_owned_by_worker())
        .values(status=_param("status"), progress=_param("progress"), total_steps=_param("total_steps"),
                result_json=_param("result_json"), error=_param("error"), traceback=_param("traceback"),
                completed_at=_param("completed_at"), owner=sa.null(), lease_until=sa.null())
    )


def _finished_before_cutoff() -> sa.ColumnElement[bool]:
    return sa.and_(job.status.in_([_param("completed"), _param("failed"), _param("cancelled")]),
                   job.completed_at < _param("cutoff"))


def _oldest_finished(column: sa.ColumnElement) -> sa.Select:
    return sa.select(column).where(_finished_before_cutoff()).order_by(job.seq).limit(_param("batch"))


def _optional(name: str, type_: sa.types.TypeEngine, column: sa.ColumnElement, compare: str) -> sa.ColumnElement:
    """``:name IS NULL OR column <compare> :name``: a filter that a NULL parameter switches off."""
    value = _param(name, type_=type_)
    return sa.or_(value.is_(None), column.operate(getattr(sa.sql.operators, compare), value))


def _history_filter() -> sa.ColumnElement[bool]:
    """The filters of the job history and of GET /admin/jobs; every one optional."""
    before = sa.select(job.seq).where(job.id == _param("before", type_=sa.String)).scalar_subquery()
    return sa.and_(
        _optional("name", sa.String(), job.name, "eq"),
        _optional("status", sa.String(), job.status, "eq"),
        _optional("since", sa.DateTime(), job.created_at, "ge"),
        _optional("until", sa.DateTime(), job.created_at, "lt"),
        sa.or_(_param("before", type_=sa.String).is_(None), job.seq < before),
    )


def _filtered_ids() -> sa.Select:
    return sa.select(job.id).where(_history_filter()).order_by(job.seq.desc()).limit(_param("limit"))


def _insert() -> sa.Insert:
    return job_table.insert().inline().values(
        id=_param("id"), name=_param("name"), func_path=_param("func_path"), args_json=_param("args_json"),
        pinned_to=_param("pinned_to"), status=_param("queued"), progress=0, total_steps=100,
        created_at=_param("created_at"), attempts=0, max_attempts=_param("max_attempts"),
        unique_key=_param("unique_key"), time_limit=_param("time_limit"), isolation=_param("isolation"),
    )


def _insert_and_notify() -> sa.Select:
    """PostgreSQL, one round trip: insert, and wake listening workers on commit if no other job waits.

    While jobs wait, every worker is busy and claims its next job as it
    finishes one; a NOTIFY per job to every listening process would cost more
    than the job. The statement's snapshot does not see its own new row.
    """
    new_job = _insert().returning(job.id).cte("new_job")
    others_waiting = sa.exists().where(job.status == _param("queued"), job.pinned_to.is_(None))
    return sa.select(sa.func.pg_notify(_param("channel"), new_job.c.id)).where(~others_waiting)


def _finished() -> sa.CTE:
    """The final write as a CTE that returns what its job event records."""
    return _finish().returning(job.id, job.status, job.completed_at).cte("done")


def _event_of(done: sa.CTE) -> sa.Insert:
    """The outbox row of a final write, from that write's RETURNING: no row when the lease was lost."""
    return job_event_table.insert().from_select(
        ["job_id", "status", "occurred_at"], sa.select(done.c.id, done.c.status, done.c.completed_at))


def _finish_recording_event() -> sa.Insert:
    """PostgreSQL, one round trip: the final state and its job event, atomically (rowcount 1: finished)."""
    done = _finished()
    return _event_of(done).add_cte(done)


def _finish_and_claim() -> sa.Select:
    """PostgreSQL, one round trip for a worker's whole turn: finish a job (with its event), claim the next."""
    done = _finished()
    recorded = _event_of(done).cte("recorded")  # a data-modifying CTE runs whether or not it is read
    following = _claim_next().cte("following")
    one = sa.select(sa.literal(1).label("one")).subquery("one")
    finished = sa.select(sa.func.count()).select_from(done).scalar_subquery()
    return sa.select(finished, *following.c).select_from(one.outerjoin(following, sa.true())).add_cte(recorded)


def _statements() -> dict[str, sa.Executable]:
    return {
        "insert": _insert(),
        "insert_and_notify": _insert_and_notify(),
        "claim": _claim_next(),
        "claim_one": _claim_one(),
        "finish": _finish(),
        "finish_and_claim": _finish_and_claim(),
        "finish_recording_event": _finish_recording_event(),
        # The outbox: a final state's event (beside the state's own write), read and removed by a consumer.
        "insert_event": job_event_table.insert().inline().values(
            job_id=_param("id"), status=_param("status"), occurred_at=_param("occurred_at")),
        "pending_events": sa.select(event.id, event.job_id, event.status, event.occurred_at)
        .order_by(event.id).limit(_param("limit")),
        "forget_event": job_event_table.delete().where(event.id == _param("event_id")),
        # Returns whether someone asked the job to stop: the worker learns it with its heartbeat.
        "heartbeat": job_table.update().where(_owned_by_worker()).values(
            progress=_param("progress"), total_steps=_param("total_steps"), lease_until=_param("lease_until"))
        .returning(job.cancel_requested_at),
        "retry_later": job_table.update().where(_owned_by_worker()).values(
            status=_param("queued"), owner=sa.null(), lease_until=sa.null(), retry_at=_param("retry_at"),
            progress=_param("progress"), total_steps=_param("total_steps"), cancel_requested_at=sa.null()),
        "cancel_queued": job_table.update()
        .where(job.id == _param("id"), job.status == _param("queued"))
        .values(status=_param("cancelled"), completed_at=_param("now"), retry_at=sa.null()),
        "request_cancel": job_table.update()
        .where(job.id == _param("id"), job.status == _param("running"))
        .values(cancel_requested_at=_param("now")),
        "active_with_key": sa.select(job.id, job.status)
        .where(job.unique_key == _param("unique_key"), job.status.in_([_param("queued"), _param("running")])),
        "give_back": job_table.update().where(_owned_by_worker()).values(
            status=_param("queued"), owner=sa.null(), lease_until=sa.null(), attempts=job.attempts - 1),
        # This process's own jobs are left out: it knows they live (a long outage ends their leases).
        "expired": sa.select(job.id, job.attempts, job.max_attempts)
        .where(job.status == _param("running"), job.lease_until < _param("now"),
               sa.not_(job.owner.like(_param("own_prefix"))))
        .with_for_update(skip_locked=True),
        "running_on_host": sa.select(job.id, job.attempts, job.max_attempts, job.owner)
        .where(job.status == _param("running"), job.owner.like(_param("host_prefix")))
        .with_for_update(skip_locked=True),
        "requeue_lost": job_table.update().where(job.id == _param("id")).values(
            status=_param("queued"), owner=sa.null(), lease_until=sa.null()),
        "fail_lost": job_table.update().where(job.id == _param("id")).values(
            status=_param("failed"), owner=sa.null(), lease_until=sa.null(), completed_at=_param("now"),
            error=_param("error")),
        # One statement for a job and its messages: a poll of job_status is one query.
        "select_one": sa.select(*job_table.columns, message.timestamp, message.message)
        .select_from(job_table.outerjoin(message_table, message.job_id == job.id))
        .where(job.id == _param("id"))
        .order_by(message.seq),
        "select_newest": sa.select(*job_table.columns).order_by(job.seq.desc()).limit(_param("limit")),
        "messages_of_newest": sa.select(message.job_id, message.timestamp, message.message)
        .where(message.job_id.in_(sa.select(job.id).order_by(job.seq.desc()).limit(_param("limit"))))
        .order_by(message.seq),
        "select_status": sa.select(job.status).where(job.id == _param("id")),
        "messages_of_one": sa.select(message.timestamp, message.message)
        .where(message.job_id == _param("id")).order_by(message.seq),
        "select_filtered": sa.select(*job_table.columns).where(_history_filter())
        .order_by(job.seq.desc()).limit(_param("limit")),
        "messages_of_filtered": sa.select(message.job_id, message.timestamp, message.message)
        .where(message.job_id.in_(_filtered_ids())).order_by(message.seq),
        # Statistics: finished runs since a moment, and the days already folded up.
        "finished_since": sa.select(job.name, job.status, job.started_at, job.completed_at, job.result_json)
        .where(job.status.in_([_param("completed"), _param("failed"), _param("cancelled")]),
               job.completed_at >= _param("since")),
        "daily_since": sa.select(*daily_stats_table.columns).where(daily.day >= _param("since_day")),
        "daily_one": sa.select(*daily_stats_table.columns)
        .where(daily.day == _param("day"), daily.name == _param("name")),
        "daily_insert": daily_stats_table.insert().inline().values(
            day=_param("day"), name=_param("name"), completed=_param("completed"), failed=_param("failed"),
            cancelled=_param("cancelled"), durations_json=_param("durations_json"),
            totals_json=_param("totals_json"), last_success_at=_param("last_success_at")),
        "daily_update": daily_stats_table.update()
        .where(daily.day == _param("day"), daily.name == _param("name")).values(
            completed=_param("completed"), failed=_param("failed"), cancelled=_param("cancelled"),
            durations_json=_param("durations_json"), totals_json=_param("totals_json"),
            last_success_at=_param("last_success_at")),
        "old_finished_batch": sa.select(job.name, job.status, job.started_at, job.completed_at, job.result_json)
        .where(job.seq.in_(_oldest_finished(job.seq))),
        "count_status": sa.select(sa.func.count()).select_from(job_table).where(job.status == _param("status")),
        "insert_message": message_table.insert().inline().values(
            job_id=_param("job_id"), timestamp=_param("timestamp"), message=_param("message")),
        # One batch of the oldest finished jobs: both statements pick the same rows in one transaction.
        "delete_old_messages": message_table.delete().where(message.job_id.in_(_oldest_finished(job.id))),
        "delete_old_events": job_event_table.delete().where(event.job_id.in_(_oldest_finished(job.id))),
        "delete_old_jobs": job_table.delete().where(job.seq.in_(_oldest_finished(job.seq))),
    }


@dataclass(frozen=True)
class CompiledStatement:
    """A statement's text for one database, with the values it fixes itself (such as LIMIT 1)."""

    text: str
    defaults: dict[str, Any]

    def params(self, values: dict[str, Any]) -> dict[str, Any]:
        return {**self.defaults, **values}


# Statements only PostgreSQL can run: data-modifying CTEs, NOTIFY.
POSTGRESQL_ONLY = frozenset({"insert_and_notify", "finish_and_claim", "finish_recording_event"})

_DIALECTS = {
    "sqlite": lambda: sqlite.dialect(paramstyle="named"),
    "postgresql": lambda: postgresql.psycopg.dialect(),
}


@lru_cache(maxsize=None)
def compiled_statements(dialect_name: str) -> dict[str, CompiledStatement]:
    """Compile every statement for ``dialect_name`` ("sqlite" or "postgresql"), once per process."""
    dialect = _DIALECTS[dialect_name]()
    compiled = {}
    for name, statement in _statements().items():
        if name in POSTGRESQL_ONLY and dialect_name != "postgresql":
            continue
        unit = statement.compile(dialect=dialect)
        defaults = {key: value for key, value in unit.params.items() if value is not None}
        compiled[name] = CompiledStatement(str(unit), defaults)
    return compiled
