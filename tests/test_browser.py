"""Browser tests: the admin console in Debian's Chromium, driven by Playwright."""

from __future__ import annotations

import os
import re
import shutil
import threading
from typing import Callable, Iterator

import pytest
from flask import Flask

from conftest import ADMIN_PASSWORD, ADMIN_USER, create_admin
from job_queue import job_queue

CHROMIUM = os.environ.get("CHROMIUM_PATH") or shutil.which("chromium") or "/usr/bin/chromium"
if not os.path.exists(CHROMIUM):
    pytest.skip(
        "needs Debian's chromium (apt-get install chromium) or CHROMIUM_PATH; .ci/run installs it",
        allow_module_level=True,
    )
sync_api = pytest.importorskip("playwright.sync_api", reason="pip install -r requirements-dev.txt")

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="module")
def browser() -> Iterator["sync_api.Browser"]:
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        yield browser
        browser.close()


@pytest.fixture
def page(browser) -> Iterator["sync_api.Page"]:
    context = browser.new_context(locale="de-DE")
    page = context.new_page()
    page.set_default_timeout(15_000)
    yield page
    context.close()


def login(page, app: Flask, server) -> None:
    """Create the test admin, log in through the form and land on /admin."""
    create_admin(app)
    page.goto(f"{server.url}/admin")
    page.get_by_label("Benutzer").fill(ADMIN_USER)
    page.get_by_label("Passwort").fill(ADMIN_PASSWORD)
    page.get_by_role("button", name="Anmelden").click()
    page.wait_for_url(f"{server.url}/admin")


def count_cell(page, programme: str):
    return page.locator(f'#shop-counts tr[data-programme="{programme}"] td.count')


def test_example_scraper_runs_live_and_page_reloads(make_app: Callable[..., Flask], live_server, page) -> None:
    # A pause between catalogue pages makes the run slow enough to watch.
    app = make_app(JOBS_AUTOSTART=True, EXAMPLE_PAGE_INTERVAL=0.6)
    server = live_server(app)
    login(page, app, server)
    assert count_cell(page, "example").inner_text() == "0"
    page.evaluate("window.__notReloaded = true")

    page.get_by_role("button", name="Run Example Scraper").click()
    box = page.locator(".job-box")
    sync_api.expect(box).to_be_visible()
    # the bar moves: some value strictly between 0 and 100 is seen
    page.wait_for_function(
        "() => { const v = document.querySelector('.job-box .job-bar').value; return v > 0 && v < 100; }"
    )
    sync_api.expect(page.locator(".job-box .job-status")).to_have_text("RUNNING")
    sync_api.expect(page.locator(".job-box .job-messages li").first).to_contain_text("Starte Example-Scraper")
    sync_api.expect(page.locator(".job-box .job-messages li")).not_to_have_count(0)
    sync_api.expect(page.locator(".job-box .job-status")).to_have_text("COMPLETED")
    sync_api.expect(page.locator(".job-box .job-percent")).to_have_text("100 %")

    # two seconds later the page reloads and shows the new shops and the log
    page.wait_for_function("() => window.__notReloaded === undefined", timeout=6000)
    sync_api.expect(count_cell(page, "example")).to_have_text("24")
    sync_api.expect(page.locator("#scrape-log tbody tr").first).to_contain_text("erfolgreich")
    page.goto(f"{server.url}/")
    sync_api.expect(page.get_by_text("Schuhhaus Beispiel")).to_be_visible()


def test_failing_job_shows_failed_in_red_and_does_not_reload(
    make_app: Callable[..., Flask], live_server, page
) -> None:
    app = make_app(JOBS_AUTOSTART=True, SCRAPER_SOURCES="online")
    server = live_server(app)
    # The catalogue URL points at a page of our own server that does not exist.
    app.config["EXAMPLE_CATALOGUE_URL"] = f"{server.url}/nicht-vorhanden.html"
    app.config["SCRAPER_ALLOWED_HOSTS"] = server.url.removeprefix("http://")  # loopback: allow it
    login(page, app, server)
    page.evaluate("window.__notReloaded = true")

    page.get_by_role("button", name="Run Example Scraper").click()
    status = page.locator(".job-box .job-status")
    sync_api.expect(status).to_have_text("FAILED")
    sync_api.expect(status).to_have_css("background-color", "rgb(207, 34, 46)")
    error = page.locator(".job-box .job-error")
    sync_api.expect(error).to_be_visible()
    sync_api.expect(error).to_contain_text("404")
    sync_api.expect(error).to_have_css("overflow-wrap", "anywhere")  # a long URL wraps, no sideways scroll
    sync_api.expect(page.locator(".job-box .job-messages li").last).to_contain_text("Fehler:")

    # Longer than the 2 s reload delay after COMPLETED: the page must stay.
    page.wait_for_timeout(3000)
    assert page.evaluate("window.__notReloaded") is True
    sync_api.expect(status).to_have_text("FAILED")


def test_reloading_mid_run_picks_the_job_up_again(make_app: Callable[..., Flask], live_server, page) -> None:
    app = make_app(JOBS_AUTOSTART=True, EXAMPLE_PAGE_INTERVAL=0.6)
    server = live_server(app)
    login(page, app, server)
    page.get_by_role("button", name="Run Example Scraper").click()
    sync_api.expect(page.locator(".job-box .job-status")).to_have_text("RUNNING")
    job_id = page.locator(".job-box .job-id").inner_text()

    page.reload()
    sync_api.expect(page.locator(".job-box .job-id")).to_have_text(job_id)
    sync_api.expect(page.locator(".job-box .job-status")).to_have_text("COMPLETED")


def test_offline_scrapers_fill_the_comparison_and_hostile_names_stay_text(
    make_app: Callable[..., Flask], live_server, page
) -> None:
    app = make_app(JOBS_AUTOSTART=True, SCRAPER_SOURCES="offline", EXAMPLE_PAGE_INTERVAL=0.0,
                   SCRAPER_HOST_CONCURRENCY=4)
    server = live_server(app)
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    login(page, app, server)
    sync_api.expect(page.get_by_text("Offline-Modus")).to_be_visible()

    for label, programme, count in [
        ("Run Payback Scraper", "payback", "40"),
        ("Run Miles & More Scraper", "miles_and_more", "27"),
        ("Run Example Scraper", "example", "24"),
    ]:
        page.evaluate("window.__notReloaded = true")
        page.get_by_role("button", name=label).click()
        sync_api.expect(page.locator(".job-box .job-status")).to_have_text("COMPLETED")
        page.wait_for_function("() => window.__notReloaded === undefined", timeout=6000)
        sync_api.expect(count_cell(page, programme)).to_have_text(count)

    page.goto(f"{server.url}/")
    sync_api.expect(page.get_by_text("Schuhhaus Beispiel")).to_be_visible()
    sync_api.expect(page.locator(".sample-banner")).to_contain_text("Beispieldaten")
    # OTTO (PAYBACK, by domain) and Otto (Miles & More, by name) are one merchant
    otto = page.locator("tbody.merchant").filter(
        has=page.get_by_role("link", name=re.compile(r"^otto$", re.IGNORECASE))
    )
    sync_api.expect(otto.locator("tr.offer")).to_have_count(2)
    # hostile scraped names render as text; nothing they carry runs
    sync_api.expect(page.get_by_text('<script>alert("x")</script> Hack-Shop')).to_be_visible()
    sync_api.expect(page.get_by_text('"><img src=x onerror=alert(1)> Böse GmbH')).to_be_visible()
    assert page.locator('img[src="x"]').count() == 0
    page.get_by_role("link", name='"><img src=x onerror=alert(1)> Böse GmbH').click()
    sync_api.expect(page.locator("h1")).to_have_text('"><img src=x onerror=alert(1)> Böse GmbH')
    assert dialogs == []


HOSTILE_NAME = "<script>alert('name')</script> Schurken-Shop"
HOSTILE_RATE = '"><img src=x onerror=alert("rate")> 2 °P pro 1 €'
HOSTILE_MESSAGE = '<img src=x onerror=alert("message")> Nachricht'
HOSTILE_ERROR = "<script>alert('error')</script> Fehlertext"

CSP_LISTENER = """
window.__cspViolations = [];
document.addEventListener('securitypolicyviolation', e => window.__cspViolations.push(e.violatedDirective));
"""


def test_hostile_scraped_text_renders_as_text_and_nothing_runs(
    make_app: Callable[..., Flask], live_server, page
) -> None:
    from scrapers.rates import parse_rate
    from models import BASE
    from scrapers.store import Offer, OfferRate, store_offers

    app = make_app(JOBS_AUTOSTART=True)
    with app.app_context():
        store_offers("payback", [Offer(
            external_id="lp-evil", name=HOSTILE_NAME, detail_url="javascript:alert('link')",
            rates=[OfferRate(BASE, parse_rate(HOSTILE_RATE))],
        )], complete=True)
    server = live_server(app)
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    page.add_init_script(CSP_LISTENER)
    console_errors: list[str] = []
    page.on("console", lambda message: message.type == "error" and console_errors.append(message.text))
    login(page, app, server)

    release = threading.Event()

    def hostile_job(job):
        job.add_message(HOSTILE_MESSAGE)
        assert release.wait(30)
        raise RuntimeError(HOSTILE_ERROR)

    with app.app_context():
        job_queue.enqueue(hostile_job)
    page.reload()  # the page picks the running job up and polls it
    sync_api.expect(page.locator(".job-box .job-messages li").last).to_contain_text(HOSTILE_MESSAGE)
    release.set()
    sync_api.expect(page.locator(".job-box .job-status")).to_have_text("FAILED")
    sync_api.expect(page.locator(".job-box .job-error")).to_contain_text(HOSTILE_ERROR)
    page.reload()  # now rendered by the server: messages, recent jobs with the error
    sync_api.expect(page.locator("#recent-jobs")).to_contain_text(HOSTILE_ERROR)

    page.goto(f"{server.url}/")
    sync_api.expect(page.get_by_text(HOSTILE_NAME)).to_be_visible()
    sync_api.expect(page.get_by_text(HOSTILE_RATE)).to_be_visible()
    assert page.locator("a[href^='javascript']").count() == 0
    page.get_by_role("link", name=HOSTILE_NAME).click()
    sync_api.expect(page.locator("h1")).to_have_text(HOSTILE_NAME)

    assert page.locator("img[src='x']").count() == 0
    assert dialogs == []
    assert page.evaluate("window.__cspViolations") == []
    # Chromium reports every CSP violation of every page visited on the console.
    assert [text for text in console_errors if "Content Security Policy" in text] == []


def test_csp_violations_would_be_seen(make_app: Callable[..., Flask], live_server, page) -> None:
    """The CSP check above can fail: an injected inline script is blocked and reported."""
    server = live_server(make_app())
    console_errors: list[str] = []
    page.on("console", lambda message: message.type == "error" and console_errors.append(message.text))
    page.add_init_script(CSP_LISTENER)
    page.goto(f"{server.url}/")
    page.evaluate("""() => { const s = document.createElement('script');
                              s.textContent = 'window.__ran = true'; document.body.appendChild(s); }""")
    page.wait_for_function("() => window.__cspViolations.length > 0")
    assert page.evaluate("window.__ran === undefined")
    assert any("Content Security Policy" in text for text in console_errors)


def test_two_scrapers_run_side_by_side_one_is_cancelled_and_a_double_start_is_one_job(
    make_app: Callable[..., Flask], live_server, page
) -> None:
    # Slow enough to watch: the Example catalogue pages 1.5 s apart, Miles & More pages 0.15 s apart.
    app = make_app(JOBS_AUTOSTART=True, EXAMPLE_PAGE_INTERVAL=1.5, SCRAPER_MIN_INTERVAL=0.15)
    server = live_server(app)
    login(page, app, server)
    page.evaluate("window.__notReloaded = true")
    page.get_by_role("button", name="Run Example Scraper").click()
    page.get_by_role("button", name="Run Miles & More Scraper").click()
    boxes = page.locator(".job-box")
    sync_api.expect(boxes).to_have_count(2)
    # both bars move at the same time
    page.wait_for_function(
        "() => { const bars = [...document.querySelectorAll('.job-box .job-bar')];"
        " return bars.length === 2 && bars.every(bar => bar.value > 0 && bar.value < 100); }"
    )
    # a second click on a running scraper follows that run: still two boxes, one Example job
    page.get_by_role("button", name="Run Example Scraper").click()
    page.wait_for_timeout(700)
    sync_api.expect(boxes).to_have_count(2)
    with app.app_context():
        assert [job.name for job in job_queue.get_all_jobs()].count("example") == 1

    miles = boxes.filter(has_text="Miles & More")
    miles.get_by_role("button", name="Abbrechen").click()
    sync_api.expect(miles.locator(".job-status")).to_have_text("CANCELLED")
    sync_api.expect(miles.get_by_role("button", name="Abbrechen")).to_be_hidden()
    example = boxes.filter(has_text="Beispiel-Bonusprogramm")
    sync_api.expect(example.locator(".job-status")).to_have_text("COMPLETED", timeout=30_000)  # it went on
    sync_api.expect(miles.locator(".job-status")).to_have_text("CANCELLED")


def test_a_finished_run_stays_linked_its_page_has_the_whole_log_and_stats_chart_it(
    make_app: Callable[..., Flask], live_server, page
) -> None:
    app = make_app(JOBS_AUTOSTART=True, EXAMPLE_PAGE_INTERVAL=0.3)
    server = live_server(app)
    login(page, app, server)
    page.evaluate("window.__notReloaded = true")
    page.get_by_role("button", name="Run Example Scraper").click()
    box = page.locator(".job-box")
    sync_api.expect(box.locator(".job-status")).to_have_text("COMPLETED")
    job_id = box.locator(".job-id").inner_text()
    page.wait_for_function("() => window.__notReloaded === undefined", timeout=6000)  # the console reloaded

    link = page.locator(f'#recent-jobs a[href$="/admin/jobs/{job_id}"]')  # still there, as a link
    sync_api.expect(link).to_be_visible()
    link.click()
    page.wait_for_url(f"{server.url}/admin/jobs/{job_id}")
    messages = page.locator(".job-box .job-messages li")
    sync_api.expect(messages.first).to_contain_text("Starte Example-Scraper")
    sync_api.expect(messages.last).to_contain_text("Fertig: 24 neu")
    with app.app_context():
        assert messages.count() == len(job_queue.get_job(job_id).messages)  # the whole log
    page.wait_for_timeout(2500)
    assert page.url == f"{server.url}/admin/jobs/{job_id}"  # a finished job's page does not reload

    page.goto(f"{server.url}/admin/stats")
    bars = page.locator("#runs-example rect.run-bar")
    sync_api.expect(bars).to_have_count(1)
    sync_api.expect(bars.first.locator("title")).to_contain_text("erfolgreich")
    sync_api.expect(page.locator("#stats-example tbody tr").first).to_contain_text("100 %")
