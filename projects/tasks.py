"""Tasks the worker runs (django.tasks; django-tasks-db's db_worker in production)."""

from django.tasks import task


@task
def run_operation(operation_id: int) -> str:
    from projects.services.lifecycle import operation_run

    return operation_run(operation_id).state
