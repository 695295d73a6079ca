"""A serving process keeps its own heavy requests from stalling its other threads: frozen start-up objects, a short switch interval.

Each case starts the app in a fresh interpreter as a server would (not as a
test app: these settings are process-wide), then reports what it set and how
long one full garbage collection holds every thread up.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

SERVER_START = """
import gc, json, sys, time
from app import create_app
create_app(json.loads(sys.argv[1]), serving=True)
started = time.perf_counter()
gc.collect()
pause = time.perf_counter() - started
print("RESULT " + json.dumps({"frozen": gc.get_freeze_count(), "tracked": len(gc.get_objects()),
                              "interval": sys.getswitchinterval(), "pause": pause}))
"""


def _start_server_process(tmp_path: Path, **config: object) -> dict:
    config = {"JOBS_RUN_IN_WEB": False, **config}
    env = dict(os.environ, DATABASE_URL=f"sqlite:///{tmp_path / 'app.sqlite'}",
               SECRET_KEY="test-only-secret-key-0123456789abcdef", INSTANCE_PATH=str(tmp_path / "instance"))
    done = subprocess.run([sys.executable, "-c", SERVER_START, json.dumps(config)], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    [line] = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    return json.loads(line.removeprefix("RESULT "))


def test_a_server_keeps_its_start_up_objects_out_of_full_collections_and_switches_threads_often(
        tmp_path: Path) -> None:
    served = _start_server_process(tmp_path / "tuned")
    plain = _start_server_process(tmp_path / "plain", SERVER_FREEZE_STARTUP_OBJECTS=False, SERVER_SWITCH_INTERVAL=0)
    print(f"full collection after start-up: {served['pause'] * 1000:.1f} ms frozen, "
          f"{plain['pause'] * 1000:.1f} ms not ({plain['tracked']} objects)")  # figures for the note (pytest -s)
    assert served["frozen"] > 50_000 and served["frozen"] > 10 * served["tracked"]
    assert served["interval"] == 0.001
    assert plain["frozen"] == 0 and plain["interval"] == 0.005
    # What the web threads feel: a full collection stalls them a small fraction as long.
    assert served["pause"] < plain["pause"] / 4
