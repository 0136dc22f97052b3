"""`manage.py worker`: django-tasks-db's `db_worker`, after settling what dead workers left.

A worker that was killed mid-operation leaves it `running` with a heartbeat
that stops ageing; `up` restarts the process, and this is the moment to fail
such operations (see operation_recover_stale) so their projects can be retried
at once instead of at the next sync pass. Same options as `db_worker`.
"""

from typing import Any

from django_tasks_db.management.commands.db_worker import Command as DbWorkerCommand

from projects.services.operations import operation_recover_stale


class Command(DbWorkerCommand):
    help = "Fail operations that dead workers left in flight, then run a database task worker (db_worker's options)."

    def handle(self, *args: Any, **options: Any) -> None:
        for operation in operation_recover_stale():
            self.stderr.write(f"operation {operation.public_id} ({operation.kind}) failed: {operation.error}")
        super().handle(*args, **options)
