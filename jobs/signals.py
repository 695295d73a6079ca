"""Signals the job system sends, with blinker as Flask's own signals do.

``job_finished`` is sent once a job's final state is stored (completed or
failed, by its worker or by the sweep that gave up on a lost worker), with the
Flask app as sender and ``job``, a ``JobSnapshot`` of the final state. A
receiver runs in the thread that stored the outcome, before that worker takes
its next job: it must be quick (queue work, do not do it).
"""

from __future__ import annotations

from blinker import Namespace

_signals = Namespace()

job_finished = _signals.signal("job-finished")
