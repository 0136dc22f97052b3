"""Operations: every change to a project is one, queued here and run by the worker.

The life of one operation:
1. `operation_enqueue` (web side, one transaction): check the project's status
   accepts the action, insert the Operation (the partial unique constraint
   refuses a second one in flight), set the transitional status, enqueue the task.
2. `run_operation`, the task (worker side), calls `operation_run`, which
   looks the kind's step up in steps.STEPS; `operation_execute` marks the
   operation running and commits, runs the step with no transaction open,
   then records the outcome and commits.

The task is defined here, beside the queue it serves, on the steps table below
it: steps never import this module. projects/tasks.py re-exports it, because
django-tasks-db stored the task path `projects.tasks.run_operation` in rows
queued before the task moved here (LEGACY_TASK_PATH).
"""

import logging
import threading
import time
import traceback
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth.models import User
from django.db import IntegrityError, close_old_connections, connection, transaction
from django.db.models import Q, QuerySet
from django.tasks import TaskResultStatus, task, task_backends
from django.utils import timezone
from django_tasks_db.backend import DatabaseBackend
from django_tasks_db.models import DBTaskResult

from projects import wakeup
from projects.models import Backup, Operation, Project
from projects.runtime import RuntimeFailure, RuntimeUnavailable, get_runtime

from projects.services.access import project_check_actor
from projects.services.errors import InvalidTransition, OperationInFlight
from projects.services.redact import secrets_redact
from projects.services.operations.steps import STEPS, Step, StepFailed, StepResult

logger = logging.getLogger(__name__)

# Where the task lived until it moved beside the queue: rows queued then still name it.
LEGACY_TASK_PATH = "projects.tasks.run_operation"


def _lock_project(project_id: int) -> Project:
    # select_for_update serialises actions on one project on PostgreSQL; SQLite
    # gets the same from its IMMEDIATE transactions.
    return Project.objects.select_for_update().get(pk=project_id)


def operation_enqueue(
    *, project: Project, kind: str, action: str, transitional: str | None, requested_by: User | None = None, backup: Backup | None = None,
    allow_empty_database: bool = False, postgres_version: str = "", target_node: str = "",
) -> Operation:  # fmt: skip
    """Queue `kind` for `project` if its status accepts `action`; raise InvalidTransition or OperationInFlight.

    `transitional` None keeps the status (backups read a project, they do not
    change it); `backup` is the Backup the operation makes, verifies or restores;
    `allow_empty_database` lets a start or restore make a new, empty data volume;
    `postgres_version` is the major an upgrade goes to.
    """
    # Every way in queues here, so no edge can forget who may act.
    project_check_actor(user=requested_by, project=project)
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
                operation = Operation.objects.create(
                    project=locked, kind=kind, requested_by=requested_by, backup=backup, prior_status=locked.status,
                    allow_empty_database=allow_empty_database, postgres_version=postgres_version, target_node=target_node,
                )  # fmt: skip
        except IntegrityError:
            in_flight = locked.operations.filter(state__in=Operation.IN_FLIGHT).first()
            if in_flight is None:
                # It settled between the insert and this read: nothing is in flight now.
                raise InvalidTransition(f"another operation on this project just finished; {action} it again") from None
            raise OperationInFlight(in_flight) from None
        if transitional is not None:
            locked.status = transitional
            locked.save(update_fields=["status", "updated_at"])
        # Inside the transaction on purpose: with the database backend the task
        # row commits with the operation, so neither exists without the other.
        run_operation.enqueue(operation_id=operation.pk)
        wakeup.wake_on_commit(wakeup.QUEUED)
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
        outcome, error = _step_run(operation, step, project)
    finally:
        stop_beating()

    with transaction.atomic():
        current = Operation.objects.select_for_update().filter(pk=operation.pk).values_list("state", flat=True).first()
        if current != Operation.State.RUNNING:
            # operation_recover_stale settled it while the step ran (our heartbeat
            # stalled past the limit). Its verdict stands: the project is failed,
            # and a retry converges from whatever the step left on the engine.
            logger.warning("operation %s was settled as %s while it ran; its outcome is dropped", operation.public_id, current)
            operation.refresh_from_db()
            return operation
        for name, value in outcome.items():
            setattr(project, name, value)
        project.save(update_fields=[*outcome.keys(), "updated_at"])
        operation.state = Operation.State.FAILED if error else Operation.State.SUCCEEDED
        operation.error = error
        operation.finished_at = timezone.now()
        operation.save(update_fields=["state", "error", "finished_at"])
        if error:
            operation_backups_settle(operation, error=error, now=operation.finished_at)
        wakeup.wake_on_commit(wakeup.SETTLED)
    logger.info(
        "operation %s: %s of project %s %s%s",
        operation.public_id, operation.kind, project.public_id, operation.state, f": {error}" if error else "",
    )  # fmt: skip
    return operation


def _step_run(operation: Operation, step: Step, project: Project) -> tuple[StepResult, str]:
    """The step's outcome and error text ("" on success); never raises."""
    try:
        # An engine that cannot be reached at all changes nothing: the operation
        # fails naming the engine's address, and the project goes back to the
        # settled status it had, not to failed, since nothing happened to it. A
        # create had none (provisioning is not a place to stay): it fails.
        get_runtime().ping()
    except RuntimeUnavailable as exc:
        prior = operation.prior_status
        return {"status": prior if prior in Project.SETTLED else Project.Status.FAILED}, str(exc)
    try:
        # No transaction is open here: the engine can take seconds.
        return step(project), ""
    except StepFailed as exc:
        return exc.outcome, secrets_redact(str(exc), project)
    except RuntimeFailure as exc:
        # The engine's words can echo what it was given (an environment, a
        # command line): the project's secrets never reach the operation row.
        return {"status": Project.Status.FAILED}, secrets_redact(str(exc), project)
    except Exception as exc:
        # Not the engine: a bug of ours. Log the traceback for the operator; the
        # operation gets a sentence without it (tracebacks can carry values).
        trace = secrets_redact("".join(traceback.format_exception(exc)), project)
        logger.error("operation %s failed unexpectedly\n%s", operation.public_id, trace.rstrip())
        return {"status": Project.Status.FAILED}, f"internal error ({type(exc).__name__}); see the worker's log"


STALE_RUNNING_ERROR = (
    "the worker running this operation stopped (no heartbeat for {seconds} s): it was killed or crashed; "
    "retry the action, it converges from what the worker left"
)
STALE_QUEUED_ERROR = (
    "this operation was never started: its task was lost or its worker died before starting it; retry the action"
)


def operation_recover_stale(*, now: datetime | None = None) -> list[Operation]:
    """Fail the operations a dead worker left in flight, and settle their projects as failed.

    Running ones are stale once their heartbeat is older than
    BERTH_STALE_OPERATION_SECONDS; queued ones once no task is left that would
    start them. Run by every sync pass and by `manage.py worker` as it starts.
    """
    now = now or timezone.now()
    seconds = settings.BERTH_STALE_OPERATION_SECONDS
    cutoff = now - timedelta(seconds=seconds)
    recovered: list[Operation] = []
    running = Operation.objects.filter(state=Operation.State.RUNNING, heartbeat_at__lt=cutoff)
    for pk in running.values_list("pk", flat=True):
        still = {"state": Operation.State.RUNNING, "heartbeat_at__lt": cutoff}
        settled = _operation_settle_stale(pk, still, STALE_RUNNING_ERROR.format(seconds=seconds), now)
        if settled:
            recovered.append(settled)
    queued = Operation.objects.filter(state=Operation.State.QUEUED, created_at__lt=cutoff)
    for pk in queued.values_list("pk", flat=True):
        if _task_may_still_start(pk, cutoff):
            continue
        settled = _operation_settle_stale(pk, {"state": Operation.State.QUEUED}, STALE_QUEUED_ERROR, now)
        if settled:
            recovered.append(settled)
    return recovered


def _operation_settle_stale(pk: int, still: dict[str, object], error: str, now: datetime) -> Operation | None:
    with transaction.atomic():
        # Re-checked under the lock: a worker that was only slow may have
        # beaten (or finished) since the first read.
        operation = Operation.objects.select_for_update().filter(pk=pk, **still).select_related("project").first()
        if operation is None:
            return None
        project = _lock_project(operation.project_id)
        operation.state = Operation.State.FAILED
        operation.error = error
        operation.finished_at = now
        operation.save(update_fields=["state", "error", "finished_at"])
        # The only in-flight operation owned the transitional status: failed is
        # the settled state from which the same action is retried. A backup
        # never changed the status, so it keeps the one it found, except a
        # restore, which may have dropped the database before loading it: its
        # content is unknown now, and failed says so.
        if project.status not in Project.SETTLED or operation.kind == Operation.Kind.RESTORE_BACKUP:
            project.status = Project.Status.FAILED
            project.save(update_fields=["status", "updated_at"])
        operation_backups_settle(operation, error=error, now=now)
        _task_mark_lost(operation.pk, error)
        wakeup.wake_on_commit(wakeup.SETTLED)
    logger.warning("operation %s: %s of project %s failed: %s", operation.public_id, operation.kind, project.public_id, error)
    return operation


def operation_backups_settle(operation: Operation, *, error: str, now: datetime) -> int:
    """Fail the backups a failed operation left running (the one it made, a restore's safety one), with its reason.

    Called in the transaction that fails the operation, wherever it fails (its
    step, an unreachable engine before the step ran, a dead worker): a backup
    never says "running" after its operation has ended.
    """
    return Backup.objects.filter(Q(pk=operation.backup_id) | Q(operation=operation), state=Backup.State.RUNNING).update(
        state=Backup.State.FAILED, error=error, finished_at=now
    )


def _task_rows(operation_pk: int) -> "QuerySet[DBTaskResult[Any, Any]] | None":
    """django-tasks-db's rows for this operation's task, or None with another tasks backend."""
    if not isinstance(task_backends["default"], DatabaseBackend):
        return None
    paths = {run_operation.module_path, LEGACY_TASK_PATH}
    return DBTaskResult.objects.filter(task_path__in=paths, args_kwargs__kwargs__operation_id=operation_pk)


def _task_may_still_start(operation_pk: int, cutoff: datetime) -> bool:
    """Whether a queued operation still has a task that a live worker will (or just did) pick up."""
    rows = _task_rows(operation_pk)
    if rows is None:
        # The immediate backend runs the task inside the request that queued
        # it: queued past the limit means that process died.
        return False
    # READY: waiting for a free worker, however long that takes. RUNNING and
    # recently claimed: a live worker is about to mark the operation running.
    return rows.filter(status=TaskResultStatus.READY).exists() or rows.filter(
        status=TaskResultStatus.RUNNING, started_at__gte=cutoff
    ).exists()


def _task_mark_lost(operation_pk: int, error: str) -> None:
    # django-tasks-db never re-runs a task it marked running, so a killed
    # worker's task would say "running" forever; say what happened instead.
    rows = _task_rows(operation_pk)
    if rows is not None:
        rows.filter(status=TaskResultStatus.RUNNING).update(
            status=TaskResultStatus.FAILED,
            finished_at=timezone.now(),
            exception_class_path="projects.services.operations.queue.WorkerLost",
            traceback=error,
        )


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
    """Wait until the operation settles or the timeout runs out; returns it fresh.

    Woken by every settled operation (wakeup.SETTLED), each a primary-key read
    to see whether it was this one; BERTH_POLL_SECONDS is the slow poll under it.
    """
    deadline = time.monotonic() + timeout_s
    with wakeup.listen(wakeup.SETTLED) as listener:
        while True:
            operation.refresh_from_db()
            remaining = deadline - time.monotonic()
            if operation.is_settled or remaining <= 0:
                return operation
            close_old_connections()
            listener.wait(min(remaining, settings.BERTH_POLL_SECONDS))


def operation_run(operation_id: int) -> Operation:
    """The worker's entry point for one operation: its kind's step, run by operation_execute."""
    kind = Operation.objects.values_list("kind", flat=True).get(pk=operation_id)
    return operation_execute(operation_id, STEPS[kind])


@task
def run_operation(operation_id: int) -> str:
    """The task django-tasks-db's worker runs for each queued operation."""
    return operation_run(operation_id).state
