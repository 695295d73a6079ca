"""``flask create-admin``, ``create-token``, ``revoke-token``, ``list-tokens``: accounts from the shell."""

from __future__ import annotations

import click
from flask import Flask, current_app
from flask.cli import with_appcontext

from views.accounts import create_api_token, list_api_tokens, revoke_api_token, set_admin_password
from views.passwords import MIN_PASSWORD_LENGTH
from views.timezone import local_time


@click.command("create-admin")
@with_appcontext
@click.argument("username")
@click.option("--password-stdin", is_flag=True,
              help="read the password from the first line of standard input (for scripts); "
                   "without it, it is asked for, hidden, twice")
def create_admin_command(username: str, password_stdin: bool) -> None:
    """Create an admin, or reset an existing admin's password (ending its sessions).

    The password is never an argument: one would stand in ``ps`` and the shell's history.
    """
    if password_stdin:
        password = click.get_text_stream("stdin").readline().rstrip("\r\n")
    else:
        password = click.prompt(f"Passwort (mindestens {MIN_PASSWORD_LENGTH} Zeichen)", hide_input=True,
                                confirmation_prompt="Passwort wiederholen")
    try:
        set_admin_password(username, password)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"Admin {username!r} gespeichert.")


@click.command("create-token")
@with_appcontext
@click.argument("name")
def create_token_command(name: str) -> None:
    """Create a named API token and print it (it is not shown again)."""
    try:
        token = create_api_token(name)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(token)


@click.command("revoke-token")
@with_appcontext
@click.argument("name")
def revoke_token_command(name: str) -> None:
    """Revoke the API token with this name."""
    if not revoke_api_token(name):
        raise click.ClickException(f"Kein aktives Token namens {name!r}.")
    click.echo(f"Token {name!r} widerrufen.")


@click.command("list-tokens")
@with_appcontext
def list_tokens_command() -> None:
    """List API tokens (names and dates only)."""
    click.echo(f"Zeiten in {current_app.config['DISPLAY_TIMEZONE']}")
    for token in list_api_tokens():
        state = f"widerrufen {local_time(token.revoked_at, '%d.%m.%Y')}" if token.revoked_at else "aktiv"
        used = local_time(token.last_used_at, "%d.%m.%Y %H:%M") if token.last_used_at else "nie"
        click.echo(f"{token.name}\t{state}\tzuletzt benutzt: {used}")


def init_app(app: Flask) -> None:
    for command in (create_admin_command, create_token_command, revoke_token_command, list_tokens_command):
        app.cli.add_command(command)
