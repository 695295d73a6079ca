"""Every page on a phone (390×844) and a laptop (1280×900): no sideways scroll, no serious axe finding,
a screenshot for the reviewer; and one time zone for a running job's messages before and after a reload.

axe-core comes from npm (``tests/browser/package.json``; ``.ci/run`` runs ``npm ci`` there) and is
injected into each page by this test only; the app never serves it. Screenshots go to
``tests/screenshots/`` (git-ignored), named ``<width>x<height>-<page>.png``.
"""

from __future__ import annotations

import threading
from datetime import datetime
from pathlib import Path
from typing import Callable, Iterator
from zoneinfo import ZoneInfo

import pytest
from flask import Flask

from job_queue import job_queue
from test_browser import browser, login, sync_api  # noqa: F401  (the module-scoped Chromium fixture)

HERE = Path(__file__).resolve().parent
AXE = HERE / "browser" / "node_modules" / "axe-core" / "axe.min.js"
SCREENSHOTS = HERE / "screenshots"
SIZES = [(390, 844), (1280, 900)]
SERIOUS = ("serious", "critical")


class Blocker:
    """A job that reports progress and messages, then waits until released: an admin page mid-run."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.step = threading.Event()
        self.started = threading.Event()

    def __call__(self, job) -> dict:
        job.add_message("Starte Testlauf mit einer sehr langen Meldung, die auf einem Telefon umbrechen muss: "
                        "https://www.example.org/ein/sehr/langer/pfad/ohne/leerzeichen/der/umbrechen/muss")
        job.set_progress(40, 100)
        self.started.set()
        assert self.step.wait(30)
        job.add_message("Zweiter Schritt: 1 Seite geladen")
        job.set_progress(60, 100)
        assert self.release.wait(30)
        return {"added": 0}


def _fill_with_samples(app: Flask) -> str:
    """Run the offline scrapers synchronously; return a finished job's id."""
    with app.app_context():
        ids = [job_queue.submit(name).job_id for name in ("payback", "miles_and_more", "example")]
        job_queue.run_pending()
    return ids[-1]


def _check_page(page, name: str, size: tuple[int, int], problems: list[str]) -> None:
    width = page.evaluate("document.documentElement.scrollWidth")
    inner = page.evaluate("window.innerWidth")
    if width > inner:
        problems.append(f"{name} at {size[0]}px: page is {width}px wide")
    if AXE.exists():
        page.add_script_tag(path=str(AXE))
        result = page.evaluate("async () => (await axe.run(document, {resultTypes: ['violations']})).violations"
                               ".map(v => ({id: v.id, impact: v.impact, nodes: v.nodes.map(n => n.target.join(' '))"
                               ".slice(0, 3)}))")
        for violation in result:
            if violation["impact"] in SERIOUS:
                problems.append(f"{name} at {size[0]}px: axe {violation['id']} ({violation['impact']}) "
                                f"{violation['nodes']}")
    SCREENSHOTS.mkdir(exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{size[0]}x{size[1]}-{name}.png"), full_page=True)


@pytest.fixture
def sized_page(browser, request) -> Iterator:  # noqa: F811
    width, height = request.param
    # bypass_csp: the test injects axe as a script tag; the app's own pages keep their CSP.
    context = browser.new_context(locale="de-DE", timezone_id="Europe/Berlin", bypass_csp=True,
                                  viewport={"width": width, "height": height})
    page = context.new_page()
    page.set_default_timeout(15_000)
    yield page, (width, height)
    context.close()


@pytest.mark.parametrize("sized_page", SIZES, indirect=True, ids=[f"{w}x{h}" for w, h in SIZES])
def test_every_page_fits_the_screen_and_has_no_serious_accessibility_problem(
    make_app: Callable[..., Flask], live_server, sized_page
) -> None:
    page, size = sized_page
    app = make_app()
    finished = _fill_with_samples(app)
    server = live_server(app)
    failed_responses: list[str] = []
    page.on("response", lambda response: response.status >= 400 and failed_responses.append(response.url))
    problems: list[str] = []

    def visit(name: str, path: str, ready: str = "main") -> None:
        page.goto(f"{server.url}{path}")
        page.locator(ready).first.wait_for()
        _check_page(page, name, size, problems)

    visit("index", "/")
    shop_path = page.locator("th.merchant-name a").first.get_attribute("href")
    if page.locator('a[rel="next"]').count():
        visit("index-page-2", "/?sort=name&page=2")
    visit("shop", shop_path, "#history-chart")
    visit("login", "/admin/login", "form.login-form")
    login(page, app, server)
    visit("admin-idle", "/admin", "#scrape-log")
    visit("job-finished", f"/admin/jobs/{finished}", ".job-box")
    visit("history", "/admin/history", "#history")
    visit("stats", "/admin/stats", ".stats")
    visit("schedules", "/admin/schedules", "#schedules")
    page.goto(f"{server.url}/admin/webhooks")
    page.get_by_label("URL").fill("https://empfaenger.example.org/hooks/bonusvergleich")
    page.locator('input[name="events"]').first.check()
    page.get_by_role("button", name="Hinzufügen").click()
    page.locator(".secret-once").wait_for()  # the answer page, styled: not the form page still unloading
    page.wait_for_load_state("load")
    _check_page(page, "webhooks", size, problems)
    page.get_by_role("link", name="Zum neuen Endpunkt").click()
    page.locator("#endpoint-url").wait_for()
    _check_page(page, "webhook-endpoint", size, problems)

    blocker = Blocker()
    with app.app_context():
        running = job_queue.enqueue(blocker)
    def run_blocker() -> None:
        with app.app_context():
            job_queue.run_pending()

    runner = threading.Thread(target=run_blocker, daemon=True)
    runner.start()
    try:
        assert blocker.started.wait(30)
        visit("admin-running", "/admin", ".job-box .job-messages li")
        visit("job-running", f"/admin/jobs/{running}", ".job-box .job-messages li")
    finally:
        blocker.step.set()
        blocker.release.set()
        runner.join(30)
    visit("not-found", "/gibt-es-nicht", "h1")

    assert [url for url in failed_responses if not url.endswith("/gibt-es-nicht")] == []  # favicon included
    assert problems == [], "\n".join(problems)
    if not AXE.exists():
        pytest.skip(f"widths checked; axe-core missing at {AXE}: run `npm ci` in tests/browser (.ci/run does)")


def _message_times(page) -> list[str]:
    return page.locator(".job-box .job-messages li time").all_inner_texts()


@pytest.mark.parametrize("browser_zone", ["Europe/Berlin", "America/New_York"])
def test_a_running_jobs_message_times_are_the_same_before_and_after_a_reload(
    make_app: Callable[..., Flask], live_server, browser, browser_zone: str  # noqa: F811
) -> None:
    context = browser.new_context(locale="de-DE", timezone_id=browser_zone)
    page = context.new_page()
    page.set_default_timeout(15_000)
    app = make_app(JOBS_AUTOSTART=True)
    server = live_server(app)
    login(page, app, server)
    blocker = Blocker()
    try:
        with app.app_context():
            job_id = job_queue.enqueue(blocker)
        assert blocker.started.wait(30)
        page.reload()  # the first message rendered by the server, the next one by admin.js
        messages = page.locator(".job-box .job-messages li")
        sync_api.expect(messages).to_have_count(1)
        blocker.step.set()
        sync_api.expect(messages).to_have_count(2)
        live = _message_times(page)
        page.reload()
        sync_api.expect(messages).to_have_count(2)
        reloaded = _message_times(page)

        with app.app_context():
            snapshot = job_queue.get_job(job_id).to_dict()
        berlin = ZoneInfo("Europe/Berlin")
        expected = [datetime.fromisoformat(entry["timestamp"]).astimezone(berlin).strftime("%H:%M:%S")
                    for entry in snapshot["messages"]]
        assert live == reloaded == expected
        created = datetime.fromisoformat(snapshot["created_at"]).astimezone(berlin)
        row = page.locator("#recent-jobs tbody tr").filter(has=page.locator(f'a[href$="{job_id}"]'))
        sync_api.expect(row).to_contain_text(created.strftime("%d.%m.%Y %H:%M:%S"))
        # the progress bar tells assistive technology its value; new messages are announced
        bar = page.locator(".job-box [role=progressbar]")
        sync_api.expect(bar).to_have_attribute("aria-valuenow", "60")
        sync_api.expect(page.locator(".job-box .job-messages")).to_have_attribute("aria-live", "polite")
        sync_api.expect(page.locator(".job-box .job-status")).to_have_attribute("title", "läuft")
    finally:
        blocker.step.set()
        blocker.release.set()
        context.close()
