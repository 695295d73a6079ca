"""``flask worker``: a process that only runs jobs (several may run on several machines)."""

from __future__ import annotations

import signal
import threading
from typing import Optional

import click
from flask import current_app
from flask.cli import with_appcontext

from jobs.execution import QueueState
from jobs.status import JobStatus
from jobs.worker import start_threads, warm_stop

# How often the command looks whether it should exit: often with --until-empty.
UNTIL_EMPTY_CHECK_SECONDS = 0.5
IDLE_CHECK_SECONDS = 5.0


def _nothing_left(state: QueueState) -> bool:
    return (not state.running and state.store.count(JobStatus.QUEUED) == 0
            and state.store.count(JobStatus.RUNNING) == 0)


@click.command("worker")
@click.option("--threads", type=int, default=None, help="worker threads (default JOBS_WORKER_THREADS)")
@click.option("--until-empty", is_flag=True, help="exit once no job is queued (batch runs, tests)")
@with_appcontext
def worker_command(threads: Optional[int], until_empty: bool) -> None:
    """Run jobs from the database until interrupted (or, with --until-empty, done)."""
    state: QueueState = current_app.extensions["job_queue"]
    for check in state.start_checks:
        check()
    start_threads(state, int(threads or state.config("JOBS_WORKER_THREADS")))
    click.echo(f"Worker {state.token} läuft mit {len(state.workers)} Thread(s).")
    stopped = threading.Event()
    # SIGTERM (systemd, docker stop, gunicorn-style supervisors): a warm stop.
    signal.signal(signal.SIGTERM, lambda _signum, _frame: stopped.set())
    check_every = UNTIL_EMPTY_CHECK_SECONDS if until_empty else IDLE_CHECK_SECONDS
    try:
        while not stopped.wait(check_every):
            if until_empty and _nothing_left(state):
                break
    except KeyboardInterrupt:
        pass
    grace = float(state.config("JOBS_STOP_GRACE"))
    if state.running:
        click.echo(f"Beende nach den laufenden Jobs (höchstens {grace:g} s)...")
    warm_stop(state, grace)
