"""Processes a benchmark or a test starts, with their output kept, and a check that none died.

A figure measured while one of two worker processes had died silently is a
figure of one worker; ``ProcessGroup.assert_alive()`` turns that into a loud
failure that shows the dead process's own output.
"""

from __future__ import annotations

import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence


class ProcessDied(RuntimeError):
    """A process that should still run has exited; the message carries its output."""


@dataclass
class Started:
    command: Sequence[str]
    process: subprocess.Popen
    log: Path
    expected_to_exit: bool = False

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


class ProcessGroup:
    """Start commands with their output in files; check, then stop them all."""

    def __init__(self, folder: Optional[Path] = None) -> None:
        self._scratch = None if folder is not None else tempfile.TemporaryDirectory()
        self.folder = folder if folder is not None else Path(self._scratch.name)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.started: list[Started] = []

    def start(self, command: Sequence[str], *, cwd: Path, env: dict[str, str],
              expected_to_exit: bool = False, own_group: bool = False) -> subprocess.Popen:
        """Start ``command``; ``expected_to_exit`` for one that ends by itself (``--until-empty``).

        ``own_group``: in a process group of its own, so a test can signal the group as a terminal would.
        """
        log = self.folder / f"process-{len(self.started)}.log"
        with log.open("w") as sink:
            process = subprocess.Popen(list(command), cwd=cwd, env=env, stdout=sink, stderr=subprocess.STDOUT,
                                       start_new_session=own_group)
        self.started.append(Started(command, process, log, expected_to_exit))
        return process

    def expect_exit(self, process: subprocess.Popen) -> None:
        """Mark a process the caller ends on purpose (a kill -9 test)."""
        for started in self.started:
            if started.process is process:
                started.expected_to_exit = True

    def alive(self) -> int:
        return sum(1 for started in self.started if started.process.poll() is None)

    def dead(self) -> list[Started]:
        """Processes that should be running but have exited."""
        return [s for s in self.started if not s.expected_to_exit and s.process.poll() is not None]

    def assert_alive(self) -> None:
        dead = self.dead()
        if dead:
            raise ProcessDied("\n\n".join(
                f"{' '.join(s.command)} exited with {s.process.returncode}; its output:\n{s.output()[-4000:]}"
                for s in dead))

    def output(self) -> str:
        return "".join(started.output() for started in self.started)

    def stop(self, timeout: float = 30.0) -> None:
        """Terminate what still runs (a warm stop), kill what does not stop in time."""
        for started in self.started:
            if started.process.poll() is None:
                started.process.terminate()
        for started in self.started:
            try:
                started.process.wait(timeout)
            except subprocess.TimeoutExpired:
                started.process.kill()
                started.process.wait(timeout)
        if self._scratch is not None:
            self._scratch.cleanup()
