"""A newcomer's first run: the README's run command, the one-time password file the console names, a login."""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from test_browser import CHROMIUM, CHROMIUM_ARGS, sync_api

REPO = Path(__file__).resolve().parent.parent
# Settings a developer may have exported; a newcomer has none of them.
FOREIGN_SETTINGS = ("DATABASE_URL", "SECRET_KEY", "ADMIN_API_TOKEN", "SCRAPER_SOURCES",
                    "EXAMPLE_CATALOGUE_URL", "FLASK_APP", "FLASK_DEBUG", "INSTANCE_PATH")


def fresh_checkout(target: Path) -> Path:
    """Copy the files git tracks, as a clone would have them (no instance/ folder)."""
    if shutil.which("git") is None or not (REPO / ".git").exists():
        pytest.skip("needs a git checkout of the project to copy its tracked files")
    listed = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True)
    for name in listed.stdout.decode().split("\0"):
        if name and (REPO / name).is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, target / name)
    return target


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_readme_run_command_leads_to_a_logged_in_admin_page(tmp_path: Path) -> None:
    readme = (REPO / "README.md").read_text()
    assert "flask --app app run" in readme
    checkout = fresh_checkout(tmp_path / "clone")
    port = free_port()
    env = {key: value for key, value in os.environ.items() if key not in FOREIGN_SETTINGS}
    # The README's command, on a free port: `flask --app app run`.
    server = subprocess.Popen(
        [sys.executable, "-m", "flask", "--app", "app", "run", "--port", str(port)],
        cwd=checkout, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    console: list[str] = []
    found = threading.Event()
    password: list[str] = []

    def read_console() -> None:
        for line in server.stdout:
            console.append(line)
            match = re.search(r"Passwort: in (\S+)", line)
            if match:
                password.append(Path(match.group(1)).read_text().strip())
            if password and "Running on" in line:
                found.set()
        found.set()  # the server exited: stop waiting

    threading.Thread(target=read_console, daemon=True).start()
    try:
        assert found.wait(60) and password and server.poll() is None, "".join(console)
        with sync_api.sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
            page = browser.new_page()
            page.set_default_timeout(20_000)
            base = f"http://127.0.0.1:{port}"
            page.goto(f"{base}/admin")
            page.wait_for_url(re.compile(r".*/admin/login.*"))
            page.get_by_label("Benutzer").fill("admin")
            page.get_by_label("Passwort").fill(password[0])
            page.get_by_role("button", name="Anmelden").click()
            page.wait_for_url(f"{base}/admin")
            page.evaluate("window.__notReloaded = true")
            page.get_by_role("button", name="Run Example Scraper").click()
            # The bundled Example catalogue reads its pages 1 s apart: about 4 s, more on a busy machine.
            sync_api.expect(page.locator(".job-box .job-status")).to_have_text("COMPLETED", timeout=30_000)
            page.wait_for_function("() => window.__notReloaded === undefined", timeout=8000)
            sync_api.expect(
                page.locator('#shop-counts tr[data-programme="example"] td.count')
            ).to_have_text("24")
            browser.close()
    finally:
        server.terminate()
        server.wait(10)
    assert (checkout / "instance" / "secret_key").exists()  # generated, never in the repo
    assert not (checkout / "instance" / "initial-admin-password").exists()  # used once, then deleted
    assert password[0] not in "".join(console)
