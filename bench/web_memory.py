"""Benchmark: the web process's memory after many scrapes, and what each scrape's child holds.

Why
    The web process runs for weeks and starts every scrape; what it keeps
    per scrape shows as a peak resident set that grows with the number of
    scrapes. The scrape itself runs in a child process that ends with it, so
    its memory comes back whatever it held; the supervisor logs its peak.

How
    ``flask --app app run`` (the default shape: jobs in the web process's
    workers, each scrape in a child) against the loopback sources (536 Miles &
    More partner pages of a live page's size, 706 PAYBACK shops), politeness
    lifted. Both scrapers are started through the API and awaited, ``--rounds``
    times. After the first round and after the last, the web process's
    ``VmHWM`` (peak resident set) is read from ``/proc``; the children's peaks
    come from the server's log. Linux only.

    python bench/web_memory.py [--rounds 20]
"""

from __future__ import annotations

import argparse
import asyncio
import re
import secrets
import statistics
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

BENCH = Path(__file__).resolve().parent
for folder in (str(BENCH.parent), str(BENCH)):
    if folder not in sys.path:
        sys.path.insert(0, folder)

from open_loop import HttpClient  # noqa: E402
from processes import ProcessGroup  # noqa: E402
from served_app import (REQUEST_TIMEOUT, SCRAPES, START_TIMEOUT, Plan, app_environment, free_port,  # noqa: E402
                        start_app_processes, start_job, start_source, wait_final, wait_ready)
from worker_memory import proc_status_kib  # noqa: E402

PEAK = re.compile(r"\((\w+)\): child \d+ ended \(completed\), peak memory ([\d.]+) MiB")


@dataclass
class WebMemory:
    rounds: int
    after_first_kib: int  # VmHWM of the web process after the first round
    after_last_kib: int  # ... and after the last
    child_peaks_mib: dict[str, list[float]] = field(default_factory=dict)  # per scraper


async def _rounds(rounds: int, port: int, token: str, group: ProcessGroup) -> list[int]:
    client = HttpClient("127.0.0.1", port, {"Authorization": f"Bearer {token}", "Accept": "application/json"},
                        REQUEST_TIMEOUT)
    peaks = []
    try:
        await wait_ready(client, group)
        for _ in range(rounds):
            ids = [await start_job(client, endpoint) for _name, endpoint in SCRAPES]
            finals: dict[str, dict] = {}
            await wait_final(client, ids, finals, group, START_TIMEOUT * 4, every=0.2)
            failed = [record for record in finals.values() if record["status"] != "completed"]
            if len(finals) < len(ids) or failed:
                raise RuntimeError(f"a scrape did not complete: {failed or 'timeout'}")
            peaks.append(proc_status_kib(group.started[-1].process.pid, "VmHWM"))
    finally:
        client.close()
    return peaks


def measure(rounds: int = 20) -> WebMemory:
    """Serve the app with ``flask run``, scrape both sources ``rounds`` times, read the web process's peaks."""
    with tempfile.TemporaryDirectory(prefix="bench-web-memory-") as scratch:
        folder = Path(scratch)
        sources, app = ProcessGroup(folder / "source"), ProcessGroup(folder / "app")
        try:
            source = start_source(sources)
            token, port = secrets.token_urlsafe(32), free_port()
            plan = Plan("flask", "process", "lifted")
            env = app_environment(plan, source, folder, token)
            start_app_processes(plan, app, env, port, ())
            peaks = asyncio.run(_rounds(rounds, port, token, app))
            log = app.output()
        finally:
            app.stop()
            sources.stop()
    children: dict[str, list[float]] = {}
    for name, mib in PEAK.findall(log):
        children.setdefault(name, []).append(float(mib))
    return WebMemory(rounds, peaks[0], peaks[-1], children)


def main(argv: Optional[list[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=20)
    args = parser.parse_args(argv)
    memory = measure(args.rounds)
    grew = (memory.after_last_kib - memory.after_first_kib) / 1024
    print(f"web process (flask run) peak RSS after 1 round of both scrapes: {memory.after_first_kib / 1024:.1f} MiB; "
          f"after {memory.rounds}: {memory.after_last_kib / 1024:.1f} MiB ({grew:+.1f} MiB; target within 10 MB)")
    for name, peaks in sorted(memory.child_peaks_mib.items()):
        print(f"  {name} children: peak RSS median {statistics.median(peaks):.1f} MiB, max {max(peaks):.1f} MiB "
              f"({len(peaks)} runs)")


if __name__ == "__main__":
    main()
