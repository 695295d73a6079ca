"""Run a scraper's CPU-heavy step where the job says: off the web process's interpreter lock.

A queued job offers ``offload(fn, *args)`` and ``wait_for(future)`` (its queue's
process pool, see ``jobs/cpu_pool.py``); a test double or a script's reporter
does not, and then the step simply runs in the calling thread. ``fn`` must be
importable and take and return plain data (bytes and settings in, offers out).
"""

from __future__ import annotations

from typing import Any, Callable


def run_step(job: Any, fn: Callable[..., Any], *args: Any, stoppable: bool = True) -> Any:
    """Run ``fn(*args)`` through the job's pool and return its result.

    A cancel of the job ends the wait, unless ``stoppable`` is false (a step
    that commits: the job waits for its end).
    """
    offload = getattr(job, "offload", None)
    if offload is None:
        return fn(*args)
    return job.wait_for(offload(fn, *args), stoppable=stoppable)
