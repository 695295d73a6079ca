"""Files only the app's own user may read: the instance folder and the secrets in it.

Each is created with its final mode (folder 0700, files 0600) by the call
that creates it, never made private by a ``chmod`` afterwards: in between,
another user could have opened it. A file with content is written to a
private draft first and then put in place in one step, so nobody ever reads
half of it. SQLite gives its ``-wal`` and ``-shm`` files the mode of the
database file, so a database created 0600 keeps them private too.
"""

from __future__ import annotations

import logging
import os
import secrets
import stat
from pathlib import Path
from typing import Optional

from sqlalchemy.engine import make_url

log = logging.getLogger(__name__)

PRIVATE_FILE_MODE = 0o600
PRIVATE_FOLDER_MODE = 0o700
INITIAL_PASSWORD_FILE = "initial-admin-password"


def make_private_folder(path: str) -> None:
    """Create ``path`` (0700) if missing; warn when an existing one is open to others."""
    os.makedirs(path, mode=PRIVATE_FOLDER_MODE, exist_ok=True)
    mode = stat.S_IMODE(os.stat(path).st_mode)
    if mode & 0o077:
        log.warning("Instanzordner %s ist für andere Benutzer zugänglich (Modus %o): chmod 700 empfohlen",
                    path, mode)


def write_private_file(path: Path, text: str, *, replace: bool) -> bool:
    """Write ``text`` to ``path`` (0600) through a private draft; return False if it existed.

    ``replace=False`` keeps an existing file (``os.link`` fails on it): of
    several processes writing at once exactly one wins and all read the same.
    """
    draft = path.with_name(f".{path.name}-{os.getpid()}-{secrets.token_hex(4)}")
    descriptor = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE_MODE)
    with os.fdopen(descriptor, "w") as file:
        file.write(text)
    try:
        if replace:
            os.replace(draft, path)
            return True
        os.link(draft, path)
        return True
    except FileExistsError:
        return False
    finally:
        if draft.exists():
            draft.unlink()


def sqlite_file(uri: str) -> Optional[Path]:
    """The file of a SQLite URI, None for other databases and in-memory ones."""
    url = make_url(uri)
    if url.get_backend_name() != "sqlite" or not url.database or url.database == ":memory:":
        return None
    if url.database.startswith("file:") or url.query.get("uri"):
        return None  # SQLite URI filenames: their options (mode=...) decide; we do not guess
    return Path(url.database)


def create_private_sqlite_file(uri: str) -> None:
    """Create the SQLite database file empty with mode 0600 before SQLite opens it.

    SQLite would create it 0644 (less the umask): readable by every local
    user, with the password and token hashes in it. An empty file is a valid
    empty database.
    """
    path = sqlite_file(uri)
    if path is None:
        return
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE_MODE))
    except FileExistsError:
        pass


def initial_password_path(instance_path: str) -> Path:
    return Path(instance_path) / INITIAL_PASSWORD_FILE


def forget_initial_password(instance_path: str) -> None:
    """Delete the first-start password file: it has been used or replaced."""
    initial_password_path(instance_path).unlink(missing_ok=True)
