"""Only processes that serve start threads: a script's create_app() gets an app and nothing running."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
THREADS = ("import json, threading; "
           "print(json.dumps(sorted(t.name for t in threading.enumerate() if t is not threading.main_thread())))")


def _threads_after(factory_call: str, tmp_path: Path) -> list[str]:
    env = dict(os.environ, DATABASE_URL=f"sqlite:///{tmp_path / 'app.sqlite'}",
               SECRET_KEY="entry-points-test-secret-0123456789abcdef", INSTANCE_PATH=str(tmp_path / "instance"))
    code = f"import app, time; application = app.{factory_call}; time.sleep(0.5); {THREADS}; import os; os._exit(0)"
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_a_script_that_builds_the_app_starts_no_worker_and_no_delivery_thread(tmp_path: Path) -> None:
    threads = _threads_after("create_app()", tmp_path)
    assert not [name for name in threads if name.startswith(("job-", "webhook-"))], threads


def test_the_web_entry_point_runs_jobs_and_delivers_webhooks(tmp_path: Path) -> None:
    threads = _threads_after("create_web_app()", tmp_path)
    assert any(name.startswith("job-worker") for name in threads), threads
    assert any(name.startswith("webhook-delivery") for name in threads), threads
