"""Operations: every change to a project is one, queued here and run by the worker.

The life of one operation:
1. `operation_enqueue` (web side, one transaction): check the project's status
   accepts the action, insert the Operation (the partial unique constraint
   refuses a second one in flight), set the transitional status, enqueue the task.
2. `operation_execute` (worker side): mark it running and commit, call the
   engine with no transaction open, then record the outcome and commit.
"""

import logging
import threading
import time
from collections.abc import Callable

from django.conf import settings
from django.db import IntegrityError, close_old_connections, connection, transaction
from django.utils import timezone

from projects.models import Operation, Project
from projects.runtime import RuntimeFailure

from .errors import InvalidTransition, OperationInFlight

logger = logging.getLogger(__name__)

# What a step returns: the project's fields to set when it succeeds, status included.
StepResult = dict[str, object]
Step = Callable[[Project], StepResult]


def _lock_project(project_id: int) -> Project:
    # select_for_update serialises actions on one project on PostgreSQL; SQLite
    # gets the same from its IMMEDIATE transactions.
    return Project.objects.select_for_update().get(pk=project_id)


def operation_enqueue(*, project: Project, kind: str, action: str, transitional: str, requested_by=None) -> Operation:
    """Queue `kind` for `project` if its status accepts `action`; raise InvalidTransition or OperationInFlight."""
    from projects.tasks import run_operation

    with transaction.atomic():
        locked = _lock_project(project.pk)
        in_flight = locked.operations.filter(state__in=Operation.IN_FLIGHT).first()
        if in_flight is not None:
            raise OperationInFlight(in_flight)
        if action not in locked.allowed_actions():
            raise InvalidTransition(
                f"cannot {action} a project that is {locked.status}"
                + (f"; it accepts: {', '.join(sorted(locked.allowed_actions()))}" if locked.allowed_actions() else "")
            )
        try:
            with transaction.atomic():
                operation = Operation.objects.create(project=locked, kind=kind, requested_by=requested_by)
        except IntegrityError:
            raise OperationInFlight(locked.operations.filter(state__in=Operation.IN_FLIGHT).first()) from None
        locked.status = transitional
        locked.save(update_fields=["status", "updated_at"])
        # Inside the transaction on purpose: with the database backend the task
        # row commits with the operation, so neither exists without the other.
        run_operation.enqueue(operation_id=operation.pk)
    project.refresh_from_db()
    return operation


def operation_execute(operation_id: int, step: Step) -> Operation:
    """Run one queued operation to its end. Safe to deliver twice: a settled or running one is left alone."""
    with transaction.atomic():
        operation = Operation.objects.select_related("project").select_for_update().get(pk=operation_id)
        if operation.state != Operation.State.QUEUED:
            logger.info("operation %s is %s, not queued: skipped", operation.public_id, operation.state)
            return operation
        now = timezone.now()
        operation.state = Operation.State.RUNNING
        operation.started_at = now
        operation.heartbeat_at = now
        operation.save(update_fields=["state", "started_at", "heartbeat_at"])
    project = operation.project
    logger.info("operation %s: %s of project %s started", operation.public_id, operation.kind, project.public_id)

    stop_beating = _heartbeat(operation.pk)
    try:
        # No transaction is open here: the engine can take seconds.
        outcome = step(project)
        error = ""
    except RuntimeFailure as exc:
        outcome, error = {"status": Project.Status.FAILED}, str(exc)
    except Exception as exc:
        # Not the engine: a bug of ours. Log the traceback for the operator; the
        # operation gets a sentence without it (tracebacks can carry values).
        logger.exception("operation %s failed unexpectedly", operation.public_id)
        outcome, error = {"status": Project.Status.FAILED}, f"internal error ({type(exc).__name__}); see the worker's log"
    finally:
        stop_beating()

    with transaction.atomic():
        for name, value in outcome.items():
            setattr(project, name, value)
        project.save(update_fields=[*outcome.keys(), "updated_at"])
        operation.state = Operation.State.FAILED if error else Operation.State.SUCCEEDED
        operation.error = error
        operation.finished_at = timezone.now()
        operation.save(update_fields=["state", "error", "finished_at"])
    logger.info(
        "operation %s: %s of project %s %s%s",
        operation.public_id, operation.kind, project.public_id, operation.state, f": {error}" if error else "",
    )  # fmt: skip
    return operation


def _heartbeat(operation_pk: int) -> Callable[[], None]:
    """Touch heartbeat_at every BERTH_HEARTBEAT_SECONDS from a thread; returns its stop switch."""
    stop = threading.Event()
    interval = settings.BERTH_HEARTBEAT_SECONDS

    def beat() -> None:
        try:
            while not stop.wait(interval):
                try:
                    Operation.objects.filter(pk=operation_pk, state=Operation.State.RUNNING).update(
                        heartbeat_at=timezone.now()
                    )
                except Exception:
                    logger.warning("heartbeat of operation %s not recorded", operation_pk, exc_info=True)
        finally:
            connection.close()

    # A daemon that is never joined: a beat blocked on a lock must not hold up
    # the operation it reports on.
    threading.Thread(target=beat, name=f"heartbeat-{operation_pk}", daemon=True).start()
    return stop.set


def operation_wait(operation: Operation, *, timeout_s: float) -> Operation:
    """Poll until the operation settles or the timeout runs out; returns it fresh."""
    deadline = time.monotonic() + timeout_s
    while True:
        operation.refresh_from_db()
        if operation.is_settled or time.monotonic() >= deadline:
            return operation
        close_old_connections()
        time.sleep(0.1)
