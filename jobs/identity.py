"""Who runs a job: this process's token, its workers' owner names, and whether an owner still lives.

An owner name is ``host:pid:nonce:worker``. The nonce tells two processes
apart that had the same pid (a container restarts as pid 1 every time).
Knowing host and pid, a process can tell at start-up that a job still marked
running belongs to a process of this machine that no longer exists (kill -9,
a crash), and requeue it at once instead of waiting for its lease to end.
"""

from __future__ import annotations

import os
import socket
import uuid
from typing import Optional

HOST_LENGTH = 30
NONCE_LENGTH = 8


def this_host() -> str:
    """This machine's name as owner names carry it (no ``:``, which separates the parts)."""
    return socket.gethostname()[:HOST_LENGTH].replace(":", "_")


def process_token() -> str:
    """A name for this process's queue: ``host:pid:nonce``."""
    return f"{this_host()}:{os.getpid()}:{uuid.uuid4().hex[:NONCE_LENGTH]}"


def owner_name(token: str, worker: str) -> str:
    """The owner name of one worker (thread) of the process ``token``."""
    return f"{token}:{worker}-{uuid.uuid4().hex[:6]}"


def host_prefix() -> str:
    """What every owner name of this machine starts with."""
    return f"{this_host()}:"


def _pid_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, it is just not ours to signal
        return True
    return True


def is_dead_local_owner(owner: Optional[str], own_token: str) -> bool:
    """True when ``owner`` was a process of this machine that no longer runs.

    False whenever that cannot be known for sure (another machine, a name of
    an older format, a pid that exists again): such jobs wait for their lease.
    """
    parts = (owner or "").split(":")
    if len(parts) < 4 or parts[0] != this_host() or not parts[1].isdigit():
        return False
    pid, token = int(parts[1]), ":".join(parts[:3])
    if pid == os.getpid():
        return token != own_token  # our pid, but an earlier life of it
    return not _pid_exists(pid)
