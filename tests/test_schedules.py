"""Cron schedules: each due time runs once across processes, one catch-up after a downtime, Berlin time."""

from __future__ import annotations

import multiprocessing
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from flask import Flask

from conftest import base_config
from job_queue import job_queue
from jobs.schedules import ScheduleError, latest_due, next_due, validate

BERLIN = ZoneInfo("Europe/Berlin")
EVERY_TEN_MINUTES = "*/10 * * * *"


def _tick_in_another_process(config: dict, at: datetime, barrier, answers) -> None:
    from app import create_app

    app = create_app(config)
    state = app.extensions["job_queue"]
    with app.app_context():
        barrier.wait(30)  # both processes look at the schedules at the same moment
        answers.put(state.schedules.run_due(state.submit, at))


def _tick_in_two_processes(config: dict, at: datetime) -> list[tuple[str, str]]:
    # Fresh interpreters, not forks of this multi-threaded test process: a fork copies any lock another
    # thread holds at that moment (stderr's, say), and the child then hangs on its first log line.
    context = multiprocessing.get_context("spawn")
    barrier, answers = context.Barrier(2), context.Queue()
    processes = [context.Process(target=_tick_in_another_process, args=(config, at, barrier, answers))
                 for _ in range(2)]
    for process in processes:
        process.start()
    for process in processes:
        process.join(60)
        assert process.exitcode == 0
    return [outcome for _ in processes for outcome in answers.get(timeout=5)]


def _example_runs(app: Flask) -> int:
    with app.app_context():
        job_queue.run_pending()  # the scheduled run ends before the next due time
        return sum(1 for job in job_queue.get_all_jobs() if job.name == "example")


def test_each_due_time_runs_once_across_two_processes_and_a_downtime_catches_up_once(
    make_app, database_url: str, tmp_path: Path
) -> None:
    app = make_app(DATABASE_URL=database_url)
    enabled_at = datetime(2026, 11, 29, 12, 3)  # the clock the test moves
    with app.app_context():
        app.extensions["job_queue"].schedules.update("example", EVERY_TEN_MINUTES, True, now=enabled_at)
    config = base_config(tmp_path, DATABASE_URL=database_url)

    for due in (datetime(2026, 11, 29, 12, 10), datetime(2026, 11, 29, 12, 20), datetime(2026, 11, 29, 12, 30)):
        outcomes = _tick_in_two_processes(config, due + timedelta(minutes=1))
        assert outcomes == [("example", "gestartet")], due  # one of the two, exactly once
        assert _tick_in_two_processes(config, due + timedelta(minutes=5)) == []  # and not again later
        _example_runs(app)  # the run ends before the next due time
    assert _example_runs(app) == 3

    # Down from 12:31 until 13:25: five due times (12:40 ... 13:20) missed, one catch-up run.
    assert _tick_in_two_processes(config, datetime(2026, 11, 29, 13, 25)) == [("example", "gestartet")]
    assert _example_runs(app) == 4


def test_a_schedule_skips_a_run_while_its_scraper_is_still_queued(make_app, database_url: str) -> None:
    app = make_app(DATABASE_URL=database_url)
    with app.app_context():
        state = app.extensions["job_queue"]
        state.schedules.update("example", EVERY_TEN_MINUTES, True, now=datetime(2026, 11, 29, 12, 3))
        job_queue.submit("example")  # started by hand, not finished yet
        assert state.schedules.run_due(state.submit, datetime(2026, 11, 29, 12, 11)) == \
            [("example", "übersprungen (läuft schon)")]
        assert sum(1 for job in job_queue.get_all_jobs() if job.name == "example") == 1


def test_expressions_are_read_in_berlin_time_across_daylight_saving() -> None:
    three_am = "0 3 * * *"
    # Winter (UTC+1): 03:00 in Berlin is 02:00 UTC; summer (UTC+2): 01:00 UTC.
    assert next_due(three_am, datetime(2026, 1, 10, 12, 0), BERLIN) == datetime(2026, 1, 11, 2, 0)
    assert next_due(three_am, datetime(2026, 7, 10, 12, 0), BERLIN) == datetime(2026, 7, 11, 1, 0)
    # The night the clocks go forward (29 March 2026): 03:00 still exists, an hour earlier in UTC.
    assert next_due(three_am, datetime(2026, 3, 28, 12, 0), BERLIN) == datetime(2026, 3, 29, 1, 0)
    assert latest_due(three_am, datetime(2026, 3, 29, 1, 30), BERLIN) == datetime(2026, 3, 29, 1, 0)
    # Daily runs stay at 03:00 local time on both sides of the change in autumn (25 October 2026).
    assert next_due(three_am, datetime(2026, 10, 24, 12, 0), BERLIN) == datetime(2026, 10, 25, 2, 0)


@pytest.mark.parametrize("expression", ["", "jeden Tag", "61 * * * *", "* * * *", "0 3 * * * *", "0 25 * * *"])
def test_bad_expressions_say_so_in_german(expression: str) -> None:
    with pytest.raises(ScheduleError, match="kein gültiger Cron-Ausdruck"):
        validate(expression)
