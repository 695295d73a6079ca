"""Start a web process and several ``flask worker`` processes at the same instant, again and again.

    python tests/start_race.py --database sqlite|postgresql [--iterations 20] [--workers 4]

The app is imported once; then for each round every process is forked and
held on one pipe until all exist, and released together: each runs the real
``flask`` command line (``flask --app app worker --until-empty`` and
``flask --app app run``) on a fresh database. Prints one JSON report: per
round and process, whether it came up, its exit status and its output.
PostgreSQL rounds use ``TEST_DATABASE_URL`` (emptied before each round).
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import sqlalchemy as sa  # noqa: E402
from flask.cli import main as flask_main  # noqa: E402

import app as _app_module  # noqa: E402,F401  (imported before the fork: every child starts warm)

WEB_UP_TIMEOUT = 60.0
PROCESS_TIMEOUT = 90.0


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _empty_postgresql(url: str) -> None:
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text("DROP SCHEMA public CASCADE"))
        conn.execute(sa.text("CREATE SCHEMA public"))
    engine.dispose()


def _child(start_pipe: int, output: Path, database_url: str, args: list[str]) -> None:
    """In the forked child: wait for the start, then be ``flask ARGS``; never return."""
    code = 1
    try:
        descriptor = os.open(output, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.dup2(descriptor, 1)
        os.dup2(descriptor, 2)
        os.read(start_pipe, 1)
        os.environ["DATABASE_URL"] = database_url
        os.environ["INSTANCE_PATH"] = str(output.parent / "instance")
        sys.argv = ["flask", "--app", "app", *args]
        flask_main()
        code = 0
    except SystemExit as exit_:
        code = exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else 1)
        if exit_.code is not None and not isinstance(exit_.code, int):
            print(exit_.code, file=sys.stderr)
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def _wait_for_web(port: int, child: dict) -> bool:
    deadline = time.monotonic() + WEB_UP_TIMEOUT
    while time.monotonic() < deadline:
        done, status = os.waitpid(child["pid"], os.WNOHANG)
        if done:  # it exited before serving
            child["exit"] = os.waitstatus_to_exitcode(status)
            return False
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as response:
                return response.status == 200
        except OSError:
            time.sleep(0.1)
    return False


def run_round(folder: Path, database_url: str, workers: int) -> list[dict]:
    port = _free_port()
    commands = [["worker", "--until-empty"] for _ in range(workers)]
    commands.append(["run", "--port", str(port), "--no-reload"])
    read_end, write_end = os.pipe()
    children = []
    for index, args in enumerate(commands):
        output = folder / f"process-{index}.log"
        pid = os.fork()
        if pid == 0:
            os.close(write_end)
            _child(read_end, output, database_url, args)
        children.append({"pid": pid, "args": args, "output": output})
    os.close(read_end)
    os.write(write_end, b"x" * len(children))  # all released at once
    os.close(write_end)

    web = children[-1]
    web["came_up"] = _wait_for_web(port, web)
    if web["came_up"]:
        os.kill(web["pid"], 15)
    deadline = time.monotonic() + PROCESS_TIMEOUT
    for child in children:
        while "exit" not in child:
            done, status = os.waitpid(child["pid"], os.WNOHANG)
            if done:
                child["exit"] = os.waitstatus_to_exitcode(status)
            elif time.monotonic() > deadline:
                os.kill(child["pid"], 9)
                os.waitpid(child["pid"], 0)
                child["exit"] = "killed after timeout"
            else:
                time.sleep(0.05)
        child["text"] = child.pop("output").read_text(errors="replace")
        if child["args"][0] == "worker":
            child["came_up"] = child["exit"] == 0 and "läuft mit" in child["text"]
    return children


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database", choices=["sqlite", "postgresql"], required=True)
    parser.add_argument("--iterations", type=int, default=20)
    parser.add_argument("--workers", type=int, default=4)
    args = parser.parse_args()
    os.environ.setdefault("SECRET_KEY", "start-race-only-secret-key-0123456789")
    os.environ["JOBS_POLL_INTERVAL"] = "0.2"
    rounds = []
    with tempfile.TemporaryDirectory() as scratch:
        for index in range(args.iterations):
            folder = Path(scratch) / f"round-{index}"
            folder.mkdir()
            if args.database == "sqlite":
                url = f"sqlite:///{folder / 'fresh.sqlite'}"
            else:
                url = os.environ["TEST_DATABASE_URL"]
                _empty_postgresql(url)
            rounds.append(run_round(folder, url, args.workers))
    json.dump(rounds, sys.stdout)


if __name__ == "__main__":
    main()
