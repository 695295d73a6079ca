"""Counting the SQL statements a request runs, as SQLite sees them (``statement_log`` fixture in conftest)."""

from __future__ import annotations

import threading
from typing import Callable, Optional

_TRANSACTION_CONTROL = ("BEGIN", "COMMIT", "ROLLBACK", "PRAGMA", "RELEASE", "SAVEPOINT")


class StatementLog:
    """Every SQL statement the app's SQLite connections run for a request, as the database sees it.

    Only statements run in the thread that makes the request count: the
    test client answers in that thread, while the app's background threads
    (delivery threads consuming job events, say) run their own statements
    at moments no test controls.
    """

    def __init__(self) -> None:
        self.statements: list[str] = []
        self._recording_thread: Optional[int] = None

    def trace(self, statement: str) -> None:
        if threading.get_ident() == self._recording_thread \
                and not statement.lstrip().upper().startswith(_TRANSACTION_CONTROL):
            self.statements.append(statement)

    def count(self, request: Callable[[], object]) -> int:
        self.statements.clear()
        self._recording_thread = threading.get_ident()
        try:
            request()
        finally:
            self._recording_thread = None
        return len(self.statements)
