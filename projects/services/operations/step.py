"""What every step shares: its signature, its failure, and bringing the project's stack up.

A step gets its Operation (the project is `operation.project`), asks the engine
for the end state and returns the project's fields to set. Steps are
idempotent: running one twice converges. The status a kind settles to on
success is its declaration's (operations/kinds.py), not the step's; a step
returns a status only where it depends on what it found (a rollback settles
as the project was, a restore into a failed project as its stack is). A step
that fails raises StepFailed with the project's fields afterwards, or lets a
RuntimeFailure through (the project is failed).
"""

import copy
import logging
from collections.abc import Callable

from django.utils import timezone

from projects.models import Operation, Project
from projects.runtime import Runtime, RuntimeFailure, StackSpec, VolumeMissing
from projects.selectors import backup_to_restore
from projects.services.operations.tenant_safety import project_wait_ready
from projects.services.settings.certificates import project_certificate_ensure
from projects.stack.changes import STACK_REVISION
from projects.stack.spec import stack_spec
from projects.stack.up import SubnetsExhausted, project_stack_up

logger = logging.getLogger(__name__)

S = Project.Status

# What a step returns: the project's fields to set when it succeeds.
StepResult = dict[str, object]
Step = Callable[[Operation], StepResult]

# A project's fields once no upgrade's old volume is kept (after a rollback, a drop, the purge).
NO_KEPT_VOLUME: StepResult = {"kept_postgres_version": "", "kept_volume_version": "", "kept_owner_is_superuser": False, "kept_at": None}


class StepFailed(Exception):
    """A step's failure that knows the project's fields afterwards (a failed backup leaves the status alone)."""

    def __init__(self, message: str, *, outcome: StepResult) -> None:
        super().__init__(message)
        self.outcome = outcome


def stack_up(operation: Operation, *, start: bool = True, action: str = "start", new_volume: bool = False) -> StackSpec:
    """Create (and start) what is missing of the project's stack, its network on the project's own subnet; its spec.

    A project that has run holds its data in its volume: when that volume is
    gone, a new one would be an empty database, so the step fails (the project
    `failed`, health `missing`, the error naming the fix) unless the owner
    allowed it for this operation (or `new_volume`: a backup's restore fills
    it). `action` names the request in that error.
    """
    project = operation.project
    create_volume = new_volume or project.first_running_at is None or operation.allow_empty_database
    project_certificate_ensure(project)  # issued on the first start, renewed when due
    try:
        return project_stack_up(project, start=start, create_volume=create_volume)
    except SubnetsExhausted as exc:
        raise StepFailed(str(exc), outcome={"status": S.FAILED}) from None
    except VolumeMissing:
        raise StepFailed(
            volume_gone_error(project, action=action),
            outcome={"status": S.FAILED, "health": Project.Health.MISSING, "observed_at": timezone.now()},
        ) from None


def stack_up_ready(operation: Operation, runtime: Runtime) -> StackSpec:
    """Create and start what is missing of the project's stack, and return (its spec) once it answers."""
    spec = stack_up(operation, start=True, action="start")
    return project_wait_ready(operation.project, spec, runtime)


def running_fields(project: Project) -> StepResult:
    """A stack just brought up with the project's current spec: healthy, and no change waits for a restart (no status)."""
    now = timezone.now()
    fields: StepResult = {
        "health": Project.Health.HEALTHY, "observed_at": now, "first_running_at": project.first_running_at or now,
        "restart_pending": False, "stack_revision": STACK_REVISION,
    }  # fmt: skip
    if project.first_running_at is not None and project.stack_revision < STACK_REVISION:
        # It ran before with an older stack: its page says what this start changed (a new project's says nothing).
        fields |= {"stack_revised_from": project.stack_revision, "stack_revised_at": now}
    return fields


def running(project: Project) -> StepResult:
    """`running_fields` with the status, for a step whose kind settles as it finds (or a failure that leaves it running)."""
    return {"status": S.RUNNING, **running_fields(project)}


def stopped() -> StepResult:
    return {"status": S.STOPPED, "health": Project.Health.DOWN, "observed_at": timezone.now()}


def project_as(project: Project, **fields: object) -> Project:
    """The project as it will be (or was) with `fields`, for its spec: an unsaved copy, the row is the step's outcome."""
    other = copy.copy(project)
    for name, value in fields.items():
        setattr(other, name, value)
    return other


def volume_remove_quietly(runtime: Runtime, volume: str) -> None:
    try:
        runtime.volume_remove(volume)
    except RuntimeFailure:
        # Labelled with the project: never an orphan; the next upgrade or the purge removes it.
        logger.warning("volume %s not removed yet", volume, exc_info=True)


def volume_gone_fix(project: Project, *, action: str = "start") -> str:
    """What the owner can do about a project whose data volume is gone: restore a backup, or `action` with an empty database."""
    pid = project.public_id
    empty = f'POST /v1/projects/{pid}/{action} {{"allow_empty_database": true}}'
    backup = backup_to_restore(project)
    if backup is None:
        return f"it has no backup to restore; to {action} it with an empty database, its owner can ask: {empty}"
    taken = f"{backup.state}, taken {backup.created_at:%Y-%m-%d %H:%M} UTC"
    restore = f'POST /v1/backups/{backup.public_id}/restore {{"confirm": "{pid}"}}'
    if action == "restore":
        # A deleted project takes no backup restore: it comes back first.
        return f"its owner can bring it back with an empty database ({empty}), then restore backup {backup.public_id} ({taken}) into it: {restore}"
    return f"restore backup {backup.public_id} ({taken}): {restore}, then start it; or, to start it with an empty database, its owner can ask: {empty}"


def volume_gone_error(project: Project, *, action: str) -> str:
    volume = stack_spec(project).volume
    doing = "starting would give it" if action == "start" else "restoring would bring it back with"
    return f"its data volume {volume} is gone, and {doing} a new, empty database, so nothing was done. To fix it: {volume_gone_fix(project, action=action)}"
