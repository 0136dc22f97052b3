"""`manage.py worker`: django-tasks-db's `db_worker`, woken when an operation is queued, after settling what dead workers left.

A worker that was killed mid-operation leaves it `running` with a heartbeat
that stops ageing; `up` restarts the process, and this is the moment to fail
such operations (see operation_recover_stale) so their projects can be retried
at once instead of at the next sync pass. Same options as `db_worker`; its
`--interval` is the slow poll between wake-ups (projects/wakeup.py), the
safety net for one that never arrives.
"""

import os
from importlib import import_module
from typing import Any

from django.conf import settings
from django.core.management.base import CommandError
from django.db import close_old_connections
from django.db.utils import OperationalError
from django.utils.autoreload import DJANGO_AUTORELOAD_ENV, run_with_reloader
from django_tasks_db.management.commands.db_worker import Command as DbWorkerCommand
from django_tasks_db.management.commands.db_worker import Worker, logger
from django_tasks_db.models import DBTaskResult
from django_tasks_db.utils import exclusive_transaction, is_locked_database_exception

from projects import wakeup
from projects.services.operations.queue import operation_recover_stale


class WakingWorker(Worker):
    """db_worker's loop with its idle `time.sleep(interval)` replaced by a wait that a queued operation ends.

    db_worker offers no hook for its sleep, so the loop is its own, step for
    step (django-tasks-db 0.13), apart from that wait.
    """

    def run(self) -> None:
        logger.info("Starting worker worker_id=%s queues=%s", self.worker_id, ",".join(self.queue_names))
        # Listening before the first look: an operation queued between a look
        # that found nothing and the wait still wakes the wait.
        with wakeup.listen(wakeup.QUEUED) as listener:
            while self.running:
                close_old_connections()
                task_result, retrieved = self.claim_next()
                if task_result is not None:
                    self.run_task(task_result)
                if self.batch and retrieved and task_result is None:
                    logger.info("No more tasks to run for worker_id=%s - exiting gracefully.", self.worker_id)
                    return
                if self.max_tasks is not None and self._run_tasks >= self.max_tasks:
                    logger.info("Run maximum tasks (%d) on worker=%s - exiting gracefully.", self._run_tasks, self.worker_id)
                    return
                close_old_connections()
                if self.running and task_result is None:
                    self.idle(listener)

    def idle(self, listener: wakeup.Listener) -> None:
        """Wait for a wake-up, or the slow poll's interval."""
        listener.wait(self.interval)

    def claim_next(self) -> tuple[DBTaskResult[Any, Any] | None, bool]:
        """The next ready task, claimed for this worker (or None), and whether the queue could be read."""
        tasks = DBTaskResult.objects.ready().filter(backend_name=self.backend_name)
        if not self.process_all_queues:
            tasks = tasks.filter(queue_name__in=self.queue_names)
        if self.excluded_queue_names:
            tasks = tasks.exclude(queue_name__in=self.excluded_queue_names)
        with exclusive_transaction(tasks.db):
            try:
                task_result = tasks.get_locked()
                if task_result is not None:
                    task_result.claim(self.worker_id)
                return task_result, True
            except OperationalError as exc:
                # SQLite's "database is locked": it unlocks; look again.
                if is_locked_database_exception(exc):
                    return None, False
                raise


class Command(DbWorkerCommand):
    help = "Fail operations that dead workers left in flight, then run a database task worker (db_worker's options)."

    def handle(self, *args: Any, **options: Any) -> None:
        for operation in operation_recover_stale():
            self.stderr.write(f"operation {operation.public_id} ({operation.kind}) failed: {operation.error}")
        self.configure_logging(options["verbosity"])
        # The runtime's module (the Docker SDK: a second of CPU on a busy machine) loads now, while
        # the worker is idle, not inside its first operation. Importing connects to nothing.
        import_module("projects.runtime.swarm" if settings.BERTH_RUNTIME == "swarm" else "projects.runtime.docker")
        queue_names = options["queue_name"].split(",")
        excluded = options["exclude_queues"].split(",") if options["exclude_queues"] else []
        if excluded and "*" not in queue_names:
            raise CommandError("--exclude-queues can only be used with --queue-name=*")
        worker = WakingWorker(
            queue_names=queue_names,
            interval=options["interval"],
            batch=options["batch"],
            backend_name=options["backend_name"],
            startup_delay=options["startup_delay"],
            max_tasks=options["max_tasks"],
            worker_id=options["worker_id"],
            excluded_queue_names=excluded,
        )
        if options["reload"] and not options["batch"]:
            if os.environ.get(DJANGO_AUTORELOAD_ENV) == "true":
                worker.configure_signals()
            run_with_reloader(worker.run)
        else:
            worker.configure_signals()
            worker.run()
