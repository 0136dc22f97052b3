"""Tasks the worker runs (django.tasks; django-tasks-db's db_worker in production).

The task is defined beside the queue it serves (services/operations/queue.py). This
name stays importable: rows queued before it moved store the path
`projects.tasks.run_operation`, which the worker resolves through here.
"""

from projects.services.operations.queue import run_operation

__all__ = ["run_operation"]
