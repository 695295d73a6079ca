"""Counting the SQL statements a request runs, as SQLite sees them (``statement_log`` fixture in conftest)."""

from __future__ import annotations

from typing import Callable

_TRANSACTION_CONTROL = ("BEGIN", "COMMIT", "ROLLBACK", "PRAGMA", "RELEASE", "SAVEPOINT")


class StatementLog:
    """Every SQL statement any SQLite connection of the app runs, as the database sees it."""

    def __init__(self) -> None:
        self.statements: list[str] = []
        self.recording = False

    def trace(self, statement: str) -> None:
        if self.recording and not statement.lstrip().upper().startswith(_TRANSACTION_CONTROL):
            self.statements.append(statement)

    def count(self, request: Callable[[], object]) -> int:
        self.statements.clear()
        self.recording = True
        try:
            request()
        finally:
            self.recording = False
        return len(self.statements)
