"""The operator's commands: ``flask worker``, ``flask jobs …``, ``flask schedules …``, ``flask scrape NAME``.

Times are printed in the site's zone (``DISPLAY_TIMEZONE``), and say so.
"""

from __future__ import annotations

import signal
import sys
import threading
import uuid
from datetime import datetime, timezone
from typing import Optional
from zoneinfo import ZoneInfo

import click
from flask import Flask, current_app
from flask.cli import with_appcontext

from database import utcnow
from jobs.control import JobControl
from jobs.execution import execute
from jobs.identity import owner_name
from jobs.schema import JobRecord
from jobs.state import QueueState
from jobs.status import JobStatus

# How often the worker command looks whether it should exit: often with --until-empty.
UNTIL_EMPTY_CHECK_SECONDS = 0.5
IDLE_CHECK_SECONDS = 5.0
FOREGROUND_POLL_SECONDS = 0.2
BAR_WIDTH = 30


def _state() -> QueueState:
    return current_app.extensions["job_queue"]


def _when(moment: Optional[datetime]) -> str:
    if moment is None:
        return "–"
    zone = ZoneInfo(_zone())
    aware = moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)
    return aware.astimezone(zone).strftime("%d.%m.%Y %H:%M:%S")


def _zone() -> str:
    return current_app.config.get("DISPLAY_TIMEZONE") or current_app.config["SCHEDULE_TIMEZONE"]


@click.command("worker")
@click.option("--threads", type=int, default=None, help="worker threads (default JOBS_WORKER_THREADS)")
@click.option("--until-empty", is_flag=True, help="exit once no job is queued (batch runs, tests)")
@with_appcontext
def worker_command(threads: Optional[int], until_empty: bool) -> None:
    """Run jobs from the database until interrupted (or, with --until-empty, done)."""
    state = _state()
    for check in state.start_checks:
        check()
    state.worker.start(int(threads or state.config("JOBS_WORKER_THREADS")))
    if not until_empty:
        state.worker.warm_up()  # the first scrape should not wait for the fork server's start
    click.echo(f"Worker {state.token} läuft mit {len(state.worker.workers)} Thread(s).")
    stopped = threading.Event()
    # SIGTERM (systemd, docker stop, gunicorn-style supervisors): a warm stop.
    signal.signal(signal.SIGTERM, lambda _signum, _frame: stopped.set())
    check_every = UNTIL_EMPTY_CHECK_SECONDS if until_empty else IDLE_CHECK_SECONDS
    try:
        while not stopped.wait(check_every):
            if until_empty and not state.running and state.store.count(JobStatus.QUEUED) == 0 \
                    and state.store.count(JobStatus.RUNNING) == 0:
                break
    except KeyboardInterrupt:
        pass
    grace = float(state.config("JOBS_STOP_GRACE"))
    if state.running:
        click.echo(f"Beende nach den laufenden Jobs (höchstens {grace:g} s)...")
    state.worker.warm_stop(grace)


def _jobs_group(queue: JobControl) -> click.Group:
    @click.group("jobs")
    def jobs() -> None:
        """Look at jobs, cancel them, run them again, clear old ones."""

    @jobs.command("list")
    @click.option("--status", type=click.Choice([status.value for status in JobStatus]), default=None)
    @click.option("--limit", type=click.IntRange(1, 1000), default=20, show_default=True)
    @with_appcontext
    def list_jobs(status: Optional[str], limit: int) -> None:
        """The newest jobs, newest first."""
        click.echo(f"Zeiten in {_zone()}")
        shown = 0
        for job in queue.get_all_jobs(limit=None if status else limit):
            if status and job.status.value != status:
                continue
            click.echo(f"{job.id}  {job.status.value:<9}  {job.get_progress_percent():>3} %  "
                       f"{_when(job.created_at)}  {job.name}")
            shown += 1
            if shown >= limit:
                break

    @jobs.command("show")
    @click.argument("job_id")
    @with_appcontext
    def show(job_id: str) -> None:
        """One job's fields and its whole message log."""
        job = queue.get_job(job_id)
        if job is None:
            raise click.ClickException(f"Job {job_id} nicht gefunden")
        click.echo(f"Zeiten in {_zone()}")
        for label, value in [("Job", job.id), ("Name", job.name), ("Status", job.status.value),
                             ("Fortschritt", f"{job.get_progress_percent()} %"),
                             ("Versuch", f"{job.attempts} von {job.max_attempts}"),
                             ("Erstellt", _when(job.created_at)), ("Gestartet", _when(job.started_at)),
                             ("Beendet", _when(job.completed_at)), ("Nächster Versuch", _when(job.retry_at)),
                             ("Ergebnis", job.result), ("Fehler", job.error)]:
            click.echo(f"{label + ':':<18}{'' if value is None else value}")
        for entry in job.messages:
            click.echo(f"  {_when(datetime.fromisoformat(entry['timestamp']))}  {entry['message']}")

    @jobs.command("cancel")
    @click.argument("job_id")
    @with_appcontext
    def cancel(job_id: str) -> None:
        """Cancel a queued job at once, a running one at its next step."""
        before = queue.cancel(job_id)
        if before is None:
            raise click.ClickException(f"Job {job_id} nicht gefunden")
        if before.is_final:
            raise click.ClickException(f"Job {job_id} ist bereits beendet ({before.value})")
        click.echo(f"Job {job_id} abgebrochen." if before is JobStatus.QUEUED
                   else f"Job {job_id} wird beim nächsten Schritt abgebrochen.")

    @jobs.command("retry")
    @click.argument("job_id")
    @with_appcontext
    def retry(job_id: str) -> None:
        """Run a failed or cancelled job again, as a new job."""
        try:
            submission = queue.retry(job_id)
        except (LookupError, ValueError) as error:
            raise click.ClickException(str(error)) from error
        note = " (lief bereits)" if submission.existing else ""
        click.echo(f"{submission.job_id}{note}")

    @jobs.command("clear-old")
    @click.option("--hours", type=click.FloatRange(min=1, max=24 * 365 * 10), default=24.0, show_default=True)
    @with_appcontext
    def clear_old(hours: float) -> None:
        """Delete finished jobs older than HOURS."""
        click.echo(f"{queue.clear_old_jobs(max_age_hours=hours)} alte Jobs gelöscht.")

    return jobs


def _schedules_group() -> click.Group:
    @click.group("schedules")
    def schedules() -> None:
        """The scrapers' cron schedules."""

    @schedules.command("list")
    @with_appcontext
    def list_schedules() -> None:
        """Each schedule with its next run."""
        click.echo(f"Zeiten in {_zone()}")
        for schedule in _state().schedules.list():
            state = "aktiv" if schedule.enabled else "aus"
            click.echo(f"{schedule.kind:<16} {schedule.expression:<18} {state:<6} nächster Lauf: "
                       f"{_when(schedule.next_run) if schedule.enabled else '–'}")

    @schedules.command("run-due")
    @click.option("--at", "at", default=None, help="as if it were this time (ISO 8601; naive means UTC)")
    @with_appcontext
    def run_due(at: Optional[str]) -> None:
        """Enqueue the schedules due now (every process that runs jobs does this by itself)."""
        now = utcnow() if at is None else _parse_utc(at)
        for kind, outcome in _state().schedules.run_due(_state().submit, now):
            click.echo(f"{kind}: {outcome}")

    return schedules


def _parse_utc(text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError as error:
        raise click.BadParameter(f"keine Zeit im Format ISO 8601: {text!r}") from error
    return moment.astimezone(timezone.utc).replace(tzinfo=None) if moment.tzinfo else moment


def _scrape_command(queue: JobControl) -> click.Command:
    @click.command("scrape")
    @click.argument("name")
    @with_appcontext
    def scrape(name: str) -> None:
        """Run one scraper in the foreground, with its progress and messages; Ctrl-C cancels it."""
        try:
            queue.kind(name)
        except LookupError as error:
            names = ", ".join(kind.name for kind in queue.kinds())
            raise click.ClickException(f"{error}; bekannt: {names}") from error
        submission = queue.submit(name, pinned=True, attempts=1)  # in the foreground: no retry later
        if submission.existing:
            raise click.ClickException(f"{name} läuft bereits (Job {submission.job_id})")
        sys.exit(_run_in_foreground(queue, submission.job_id))

    return scrape


def _run_in_foreground(queue: JobControl, job_id: str) -> int:
    """Run the queued job here, drawing its progress; return the exit code (0 completed, 1 otherwise)."""
    state = _state()
    owner = owner_name(state.token, f"cli-{uuid.uuid4().hex[:4]}")
    record = state.store.claim_job(job_id, owner, state.config("JOBS_LEASE_SECONDS"))
    if record is None:
        raise click.ClickException(f"Job {job_id} ließ sich nicht starten")
    state.worker.start(0)  # the housekeeper: heartbeats, flushes, time limit
    done = threading.Event()  # not Thread.join: a join cut short by Ctrl-C may return early later

    def run() -> None:
        try:
            execute(state, record, owner, state.worker.shutdown)
        finally:
            done.set()

    threading.Thread(target=run, name="foreground-job", daemon=True).start()
    shown = _Shown()
    try:
        while not done.wait(FOREGROUND_POLL_SECONDS):
            shown.draw(state.load_record(job_id))
    except KeyboardInterrupt:
        click.echo("Abbruch angefordert …")
        queue.cancel(job_id)
        done.wait()
    shown.draw(state.load_record(job_id))
    state.worker.warm_stop(0)
    final = state.store.get(job_id)
    status = final.status if final is not None else JobStatus.FAILED
    click.echo(f"Ergebnis: {status.value.upper()}" + (f" – {final.error}" if final and final.error else ""))
    return 0 if status is JobStatus.COMPLETED else 1


class _Shown:
    """What the terminal already shows of a job: print only new messages and a changed bar."""

    def __init__(self) -> None:
        self.messages, self.bar = 0, ""

    def draw(self, record: JobRecord) -> None:
        for moment, text in record.messages[self.messages:]:
            click.echo(f"{_when(moment)}  {text}")
        self.messages = len(record.messages)
        bar = _bar(record.percent)
        if bar != self.bar:
            click.echo(bar)
            self.bar = bar


def _bar(percent: int) -> str:
    filled = BAR_WIDTH * percent // 100
    return f"[{'#' * filled}{'-' * (BAR_WIDTH - filled)}] {percent:>3} %"


def init_cli(app: Flask, queue: JobControl) -> None:
    for command in (worker_command, _jobs_group(queue), _schedules_group(), _scrape_command(queue)):
        app.cli.add_command(command)
