"""A login nobody can lock: limits per address and per (user, address), a per-user delay that never refuses."""

from __future__ import annotations

import threading

import pytest
from flask import Flask

from conftest import ADMIN_PASSWORD, ADMIN_USER, create_admin, csrf_token_of
from views import login_limits


def client_at(app: Flask, address: str, **environ):
    client = app.test_client()
    client.environ_base.update(REMOTE_ADDR=address, **environ)
    client.csrf = csrf_token_of(client)
    return client


def attempt(client, password: str, username: str = ADMIN_USER, **kwargs) -> int:
    return client.post("/admin/login", data={"username": username, "password": password,
                                             "csrf_token": client.csrf}, **kwargs).status_code


@pytest.fixture
def waits(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The delays the login slowdown asked for, without waiting for them."""
    asked: list[float] = []
    monkeypatch.setattr(login_limits, "pause", asked.append)
    return asked


def test_failures_from_one_address_never_refuse_the_right_password_from_another(app: Flask, waits) -> None:
    create_admin(app)
    attacker = client_at(app, "198.51.100.7")
    assert [attempt(attacker, "falsch-falsch") for _ in range(6)] == [401] * 5 + [429]
    admin = client_at(app, "203.0.113.20")
    assert attempt(admin, ADMIN_PASSWORD) == 302


def test_the_guessing_address_stays_limited_for_that_user(app: Flask, waits) -> None:
    create_admin(app)
    attacker = client_at(app, "198.51.100.7")
    codes = [attempt(attacker, "falsch-falsch") for _ in range(5)]
    assert codes == [401] * 5
    assert attempt(attacker, ADMIN_PASSWORD) == 429  # this address has used up its tries for admin


def test_many_addresses_are_slowed_down_growing_and_bounded_never_refused(make_app, waits) -> None:
    app = make_app(LOGIN_SLOWDOWN_AFTER=5, LOGIN_SLOWDOWN_MAX_SECONDS=2.0)
    create_admin(app)
    codes = [attempt(client_at(app, f"198.51.100.{n}"), "falsch-falsch") for n in range(1, 13)]
    assert codes == [401] * 12  # a botnet gets answers, only slowly
    assert waits == [0.25, 0.5, 1.0, 2.0, 2.0, 2.0, 2.0]  # from the 6th attempt on, doubling, capped
    assert attempt(client_at(app, "203.0.113.20"), ADMIN_PASSWORD) == 302  # delayed, never refused
    assert waits[-1] == 2.0


def test_the_delay_counts_one_user_name_and_leaves_others_alone(app: Flask, waits) -> None:
    create_admin(app)
    for n in range(1, 8):
        attempt(client_at(app, f"198.51.100.{n}"), "falsch-falsch", username=" ADMIN ")  # same name
    assert waits == [0.25, 0.5]
    attempt(client_at(app, "198.51.100.99"), "falsch-falsch", username="erika")
    assert waits == [0.25, 0.5]


def test_delayed_attempts_cannot_tie_up_the_server(make_app, monkeypatch: pytest.MonkeyPatch) -> None:
    app = make_app(LOGIN_SLOWDOWN_AFTER=0, LOGIN_SLOWDOWN_SLOTS=2)
    create_admin(app)
    release, waiting = threading.Event(), []
    lock = threading.Lock()

    def held_pause(seconds: float) -> None:
        with lock:
            waiting.append(seconds)
        release.wait(10)

    monkeypatch.setattr(login_limits, "pause", held_pause)
    clients = [client_at(app, f"198.51.100.{n}") for n in range(1, 5)]
    held = [threading.Thread(target=attempt, args=(client, "falsch-falsch")) for client in clients[:2]]
    for thread in held:
        thread.start()
    try:
        for _ in range(200):
            with lock:
                if len(waiting) == 2:
                    break
            release.wait(0.05)
        # both slots are taken: further attempts are answered at once, not queued
        assert attempt(clients[2], "falsch-falsch") == 401
        assert attempt(clients[3], ADMIN_PASSWORD) == 302
        assert len(waiting) == 2
    finally:
        release.set()
        for thread in held:
            thread.join(10)


def test_behind_a_trusted_proxy_only_its_entry_of_x_forwarded_for_counts(make_app, waits) -> None:
    app = make_app(TRUST_PROXY=True)
    create_admin(app)
    proxy = client_at(app, "10.0.0.2")  # every request arrives from the proxy
    codes = []
    for n in range(11):
        # The client forges a fresh first entry each time; the proxy appends the address it saw.
        forwarded = {"X-Forwarded-For": f"192.0.2.{n}, 198.51.100.7"}
        codes.append(attempt(proxy, "x" * 12, username=f"user{n}", headers=forwarded))
    assert codes == [401] * 10 + [429]
    other = {"X-Forwarded-For": "198.51.100.7, 203.0.113.20"}  # the real admin, elsewhere
    assert attempt(proxy, ADMIN_PASSWORD, headers=other) == 302
