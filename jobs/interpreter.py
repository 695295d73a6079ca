"""Share one interpreter between web threads and job threads without long stalls of the web.

In the default shape (``flask run``, one gunicorn process) the job threads
run in the web process, and every moment a job thread holds the interpreter
lock is one a web thread waits. Two settings of the interpreter decide how
long such a wait can last, and a serving process sets both at start-up:

- **The cyclic garbage collector's full collections.** A full collection
  walks every tracked object with the lock held. After start-up the web
  process has 130,000–150,000 of them (Flask, SQLAlchemy, Jinja, the parsers),
  so one full collection stalled every thread for 60–100 ms, and a scrape
  triggers several (it creates many long-lived objects). ``gc.freeze()`` after
  start-up moves the start-up objects out of the collector's view: they live
  as long as the process anyway. Later collections walk only what came after
  (measured with the same scrape running: 102 ms before, 11–26 ms after).
- **The switch interval.** A thread that wants the lock back (a web thread
  after each socket or database call) waits until the holder drops it, at
  most ``sys.getswitchinterval()`` (5 ms by default). A request makes dozens of
  such calls, so behind a busy job thread its answer came late by several
  intervals. ``SERVER_SWITCH_INTERVAL`` (1 ms) shortens each wait.
"""

from __future__ import annotations

import gc
import logging
import sys
from typing import Any, Mapping

log = logging.getLogger(__name__)

DEFAULT_CONFIG: dict[str, Any] = {
    # Seconds a thread may keep the interpreter lock while another waits for it (Python's default 0.005).
    "SERVER_SWITCH_INTERVAL": 0.001,
    # Keep the objects of start-up out of the garbage collector's full collections.
    "SERVER_FREEZE_STARTUP_OBJECTS": True,
}


def share_with_job_threads(config: Mapping[str, Any]) -> None:
    """Set up this serving process's interpreter so job threads cannot stall the web threads for long.

    Call once, at the end of start-up (everything imported and registered).
    Process-wide: not for test processes that build many apps.
    """
    interval = float(config["SERVER_SWITCH_INTERVAL"])
    if interval > 0:
        sys.setswitchinterval(interval)
    if config["SERVER_FREEZE_STARTUP_OBJECTS"]:
        gc.collect()  # start-up's garbage goes now, not into the frozen set
        gc.freeze()
        log.debug("%d start-up objects frozen out of garbage collection", gc.get_freeze_count())
