"""Admin passwords: long enough, not a pattern, not among the most common ones."""

from __future__ import annotations

import pytest
from flask import Flask

from views.passwords import common_passwords


@pytest.mark.parametrize("password, reason", [
    ("aaaaaaaaaaaa", "Muster"),
    ("            ", "Leerzeichen"),
    ("password1234", "häufigsten"),
    ("Password1234", "häufigsten"),
    ("qwerty123456", "häufigsten"),
    ("abcabcabcabc", "Muster"),
    ("kurz", "mindestens 12"),
    ("erika-mustermann", "Benutzername"),
])
def test_weak_passwords_are_refused_by_create_admin(app: Flask, password: str, reason: str) -> None:
    result = app.test_cli_runner().invoke(args=["create-admin", "erika-mustermann", "--password-stdin"],
                                             input=password + "\n")
    assert result.exit_code != 0
    assert reason in result.output


@pytest.mark.parametrize("password", ["lang-genug-fuer-erika", "Korrekt Pferd Batterie Heftklammer"])
def test_good_passwords_are_accepted(app: Flask, password: str) -> None:
    result = app.test_cli_runner().invoke(args=["create-admin", "erika", "--password-stdin"], input=password + "\n")
    assert result.exit_code == 0, result.output


def test_the_bundled_list_is_the_whole_common_password_list() -> None:
    passwords = common_passwords()
    assert len(passwords) > 19_000
    assert {"123456", "password", "iloveyou", "password1234"} <= passwords


def test_a_password_is_never_a_command_line_argument(app: Flask) -> None:
    runner = app.test_cli_runner()
    refused = runner.invoke(args=["create-admin", "erika", "--password", "lang-genug-fuer-erika"])
    assert refused.exit_code == 2 and "No such option" in refused.output  # it would stand in ps and the history
    asked = runner.invoke(args=["create-admin", "erika"], input="lang-genug-fuer-erika\nlang-genug-fuer-erika\n")
    assert asked.exit_code == 0, asked.output
    assert "lang-genug-fuer-erika" not in asked.output  # asked hidden
    mistyped = runner.invoke(args=["create-admin", "erika"], input="lang-genug-fuer-erika\nanders-getippt-123\n")
    assert mistyped.exit_code != 0
    with app.app_context():
        from views.accounts import verify_login

        assert verify_login("erika", "lang-genug-fuer-erika") is not None
