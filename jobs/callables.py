"""Name job functions so that another process can import them, and import them again.

A job stored in the database names its function as ``"module:qualname"``
(RQ's convention), so any worker process can run it. ``enqueue`` also takes
such a string directly.
"""

from __future__ import annotations

import importlib
import re
from typing import Any, Callable, Optional

_PATH = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$")


def load_callable(path: str) -> Callable[..., Any]:
    """Import ``"module:qualname"`` and return the object it names."""
    module, _, qualname = path.partition(":")
    target: Any = importlib.import_module(module)
    for part in qualname.split("."):
        target = getattr(target, part)
    return target


def callable_path(func: Callable[..., Any]) -> Optional[str]:
    """``module:qualname`` when another process can import exactly this function, else None."""
    module, qualname = getattr(func, "__module__", None), getattr(func, "__qualname__", "")
    if not module or "<" in qualname or module == "__main__":
        return None
    try:
        target = load_callable(f"{module}:{qualname}")
    except (ImportError, AttributeError):
        return None
    return f"{module}:{qualname}" if target is func else None


def resolve_job_function(func: Any) -> tuple[Callable[..., Any], Optional[str]]:
    """Return ``(function, its import path or None)`` for what ``enqueue`` was given.

    Refuses anything but a callable or a ``"module:function"`` string at once,
    with ``TypeError``: a job that cannot run must not wait in the queue to
    fail later.
    """
    if isinstance(func, str):
        if not _PATH.match(func):
            raise TypeError(f"a job function given by name must look like 'module:function', not {func!r}")
        try:
            target = load_callable(func)
        except (ImportError, AttributeError) as exc:
            raise TypeError(f"job function {func!r} cannot be imported: {exc}") from exc
        if not callable(target):
            raise TypeError(f"{func!r} names {type(target).__name__}, not a function")
        return target, func
    if not callable(func):
        raise TypeError(f"enqueue needs a callable or a 'module:function' string, not {type(func).__name__}")
    return func, callable_path(func)
