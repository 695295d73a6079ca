"""Bounded requests: bodies over MAX_CONTENT_LENGTH, numeric ranges, errors that quote little input."""

from __future__ import annotations

import os
import socket
import sys
import threading
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from flask import Flask

from conftest import free_port, serving_process

JSON = {"Accept": "application/json"}
HTML = {"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"}
MB = 1024 * 1024


# -- a 200 MB body against a real server process -------------------------------------------

def _memory_mb(pid: int, field: str) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise AssertionError(f"no {field} in /proc/{pid}/status")


def _post_big_body(port: int, size: int, chunked: bool) -> bytes:
    """Send ``size`` bytes of form body (never all in memory here) and return the answer's head."""
    connection = socket.create_connection(("127.0.0.1", port), timeout=60)
    length = "Transfer-Encoding: chunked" if chunked else f"Content-Length: {size}"
    connection.sendall(f"POST /admin/login HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/html\r\n"
                       f"Content-Type: application/x-www-form-urlencoded\r\n{length}\r\n\r\n".encode())
    head = bytearray()

    def read_answer() -> None:
        try:
            while b"\r\n\r\n" not in head:
                data = connection.recv(65536)
                if not data:
                    return
                head.extend(data)
        except OSError:
            return

    reader = threading.Thread(target=read_answer)
    reader.start()
    block = b"username=" + b"a" * (MB - 9)
    try:
        for _ in range(size // MB):
            connection.sendall(b"%x\r\n%s\r\n" % (len(block), block) if chunked else block)
        if chunked:
            connection.sendall(b"0\r\n\r\n")
    except OSError:
        pass  # the server refused and closed: exactly what we hope for
    reader.join(60)
    connection.close()
    return bytes(head)


@pytest.fixture
def web_process(tmp_path: Path):
    """``flask --app app run`` (the README's one-process setup) on a free port; yields (port, pid)."""
    port = free_port()
    env = dict(os.environ, DATABASE_URL=f"sqlite:///{tmp_path / 'web.sqlite'}", SECRET_KEY="test-only-secret-key-0123456789abcdef",
               INSTANCE_PATH=str(tmp_path / "instance"), JOBS_AUTOSTART="0")
    command = [sys.executable, "-m", "flask", "--app", "app", "run", "--port", str(port)]
    with serving_process(command, env, f"http://127.0.0.1:{port}/admin/login") as server:
        yield port, server.pid


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_a_200_mb_login_post_is_refused_without_reading_it_into_memory(web_process, chunked: bool) -> None:
    port, pid = web_process
    for _ in range(2):  # warm up the request path (imports, templates) before measuring
        request = urllib.request.Request(f"http://127.0.0.1:{port}/admin/login", data=b"username=a", method="POST")
        try:
            urllib.request.urlopen(request, timeout=10)
        except urllib.error.HTTPError:
            pass
    Path(f"/proc/{pid}/clear_refs").write_text("5")  # peak RSS := current RSS
    before = _memory_mb(pid, "VmHWM")
    head = _post_big_body(port, 200 * MB, chunked)
    growth = _memory_mb(pid, "VmHWM") - before
    print(f"200 MB body ({'chunked' if chunked else 'Content-Length'}): peak RSS grew by {growth:.1f} MB")
    assert head.startswith(b"HTTP/1.1 413"), head[:200]
    assert growth < 20, f"the server's peak RSS grew by {growth:.1f} MB"


# -- 413 in the shape the caller understands --------------------------------------------------

def test_too_large_is_json_on_json_routes_and_a_page_otherwise(admin_client, client) -> None:
    big = b"x" * (MB + 1)
    api = client.post("/admin/run_scraper", data=big, headers=JSON)
    assert api.status_code == 413 and "höchstens" in api.json["error"]
    page = admin_client.post("/admin/login", data=big, headers={**HTML, "Content-Type": "text/plain"})
    assert page.status_code == 413 and page.mimetype == "text/html"
    assert "Anfrage zu groß" in page.get_data(as_text=True)
    assert client.post("/admin/run_scraper", data=b"x" * 1000, headers=JSON).status_code == 202


def test_max_content_length_comes_from_the_config(make_app) -> None:
    app = make_app(MAX_CONTENT_LENGTH=2000)
    client = app.test_client()
    assert client.post("/admin/login", data=b"x" * 2001, headers=JSON).status_code == 413


# -- numeric ranges and short error messages ------------------------------------------------------

def test_a_5_mb_max_age_hours_gets_a_short_400(client) -> None:
    response = client.post("/admin/maintenance/clear_old_jobs", query_string={"max_age_hours": "9" * 5 * MB})
    assert response.status_code == 400
    assert len(response.get_data()) < 1024
    assert "max_age_hours" in response.json["error"]


@pytest.mark.parametrize("value", ["1e10", "0.5", "87601", "-1"])
def test_max_age_hours_out_of_range_names_the_range(client, value: str) -> None:
    response = client.post("/admin/maintenance/clear_old_jobs", json={"max_age_hours": float(value)})
    assert response.status_code == 400
    assert "1 bis 87600" in response.json["error"] and "10 Jahre" in response.json["error"]


@pytest.mark.parametrize("value", ["1", "87600"])
def test_max_age_hours_at_the_ends_of_the_range_is_accepted(client, value: str) -> None:
    response = client.post("/admin/maintenance/clear_old_jobs", data={"max_age_hours": value})
    assert response.status_code == 200 and response.json == {"removed": 0}


def test_errors_quote_at_most_80_characters_of_a_long_path(client) -> None:
    long_id = "j" * 10_000
    for path in (f"/admin/job_status/{long_id}", f"/admin/{long_id}"):
        response = client.get(path)
        assert response.status_code == 404
        assert len(response.json["error"]) < 200


def test_shop_ids_out_of_range_are_a_400_naming_the_range(app: Flask) -> None:
    client = app.test_client()
    response = client.get("/shop/99999999999999999999999")
    assert response.status_code == 400 and "1 bis 2147483647" in response.get_data(as_text=True)
    assert client.get("/shop/5").status_code == 404  # in range, just not there
