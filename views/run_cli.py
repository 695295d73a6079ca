"""``flask runs held`` and ``flask runs accept RUN_ID``: the drift guard's held runs from the shell."""

from __future__ import annotations

import click
from flask import Flask
from flask.cli import AppGroup

from scrapers.held_runs import AcceptRefused, RunNotFound, accept_run, held_runs

runs_cli = AppGroup("runs", help="Scrape runs the drift guard held: list them, accept one.")


@runs_cli.command("held")
def held_command() -> None:
    """List held runs: id, source, when, and why they were held."""
    waiting = held_runs()
    if not waiting:
        click.echo("Keine angehaltenen Läufe.")
    for run in waiting:
        finished = f"{run.finished_at:%Y-%m-%d %H:%M}" if run.finished_at else "-"
        click.echo(f"{run.id}\t{run.scraper}\t{finished} UTC\t{run.message}")


@runs_cli.command("accept")
@click.argument("run_id", type=int)
def accept_command(run_id: int) -> None:
    """Apply held run RUN_ID as if it had passed the guard (deactivations included)."""
    try:
        run, stored = accept_run(run_id, "Kommandozeile")
    except (RunNotFound, AcceptRefused) as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"Lauf {run.id} ({run.scraper}) übernommen: {stored.added} neu, {stored.updated} aktualisiert, "
               f"{stored.deactivated} deaktiviert.")


def init_app(app: Flask) -> None:
    app.cli.add_command(runs_cli)
