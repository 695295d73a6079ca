"""Durable background jobs for Flask: the public face of the ``jobs`` package.

``from job_queue import job_queue`` gives the seed's API (``enqueue``,
``get_job``, ``get_all_jobs``, ``start``, ``stop``, ``clear_old_jobs``);
``job_queue.init_app(app)`` binds it in the app factory. A job function gets
a ``Job`` handle (``add_message``, ``set_progress``, ``get_progress_percent``);
readers get ``JobSnapshot``s (``to_dict()``, ``refresh()``); ``job_finished``
is sent when a job's outcome is stored. Which module
holds what: README, "Architecture".
"""

from database import utcnow
from jobs.job import Job
from jobs.view import JobSnapshot
from jobs.control import Submission
from jobs.kinds import PROCESS, THREAD, JobCancelled, JobInterrupted, JobKind, JobStopped, JobTimedOut
from jobs.queue import DEFAULT_CONFIG, JobQueue
from jobs.signals import job_finished
from jobs.status import JobStatus

job_queue = JobQueue()

__all__ = ["DEFAULT_CONFIG", "PROCESS", "THREAD", "Job", "JobCancelled", "JobInterrupted", "JobKind", "JobQueue",
           "JobSnapshot", "JobStatus", "JobStopped", "JobTimedOut", "Submission", "job_finished", "job_queue",
           "utcnow"]
