"""Benchmarks and multi-process tests notice a process that died, and show its output."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

import queue_throughput  # bench/ is on the path (conftest)
from jobs_for_bench import crash_worker
from processes import ProcessDied, ProcessGroup


def test_a_dead_process_is_reported_with_its_output(tmp_path: Path) -> None:
    group = ProcessGroup(tmp_path)
    group.start([sys.executable, "-c", "print('bis hierhin'); raise SystemExit(7)"], cwd=tmp_path, env={})
    group.start([sys.executable, "-c", "import time; time.sleep(30)"], cwd=tmp_path, env={})
    group.started[0].process.wait(10)
    assert group.alive() == 1
    with pytest.raises(ProcessDied, match=r"exited with 7(.|\n)*bis hierhin"):
        group.assert_alive()
    group.stop()


def test_the_throughput_bench_fails_when_a_worker_dies(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(queue_throughput, "noop", crash_worker)  # every job now kills its worker
    url = f"sqlite:///{tmp_path / 'bench.sqlite'}"
    queue_throughput.fresh_database(url)
    with pytest.raises(ProcessDied, match="exited with 3"):
        queue_throughput.other_processes("SQLite, 2 processes", url, 2, jobs=5, pickups=1, repeat=1)
