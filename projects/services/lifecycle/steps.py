"""The worker's side of the lifecycle: create, start, stop, delete, restore, purge (their statuses: operations/kinds.py)."""

import logging
from datetime import timedelta

from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from projects.models import Backup, ForgottenNode, Operation, Project
from projects.runtime import RuntimeFailure, RuntimeUnavailable, get_runtime
from projects.selectors import project_never_succeeded
from projects.services.backups.take import BackupRefused, backup_safety
from projects.services.operations.step import NO_KEPT_VOLUME, StepFailed, StepResult, running_fields, stack_up, stack_up_ready
from projects.stack.spec import project_volume, stack_spec

logger = logging.getLogger(__name__)

S = Project.Status


def up(operation: Operation) -> StepResult:
    stack_up_ready(operation, get_runtime())
    return running_fields(operation.project)


CREATE_FAILED_HINT = (
    " — retry it, with another postgres_version or api if need be (POST /v1/projects/{id}/start with "
    '{{"postgres_version", "api"}}, or "Retry with…" on its page), or delete and purge it'
)


def create(operation: Operation) -> StepResult:
    try:
        return up(operation)
    except RuntimeUnavailable:
        raise  # the engine went away: a plain retry is the answer, said by the error itself
    except RuntimeFailure as exc:
        # The operation's error says what to do next, not only what went wrong.
        raise type(exc)(f"{exc}{CREATE_FAILED_HINT.format(id=operation.project.public_id)}") from None


def start(operation: Operation) -> StepResult:
    project = operation.project
    if project_never_succeeded(project):
        # A retry, perhaps with another version or flavour: what the failed
        # attempt made (an initdb of another major, an api of another image)
        # goes, so the stack is made afresh. It never ran: nobody's data is there.
        runtime = get_runtime()
        wanted = {c.service: c.image for c in stack_spec(project).containers}
        if any(c.image != wanted.get(c.service, c.image) for c in runtime.stack_state(project.public_id).containers):
            runtime.stack_purge(project.public_id)
    return up(operation)


def stop(operation: Operation) -> StepResult:
    get_runtime().stack_stop(stack_spec(operation.project))
    return {"health": Project.Health.DOWN, "observed_at": timezone.now()}


def delete(operation: Operation) -> StepResult:
    project = operation.project
    get_runtime().stack_remove_containers(project.public_id)
    now = timezone.now()
    return {
        "health": Project.Health.MISSING,
        "observed_at": now,
        # A retried delete keeps the first deletion's clock.
        "deleted_at": project.deleted_at or now,
        "purge_after": project.purge_after or now + timedelta(days=settings.BERTH_DELETE_RETENTION_DAYS),
    }


def restore(operation: Operation) -> StepResult:
    # Recreate the containers on the kept volume and ports, but do not start
    # them: a restored project comes back stopped.
    stack_up(operation, start=False, action="restore")
    return {"health": Project.Health.DOWN, "observed_at": timezone.now(), "deleted_at": None, "purge_after": None, "restart_pending": False}


def purge(operation: Operation) -> StepResult:
    # No destructive action without a backup: a final one, verified, or the purge is refused.
    # On a node an operator forgot, the volume is left to it (and no final
    # backup could be read from it): the forgetting was the deliberate step.
    project = operation.project
    _backup_before_purge(operation)
    get_runtime().stack_purge(project.public_id, given_up=set(ForgottenNode.objects.values_list("name", flat=True)))
    _backups_keep_after_purge(project)
    # Ports and the subnet go back to their pools only now: until a purge they are the project's.
    return {
        "health": Project.Health.MISSING, "observed_at": timezone.now(),
        "db_port": None, "api_port": None, "network_subnet": None, **NO_KEPT_VOLUME,
    }  # fmt: skip


def _backup_before_purge(operation: Operation) -> Backup | None:
    """The purge's final backup, verified; StepFailed (the project stays deleted) when it cannot be taken.

    A project without a data volume has nothing to lose: None.
    """
    project, runtime = operation.project, get_runtime()
    if not runtime.stack_state(project.public_id, volume=project_volume(project)).volume:
        logger.info("purge of %s: no data volume, so no final backup", project.public_id)
        return None
    try:
        return backup_safety(
            operation, trigger=Backup.Trigger.PRE_PURGE, runtime=runtime,
            keep_until=timezone.now() + timedelta(days=settings.BERTH_PURGE_BACKUP_DAYS),
        )  # fmt: skip
    except BackupRefused as exc:
        raise StepFailed(f"purge refused, nothing was removed: the final backup is not good: {exc}", outcome={"status": S.DELETED}) from None


def _backups_keep_after_purge(project: Project) -> int:
    """A purged project's backups go BERTH_PURGE_BACKUP_DAYS after the purge (those with an earlier end keep it)."""
    until = timezone.now() + timedelta(days=settings.BERTH_PURGE_BACKUP_DAYS)
    return project.backups.filter(Q(keep_until__isnull=True) | Q(keep_until__gt=until)).update(keep_until=until)
