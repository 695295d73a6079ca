"""Keep a serving process's own heavy requests from stalling its other threads for long.

Scrapes run in child processes, but the web process still does CPU-heavy
work of its own: ranking the comparison after a store (``/``, 100–200 ms of
Python for 1,200 shops) creates tens of thousands of long-lived objects.
Every moment one thread holds the interpreter lock is one the others wait,
and two settings decide how long such a wait can last; a serving process
sets both at the end of start-up:

- **Full garbage collections** walk every tracked object with the lock held:
  130,000–150,000 after start-up, 60–100 ms per collection, and a ranking
  rebuild triggers them. ``gc.freeze()`` moves the start-up objects (they
  live as long as the process) out of the collector's view.
- **The switch interval**: a thread that wants the lock back waits until the
  holder drops it, at most ``sys.getswitchinterval()`` (5 ms by default), and
  a request makes dozens of such waits. ``SERVER_SWITCH_INTERVAL`` (1 ms)
  shortens each.

Measured with ``bench/responsiveness.py --servers flask`` (scrapes in
children, ``/`` every 2 s): busy ``job_status`` p95 4.9× and 2.2× idle with
both, 10× with the switch interval alone, 19× with neither; without the ``/``
loads 1.2× either way.
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


def tune_for_serving(config: Mapping[str, Any]) -> None:
    """Set this serving process's switch interval and freeze its start-up objects.

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
