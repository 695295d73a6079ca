"""Every parameter parser of the API, fed anything: a value or a 4xx with a German message, never a crash.

Ids, dates, limits, yes/no values, cron expressions and bearer tokens are
drawn by Hypothesis, from plain junk to near-valid text with the characters
that broke things before (NUL, non-ASCII digits, the calendar's edges). The
HTTP cases run on SQLite and PostgreSQL: a value the database cannot compare
must be caught before it gets there.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import API_TOKEN, csrf_token_of
from job_queue import JobStatus
from jobs.schedules import ScheduleError, next_due, validate
from views.ids import MAX_ROW_ID, is_job_id, parse_row_id
from views.job_filters import MAX_LIMIT, FilterError, parse_filters

BERLIN = ZoneInfo("Europe/Berlin")
KINDS = {"payback", "miles_and_more", "example"}
JSON = {"Accept": "application/json", "Authorization": f"Bearer {API_TOKEN}"}
EXAMPLES = settings(max_examples=150, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
PURE = settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])  # the machine is shared and slow

# Text that looks almost right: digits of every script, dates at the calendar's edges, NUL, signs, spaces.
_tricky_pieces = st.sampled_from(["0", "1", "9", "²", "١", "１", "-", "+", ".", ":", "T", " ", "\x00", "\n", "Z",
                                  "0001-01-01", "9999-12-31", "2026-03-29T02:30:00", "+14:00", "-23:59",
                                  "2147483648", "9223372036854775808", "*", "#", "L", "MON", "/", ","])
tricky_text = st.one_of(st.text(max_size=60), st.lists(_tricky_pieces, max_size=12).map("".join))
# "<id>.<secret>", the shape of the tokens the site issues, with ids of every size and script.
token_shaped = st.tuples(st.one_of(st.integers(min_value=-1, max_value=2**70).map(str), tricky_text),
                         st.text(max_size=20)).map(".".join)
# Five fields that each make sense alone and may never meet (31 February, the fifth Monday of 1 January).
cron_shaped = st.tuples(st.sampled_from(["0", "*/15", "59", "60"]), st.sampled_from(["0", "3", "23", "24"]),
                        st.sampled_from(["*", "1", "29", "30", "31", "32", "L"]),
                        st.sampled_from(["*", "1", "2", "4", "12", "13"]),
                        st.sampled_from(["*", "MON", "MON#5", "SUN#1", "1-5", "7"])).map(" ".join)


@PURE
@given(tricky_text)
def test_a_row_id_is_in_range_or_none(text: str) -> None:
    number = parse_row_id(text)
    assert number is None or (1 <= number <= MAX_ROW_ID and text.isascii())


@PURE
@given(tricky_text)
def test_a_job_id_is_short_plain_text(text: str) -> None:
    if is_job_id(text):
        assert len(text) <= 36 and "\x00" not in text and text.isascii()


@PURE
@given(st.dictionaries(st.sampled_from(["name", "status", "since", "until", "limit", "before"]), tricky_text))
def test_job_filters_are_read_or_refused(args: dict[str, str]) -> None:
    try:
        filters = parse_filters(args, KINDS, BERLIN)
    except FilterError as error:
        assert str(error)
        return
    assert 1 <= filters.limit <= MAX_LIMIT
    assert filters.name in KINDS | {None}
    assert filters.status in {status.value for status in JobStatus} | {None}
    assert filters.before is None or is_job_id(filters.before)
    if filters.since and filters.until:
        assert filters.since < filters.until


@PURE
@given(st.one_of(tricky_text, cron_shaped, st.lists(_tricky_pieces, min_size=5, max_size=5).map(" ".join)))
def test_cron_expressions_are_read_or_refused(expression: str) -> None:
    try:
        tidy = validate(expression)
    except ScheduleError as error:
        assert str(error)
        return
    assert len(tidy.split(" ")) == 5 and "\x00" not in tidy
    next_due(tidy, datetime(2026, 12, 5), BERLIN)  # a saved schedule falls due some day


# -- over HTTP, on both databases -------------------------------------------------------------

json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | tricky_text,
                           lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner,
                                                                                       max_size=3),
                           max_leaves=6)


def _german_error(response) -> None:
    assert 400 <= response.status_code < 500, (response.status_code, response.get_data(as_text=True)[:300])
    assert response.is_json and response.json["error"]


@pytest.fixture
def site(make_app, database_url: str):
    return make_app(DATABASE_URL=database_url, LOGIN_RATE_LIMIT_PER_IP="100000 per minute",
                    LOGIN_RATE_LIMIT_PER_USER_AND_IP="100000 per minute", LOGIN_SLOWDOWN_AFTER=100000)


@EXAMPLES
@given(token=st.one_of(tricky_text, token_shaped))
def test_any_bearer_token_but_a_real_one_is_refused(site, token: str) -> None:
    carried = token.replace("\r", "").replace("\n", "").encode("latin-1", "replace").decode("latin-1")
    header = f"Bearer {carried}"  # what one HTTP header line can carry
    response = site.test_client().get("/admin/jobs", headers={"Accept": "application/json", "Authorization": header})
    assert response.status_code == 401 and response.json["error"]


@EXAMPLES
@given(username=tricky_text, password=tricky_text)
def test_any_login_but_the_right_one_is_a_wrong_login(site, username: str, password: str) -> None:
    client = site.test_client()
    response = client.post("/admin/login", data={"username": username, "password": password,
                                                 "csrf_token": csrf_token_of(client)})
    assert response.status_code in (400, 401), response.status_code


@EXAMPLES
@given(query=st.dictionaries(st.sampled_from(["name", "status", "since", "until", "limit", "before"]), tricky_text,
                             min_size=1))
def test_any_job_query_is_answered_or_refused(site, query: dict[str, str]) -> None:
    response = site.test_client().get("/admin/jobs", query_string=query, headers=JSON)
    if response.status_code != 200:
        _german_error(response)


@EXAMPLES
@given(path_id=tricky_text.filter(lambda text: "/" not in text and text not in ("", ".", "..")))
def test_any_id_in_a_path_is_found_or_not(site, path_id: str) -> None:
    client = site.test_client()
    for path in (f"/admin/job_status/{path_id}", f"/admin/jobs/{path_id}/cancel", f"/admin/runs/{path_id}/accept"):
        method = client.get if "job_status" in path else client.post
        response = method(path, headers=JSON)
        assert response.status_code in (401, 404, 405), (path, response.status_code)
        assert response.is_json and response.json["error"]


def _json_object(body: str) -> Any:
    """The body as the client meant it, or None when it is not a JSON object."""
    try:
        value = json.loads(body)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


@EXAMPLES
@given(body=st.one_of(json_values.map(json.dumps), st.text(max_size=40)),
       flag=st.one_of(json_values, st.sampled_from(["ja", "on", "true", "False", ""])),
       expression=st.one_of(json_values, cron_shaped))
def test_any_schedule_write_is_saved_or_refused(site, body: str, flag, expression) -> None:
    client = site.test_client()
    for data in (body, json.dumps({"expression": expression, "enabled": flag})):
        response = client.post("/admin/schedules/payback", data=data, content_type="application/json", headers=JSON)
        if _json_object(data) is None:
            _german_error(response)
        elif response.status_code == 200:
            sent = _json_object(data).get("enabled", False)
            assert response.json["enabled"] is (sent is True or str(sent).lower() in ("1", "true", "on", "yes"))
            assert bool(response.json["next_run"]) is response.json["enabled"]  # an enabled one falls due
        else:
            _german_error(response)


@EXAMPLES
@given(body=st.one_of(json_values.map(lambda value: json.dumps({"max_age_hours": value})), st.text(max_size=40)))
def test_any_clear_old_jobs_body_clears_or_is_refused(site, body: str) -> None:
    response = site.test_client().post("/admin/maintenance/clear_old_jobs", data=body,
                                       content_type="application/json", headers=JSON)
    sent = _json_object(body)
    if sent is None:
        _german_error(response)  # never read as "nothing sent", which would clear with the default
    elif response.status_code == 200:
        assert isinstance(response.json["removed"], int)
    else:
        _german_error(response)
