"""Bad input from a client is answered with a 4xx and a German message, never a 500, on both databases.

Each case was found by probing the running site: an id too large for its
column, a NUL in a text, a date at the edge of the calendar, a digit that is
not ASCII, a cron expression that never falls due, a body that is not JSON.
"""

from __future__ import annotations

from typing import Callable

import pytest
from flask import Flask

from conftest import ADMIN_PASSWORD, ADMIN_USER, API_TOKEN, create_admin, csrf_token_of, logged_in_client
from job_queue import job_queue
from jobs.schedules import ScheduleError, validate

JSON = {"Accept": "application/json", "Authorization": f"Bearer {API_TOKEN}"}
HUGE_IDS = ["2147483648", "9223372036854775808", "99999999999999999999999999"]


def _app(make_app: Callable[..., Flask], database_url: str) -> Flask:
    return make_app(DATABASE_URL=database_url)


def _assert_json_error(response, status: int, *words: str) -> str:
    assert response.status_code == status, response.get_data(as_text=True)[:500]
    assert response.is_json, response.get_data(as_text=True)[:500]
    message = response.json["error"]
    for word in words:
        assert word in message, message
    return message


# -- credentials ---------------------------------------------------------------------

@pytest.mark.parametrize("token", [f"{number}.abcdef" for number in HUGE_IDS] + ["1\x00.abcdef", "١٢.abcdef"],
                         ids=["int32", "int64", "huge", "nul", "arabic-digits"])
def test_a_bearer_token_with_an_odd_id_is_refused_not_a_crash(make_app, database_url: str, token: str) -> None:
    client = _app(make_app, database_url).test_client()
    response = client.get("/admin/jobs", headers={"Accept": "application/json", "Authorization": f"Bearer {token}"})
    _assert_json_error(response, 401)


@pytest.mark.parametrize("username, password", [("ad\x00min", ADMIN_PASSWORD), (ADMIN_USER, "pass\x00wort")])
def test_a_nul_in_the_login_is_a_wrong_login_not_a_crash(make_app, database_url: str, username: str,
                                                          password: str) -> None:
    app = _app(make_app, database_url)
    create_admin(app)
    client = app.test_client()
    response = client.post("/admin/login", data={"username": username, "password": password,
                                                 "csrf_token": csrf_token_of(client)})
    assert response.status_code == 401
    assert "Benutzername oder Passwort falsch." in response.get_data(as_text=True)


# -- ids in the path --------------------------------------------------------------------

@pytest.mark.parametrize("number", HUGE_IDS)
def test_an_id_too_large_for_its_column_is_not_found(make_app, database_url: str, number: str) -> None:
    app = _app(make_app, database_url)
    client = logged_in_client(app)
    accepted = client.post(f"/admin/runs/{number}/accept", headers={**JSON, "X-CSRFToken": client.csrf_token})
    _assert_json_error(accepted, 404)
    assert client.get(f"/shop/{number}").status_code == 400  # the shop page names the range instead
    assert client.get(f"/admin/webhooks/{number}").status_code == 404


@pytest.mark.parametrize("job_id", ["ab\x00cd", "x" * 5000], ids=["nul", "5000-chars"])
def test_an_odd_job_id_is_not_found(make_app, database_url: str, job_id: str) -> None:
    client = _app(make_app, database_url).test_client()
    _assert_json_error(client.get(f"/admin/job_status/{job_id}", headers=JSON), 404)
    _assert_json_error(client.get("/admin/jobs", query_string={"before": job_id}, headers=JSON), 400, "before")


# -- filters of the job list and the history ------------------------------------------------

@pytest.mark.parametrize("query, named", [
    ({"since": "0001-01-01"}, "since"),
    ({"until": "9999-12-31"}, "until"),
    ({"since": "0001-01-01T00:30:00+01:00"}, "since"),
    ({"until": "9999-12-31T23:59:59-01:00"}, "until"),
    ({"limit": "²"}, "limit"),
    ({"limit": "１０"}, "limit"),
    ({"since": "2026-01-01\x00"}, "since"),
])
def test_job_filters_at_the_edges_are_refused_with_a_german_message(make_app, database_url: str, query: dict,
                                                                    named: str) -> None:
    app = _app(make_app, database_url)
    _assert_json_error(app.test_client().get("/admin/jobs", query_string=query, headers=JSON), 400, named)
    page = logged_in_client(app).get("/admin/history", query_string=query)
    assert page.status_code == 400
    assert named in page.get_data(as_text=True)


def test_the_widest_sensible_range_still_works(make_app, database_url: str) -> None:
    app = _app(make_app, database_url)
    with app.app_context():
        job_queue.enqueue(lambda job: None)
        job_queue.run_pending()
    response = app.test_client().get("/admin/jobs", query_string={"since": "0002-01-01", "until": "9998-12-31"},
                                     headers=JSON)
    assert response.status_code == 200 and len(response.json) == 1


# -- schedules --------------------------------------------------------------------------------

@pytest.mark.parametrize("expression", ["0 0 31 2 *", "0 0 1 1 MON#5", "0 0 31 4 *"])
def test_an_expression_that_never_falls_due_is_refused(expression: str) -> None:
    with pytest.raises(ScheduleError, match="nie fällig"):
        validate(expression)


def _schedule_post(client, body, content_type: str = "application/json"):
    return client.post("/admin/schedules/payback", data=body, content_type=content_type, headers=JSON)


def test_schedule_writes_refuse_what_they_cannot_read_and_keep_the_schedule(make_app, database_url: str) -> None:
    app = _app(make_app, database_url)
    client = app.test_client()
    before = client.get("/admin/schedules", headers=JSON).json
    _assert_json_error(_schedule_post(client, '{"expression": "0 0 31 2 *", "enabled": true}'), 400, "nie fällig")
    _assert_json_error(_schedule_post(client, '{"expression": "30 3 * * *", "enabled": "ja"}'), 400, "enabled")
    _assert_json_error(_schedule_post(client, '{"expression": "30 3 * * *", "enabled": 2}'), 400, "enabled")
    _assert_json_error(_schedule_post(client, '{"expression": "30 3 * * *"'), 400, "JSON")
    _assert_json_error(_schedule_post(client, '["30 3 * * *"]'), 400, "JSON")
    assert client.get("/admin/schedules", headers=JSON).json == before
    saved = _schedule_post(client, '{"expression": "30 3 * * *", "enabled": true}')
    assert saved.status_code == 200 and saved.json["enabled"] is True


# -- maintenance --------------------------------------------------------------------------------

@pytest.mark.parametrize("body", ['{"max_age_hours": 48', "max_age_hours=48", '"48"'])
def test_clear_old_jobs_with_a_body_it_cannot_read_removes_nothing(make_app, database_url: str, body: str) -> None:
    app = _app(make_app, database_url)
    response = app.test_client().post("/admin/maintenance/clear_old_jobs", data=body,
                                      content_type="application/json", headers=JSON)
    _assert_json_error(response, 400, "JSON")
