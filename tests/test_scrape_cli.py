"""`flask scrape NAME` runs one scraper in the foreground: progress bar, messages, exit code; Ctrl-C cancels."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def _env(tmp_path: Path, **settings: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith(("JOBS_", "SCRAPER_"))}
    env.update(DATABASE_URL=f"sqlite:///{tmp_path / 'cli.sqlite'}", SECRET_KEY="test-only-secret-key-0123456789abcdef", **settings)
    return env


def _scrape(tmp_path: Path, name: str, **settings: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "flask", "--app", "app", "scrape", name], cwd=REPO,
                          env=_env(tmp_path, **settings), capture_output=True, text=True, timeout=120)


def test_scrape_example_offline_shows_progress_and_messages_and_exits_0(tmp_path: Path) -> None:
    done = _scrape(tmp_path, "example", SCRAPER_SOURCES="offline", EXAMPLE_PAGE_INTERVAL="0.05")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "[##############################] 100 %" in done.stdout
    assert "Starte Example-Scraper" in done.stdout and "Fertig: 24 neu" in done.stdout
    assert done.stdout.rstrip().endswith("Ergebnis: COMPLETED")


def test_a_failing_scraper_exits_1_with_its_error(tmp_path: Path) -> None:
    done = _scrape(tmp_path, "example", SCRAPER_SOURCES="online", EXAMPLE_CATALOGUE_URL="http://127.0.0.1:9/kat.html",
                   SCRAPER_ALLOWED_HOSTS="127.0.0.1:9", SCRAPER_RETRIES="0")
    assert done.returncode == 1, done.stdout + done.stderr
    assert "Ergebnis: FAILED" in done.stdout and "Verbindung abgelehnt" in done.stdout


def test_an_unknown_scraper_names_the_known_ones(tmp_path: Path) -> None:
    done = _scrape(tmp_path, "gibtsnicht")
    assert done.returncode != 0 and "payback" in done.stderr and "miles_and_more" in done.stderr


def test_ctrl_c_cancels_the_run_cleanly(tmp_path: Path) -> None:
    process = subprocess.Popen([sys.executable, "-m", "flask", "--app", "app", "scrape", "example"], cwd=REPO,
                               env=_env(tmp_path, SCRAPER_SOURCES="offline", EXAMPLE_PAGE_INTERVAL="1.0"),
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    output = []
    for line in process.stdout:  # wait until it is fetching the catalogue
        output.append(line)
        if "Lade Katalogseite 2" in line:
            break
    process.send_signal(signal.SIGINT)
    started = time.monotonic()
    rest, _ = process.communicate(timeout=30)
    output.append(rest)
    text = "".join(output)
    assert process.returncode == 1, text
    assert time.monotonic() - started < 5
    assert "Abbruch angefordert" in text and "Ergebnis: CANCELLED" in text and "Traceback" not in text
