"""Storage of the durable job queue (``job_queue.py`` is its public face)."""
