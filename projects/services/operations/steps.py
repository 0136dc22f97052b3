"""What the worker runs: the step of every operation kind, and the table operations.py looks them up in.

A step gets the project (its operation is the one RUNNING for it), asks the
engine for the end state and returns the project's fields to set. Steps are
idempotent: running one twice converges. A step that fails raises StepFailed
with the project's fields afterwards (a backup that fails leaves the project
as it was; a restore that fails half-way leaves it failed, with the safety
backup to restore), or lets a RuntimeFailure through (the project is failed).

A backup is only called good once it has been restored: `backup_take` dumps
then verifies, and a restore or a purge goes on only after a verified one.
"""

import copy
import logging
import secrets
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from projects.models import Backup, ForgottenNode, Operation, Project
from projects.runtime import Runtime, RuntimeFailure, RuntimeUnavailable, StackSpec, VolumeMissing, get_runtime
from projects.runtime.base import SERVER_SQL_ARGV
from projects.stack.spec import kept_volume, project_volume, stack_spec
from projects.selectors import backup_to_restore, project_never_succeeded

from projects.services.backups.dumps import backup_dump, backup_restore_into, backup_restore_test, db_env, project_db
from projects.services.backups.files import BackupFailed, FileAltered, backup_file_problem
from projects.services.errors import SubnetsExhausted
from projects.stack.up import project_stack_up
from projects.services.ports import project_ports_on_node
from projects.services.settings.certificates import project_certificate_ensure
from projects.services.redact import secrets_redact
from projects.services.upgrades.volumes import UpgradeFailed, extensions_missing, upgrade_volume_fill

logger = logging.getLogger(__name__)

S = Project.Status
B = Backup.State

# What a step returns: the project's fields to set when it succeeds, status included.
StepResult = dict[str, object]
Step = Callable[[Project], StepResult]


class StepFailed(Exception):
    """A step's failure that knows the project's fields afterwards (a failed backup leaves the status alone)."""

    def __init__(self, message: str, *, outcome: StepResult) -> None:
        super().__init__(message)
        self.outcome = outcome


class BackupRefused(Exception):
    """A backup (or its verification) failed, so the action that needed it must not go on."""


def _current_operation(project: Project) -> Operation:
    # The one operation in flight for the project (a database constraint) is
    # the one whose step is running.
    return Operation.objects.select_related("backup", "backup__project", "requested_by").get(project=project, state=Operation.State.RUNNING)


def _stack_up(project: Project, *, start: bool = True, action: str = "start", new_volume: bool = False) -> StackSpec:
    """Create (and start) what is missing of the project's stack, its network on the project's own subnet; its spec.

    A project that has run holds its data in its volume: when that volume is
    gone, a new one would be an empty database, so the step fails (the project
    `failed`, health `missing`, the error naming the fix) unless the owner
    allowed it for this operation (or `new_volume`: a backup's restore fills
    it). `action` names the request in that error.
    """
    create_volume = new_volume or project.first_running_at is None or _current_operation(project).allow_empty_database
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


def _operation_backup(operation: Operation) -> Backup:
    # Every backup kind is queued with its Backup (operation_enqueue's `backup`).
    if operation.backup is None:
        raise StepFailed(f"operation {operation.public_id} ({operation.kind}) has no backup to work on", outcome={})
    return operation.backup


def _stack_up_ready(project: Project, runtime: Runtime) -> StackSpec:
    """Create and start what is missing of the project's stack, and return (its spec) once it answers."""
    spec = _stack_up(project, start=True, action="start")
    runtime.stack_wait_ready(spec, timeout_s=settings.BERTH_READY_TIMEOUT)
    return spec


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


def _running(project: Project) -> StepResult:
    now = timezone.now()
    # The stack was just brought up with the project's current spec: no change waits for a restart.
    return {
        "status": S.RUNNING, "health": Project.Health.HEALTHY, "observed_at": now, "first_running_at": project.first_running_at or now,
        "restart_pending": False,
    }  # fmt: skip


# --- the lifecycle -----------------------------------------------------------------


def _step_up(project: Project) -> StepResult:
    _stack_up_ready(project, get_runtime())
    return _running(project)


CREATE_FAILED_HINT = (
    " — retry it, with another postgres_version or api if need be (POST /v1/projects/{id}/start with "
    '{{"postgres_version", "api"}}, or "Retry with…" on its page), or delete and purge it'
)


def _step_create(project: Project) -> StepResult:
    try:
        return _step_up(project)
    except RuntimeUnavailable:
        raise  # the engine went away: a plain retry is the answer, said by the error itself
    except RuntimeFailure as exc:
        # The operation's error says what to do next, not only what went wrong.
        raise type(exc)(f"{exc}{CREATE_FAILED_HINT.format(id=project.public_id)}") from None


def _step_start(project: Project) -> StepResult:
    if project_never_succeeded(project):
        # A retry, perhaps with another version or flavour: what the failed
        # attempt made (an initdb of another major, an api of another image)
        # goes, so the stack is made afresh. It never ran: nobody's data is there.
        runtime = get_runtime()
        wanted = {c.service: c.image for c in stack_spec(project).containers}
        if any(c.image != wanted.get(c.service, c.image) for c in runtime.stack_state(project.public_id).containers):
            runtime.stack_purge(project.public_id)
    return _step_up(project)


def _step_stop(project: Project) -> StepResult:
    get_runtime().stack_stop(stack_spec(project))
    return {"status": S.STOPPED, "health": Project.Health.DOWN, "observed_at": timezone.now()}


def _step_delete(project: Project) -> StepResult:
    get_runtime().stack_remove_containers(project.public_id)
    now = timezone.now()
    return {
        "status": S.DELETED,
        "health": Project.Health.MISSING,
        "observed_at": now,
        # A retried delete keeps the first deletion's clock.
        "deleted_at": project.deleted_at or now,
        "purge_after": project.purge_after or now + timedelta(days=settings.BERTH_DELETE_RETENTION_DAYS),
    }


def _step_restore(project: Project) -> StepResult:
    # Recreate the containers on the kept volume and ports, but do not start
    # them: a restored project comes back stopped.
    _stack_up(project, start=False, action="restore")
    return {
        "status": S.STOPPED, "health": Project.Health.DOWN, "observed_at": timezone.now(), "deleted_at": None, "purge_after": None,
        "restart_pending": False,
    }  # fmt: skip


def _step_purge(project: Project) -> StepResult:
    # No destructive action without a backup: a final one, verified, or the purge is refused.
    # On a node an operator forgot, the volume is left to it (and no final
    # backup could be read from it): the forgetting was the deliberate step.
    _backup_before_purge(project)
    get_runtime().stack_purge(project.public_id, given_up=set(ForgottenNode.objects.values_list("name", flat=True)))
    _backups_keep_after_purge(project)
    # Ports and the subnet go back to their pools only now: until a purge they are the project's.
    return {
        "status": S.PURGED, "health": Project.Health.MISSING, "observed_at": timezone.now(),
        "db_port": None, "api_port": None, "network_subnet": None, **NO_KEPT_VOLUME,
    }  # fmt: skip


def _backup_before_purge(project: Project) -> Backup | None:
    """The purge's final backup, verified; StepFailed (the project stays deleted) when it cannot be taken.

    A project without a data volume has nothing to lose: None.
    """
    runtime = get_runtime()
    if not runtime.stack_state(project.public_id, volume=project_volume(project)).volume:
        logger.info("purge of %s: no data volume, so no final backup", project.public_id)
        return None
    operation = _current_operation(project)
    final = Backup.objects.create(
        project=project, operation=operation, requested_by=operation.requested_by, trigger=Backup.Trigger.PRE_PURGE,
        postgres_version=project.postgres_version,
        keep_until=timezone.now() + timedelta(days=settings.BERTH_PURGE_BACKUP_DAYS),
    )  # fmt: skip
    try:
        backup_take(project, final, runtime=runtime)
    except BackupRefused as exc:
        raise StepFailed(f"purge refused, nothing was removed: the final backup is not good: {exc}", outcome={"status": S.DELETED}) from None
    return final


def _backups_keep_after_purge(project: Project) -> int:
    """A purged project's backups go BERTH_PURGE_BACKUP_DAYS after the purge (those with an earlier end keep it)."""
    until = timezone.now() + timedelta(days=settings.BERTH_PURGE_BACKUP_DAYS)
    return project.backups.filter(Q(keep_until__isnull=True) | Q(keep_until__gt=until)).update(keep_until=until)


# --- taking one backup (dump, then verify) -----------------------------------------


def backup_record(backup: Backup, **fields: Any) -> None:
    """Save `fields` on the backup's row; an error is recorded without the project's secrets."""
    if fields.get("error"):
        # The engine's words can echo what it was given: the project's secrets never reach the row.
        fields["error"] = secrets_redact(fields["error"], backup.project)
    for name, value in fields.items():
        setattr(backup, name, value)
    backup.save()


def backup_take(project: Project, backup: Backup, *, runtime: Runtime | None = None) -> None:
    """Dump then verify `backup` (a running row); raise BackupRefused unless it ends verified."""
    runtime = runtime or get_runtime()
    try:
        backup_dump(project, backup, runtime)
    except (BackupFailed, RuntimeFailure) as exc:
        backup_record(backup, state=B.FAILED, error=str(exc), finished_at=timezone.now())
        raise BackupRefused(f"backup {backup.public_id} failed: {exc}") from None
    except Exception as exc:
        logger.exception("backup %s failed unexpectedly", backup.public_id)
        backup_record(backup, state=B.FAILED, error=f"internal error ({type(exc).__name__}); see the worker's log", finished_at=timezone.now())
        raise BackupRefused(f"backup {backup.public_id} failed: internal error ({type(exc).__name__})") from None
    backup_record(backup, state=B.SUCCEEDED, error="", finished_at=timezone.now())
    backup_verify_run(backup, runtime=runtime)


def backup_verify_run(backup: Backup, *, runtime: Runtime | None = None) -> None:
    """Verify `backup` by a test restore and record the verdict; raise BackupRefused unless it is verified."""
    runtime = runtime or get_runtime()
    try:
        reason = backup_restore_test(backup, runtime)
    except (BackupFailed, RuntimeFailure) as exc:
        # The engine failed us, not the file: the backup keeps its state.
        backup_record(backup, error=f"verification could not run: {exc}")
        raise BackupRefused(f"backup {backup.public_id} could not be verified: {exc}") from None
    except Exception as exc:
        logger.exception("verification of backup %s failed unexpectedly", backup.public_id)
        backup_record(backup, error=f"verification could not run: internal error ({type(exc).__name__}); see the worker's log")
        raise BackupRefused(f"backup {backup.public_id} could not be verified: internal error ({type(exc).__name__})") from None
    if reason:
        backup_record(backup, state=B.VERIFY_FAILED, error=reason, verified_at=timezone.now())
        raise BackupRefused(f"backup {backup.public_id} failed verification: {reason}")
    backup_record(backup, state=B.VERIFIED, error="", verified_at=timezone.now())


# --- backups -------------------------------------------------------------------------


def _step_backup(project: Project) -> StepResult:
    backup = _operation_backup(_current_operation(project))
    try:
        backup_take(project, backup)
    except BackupRefused as exc:
        raise StepFailed(str(exc), outcome={}) from None
    return {}


def _step_verify_backup(project: Project) -> StepResult:
    backup = _operation_backup(_current_operation(project))
    try:
        backup_verify_run(backup)
    except BackupRefused as exc:
        raise StepFailed(str(exc), outcome={}) from None
    return {}


def _step_restore_backup(project: Project) -> StepResult:
    operation = _current_operation(project)
    source = _operation_backup(operation)
    runtime = get_runtime()
    if problem := backup_file_problem(source):
        backup_record(source, state=B.VERIFY_FAILED, error=problem, verified_at=timezone.now())
        raise StepFailed(f"backup {source.public_id} refused: {problem}; the project was not touched", outcome={})
    remade = not runtime.stack_state(project.public_id, volume=project_volume(project)).volume
    safety = None
    if remade:
        # The data volume is gone, so a safety backup would have nothing to
        # keep. Restoring a backup is the owner's explicit way to give the
        # project a volume again: the stack is made (not started), and the
        # restore fills the new volume.
        _stack_up(project, start=False, new_volume=True)
    else:
        safety = Backup.objects.create(
            project=project, operation=operation, requested_by=operation.requested_by,
            trigger=Backup.Trigger.PRE_RESTORE, postgres_version=project.postgres_version,
        )  # fmt: skip
        try:
            backup_take(project, safety, runtime=runtime)
        except BackupRefused as exc:
            raise StepFailed(f"the safety backup failed, so nothing was restored: {exc}", outcome={}) from None
    try:
        with project_db(project, source, runtime, purpose="restore") as (container, env, live):
            backup_restore_into(runtime, container, env, source)
        if live:
            # Bootstrap again (roles, the api's schema-reload hook) and wait for the api.
            runtime.stack_wait_ready(stack_spec(project), timeout_s=settings.BERTH_READY_TIMEOUT)
        elif remade and project.status == S.RUNNING:
            # Its status says running: the stack made for the restore starts too.
            _stack_up_ready(project, runtime)
            live = True
    except FileAltered as exc:
        backup_record(source, state=B.VERIFY_FAILED, error=str(exc), verified_at=timezone.now())
        raise StepFailed(f"backup {source.public_id} refused: {exc}; the project was not touched", outcome={}) from None
    except (BackupFailed, RuntimeFailure) as exc:
        kept = f"; backup {safety.public_id}, taken just before, holds what it had" if safety else ""
        raise StepFailed(
            f"restoring backup {source.public_id} failed: {exc}. The database may be empty{kept}",
            outcome={"status": S.FAILED},
        ) from None
    if project.status == S.FAILED:
        # A failed project's content is known again: it settles as its stack is.
        if live:
            return _running(project)
        runtime.stack_stop(stack_spec(project))
        return {"status": S.STOPPED, "health": Project.Health.DOWN, "observed_at": timezone.now()}
    return _running(project) if remade and live else {}


def _step_move(project: Project) -> StepResult:
    """Move the project's data to the operation's target node: a verified backup, restored there.

    The only way data changes node (DESIGN.md, "Runtimes"). The old volume stays
    on the old node until purge; a failure puts the project back where it was,
    whose data never left.
    """
    operation = _current_operation(project)
    target, runtime = operation.target_node, get_runtime()
    if target == project.node:
        return {}  # a retry of a move that got there
    was_running = operation.prior_status == S.RUNNING
    backup = Backup.objects.create(
        project=project, operation=operation, requested_by=operation.requested_by,
        trigger=Backup.Trigger.PRE_MOVE, postgres_version=project.postgres_version,
    )  # fmt: skip
    try:
        backup_take(project, backup, runtime=runtime)
    except BackupRefused as exc:
        raise StepFailed(f"the backup failed, so nothing moved: {exc}", outcome={}) from None
    node = next((n for n in runtime.nodes() if n.name == target), None)
    if node is None or not node.ready:
        raise StepFailed(f"node {target} is not ready; nothing moved (backup {backup.public_id} was taken)", outcome={})
    source = {"node": project.node, "node_address": project.node_address, "db_port": project.db_port, "api_port": project.api_port}
    runtime.stack_remove_containers(project.public_id)  # the old node's volume stays, until purge
    with transaction.atomic():
        db_port, api_port = project_ports_on_node(project, node=target)
        Project.objects.filter(pk=project.pk).update(node=target, node_address=node.address, db_port=db_port, api_port=api_port)
    project.refresh_from_db()
    try:
        spec = _stack_up(project, start=True, new_volume=True)
        runtime.stack_wait_ready(spec, timeout_s=settings.BERTH_READY_TIMEOUT)
        backup_restore_into(runtime, spec.db.name, db_env(project), backup)
        runtime.stack_wait_ready(spec, timeout_s=settings.BERTH_READY_TIMEOUT)
    except (BackupFailed, RuntimeFailure, StepFailed) as exc:
        # Back where it was, with the data it never left.
        runtime.stack_remove_containers(project.public_id)
        Project.objects.filter(pk=project.pk).update(**source)
        project.refresh_from_db()
        _stack_up(project, start=was_running, action="start")
        raise StepFailed(f"moving to node {target} failed, so project {project.public_id} stays on node {project.node}: {exc}", outcome={}) from None
    if not was_running:
        runtime.stack_stop(spec)
        return {"status": S.STOPPED, "health": Project.Health.DOWN, "observed_at": timezone.now()}
    return _running(project)


def _step_clone(project: Project) -> StepResult:
    """Create the new project's stack, then restore the source backup into it."""
    source = _current_operation(project).backup
    if source is None:
        raise StepFailed("the backup to clone from was deleted", outcome={"status": S.FAILED})
    if problem := backup_file_problem(source):
        raise StepFailed(f"backup {source.public_id} refused: {problem}", outcome={"status": S.FAILED})
    runtime = get_runtime()
    spec = _stack_up_ready(project, runtime)
    try:
        backup_restore_into(runtime, spec.db.name, db_env(project), source)
    except BackupFailed as exc:
        raise StepFailed(f"restoring backup {source.public_id} into the new project failed: {exc}", outcome={"status": S.FAILED}) from None
    runtime.stack_wait_ready(spec, timeout_s=settings.BERTH_READY_TIMEOUT)
    return _running(project)


# --- major-version upgrades ------------------------------------------------------------

# A project's fields once no upgrade's old volume is kept (after a rollback, a drop, the purge).
NO_KEPT_VOLUME: StepResult = {"kept_postgres_version": "", "kept_volume_version": "", "kept_owner_is_superuser": False, "kept_at": None}


def _as(project: Project, **fields: object) -> Project:
    """The project as it will be (or was) with `fields`, for its spec: an unsaved copy, the row is the step's outcome."""
    other = copy.copy(project)
    for name, value in fields.items():
        setattr(other, name, value)
    return other


def _volume_remove_quietly(runtime: Runtime, volume: str) -> None:
    try:
        runtime.volume_remove(volume)
    except RuntimeFailure:
        # Labelled with the project: never an orphan; the next upgrade or the purge removes it.
        logger.warning("volume %s not removed yet", volume, exc_info=True)


def _step_upgrade(project: Project) -> StepResult:
    """Move the project to the operation's major on a new volume, keeping the old one for a rollback.

    Before anything changes, the extensions it uses are checked against the new
    major's. Then the stack stops (no write lands after the dump), a verified
    backup is taken, the new volume is made and filled from it in a throwaway
    server and checked table by table, and the stack comes up on it with the
    same names, ports and credentials. Any failure puts the stack back on the
    old major and volume, as it was.
    """
    operation = _current_operation(project)
    runtime = get_runtime()
    target, old = operation.postgres_version, project.postgres_version
    back: StepResult = {"status": operation.prior_status or S.RUNNING}
    try:
        missing = extensions_missing(project, version=target, operation_id=operation.public_id, runtime=runtime)
    except UpgradeFailed as exc:
        raise StepFailed(f"upgrade to PostgreSQL {target} not started, nothing was changed: {exc}", outcome=back) from None
    if missing:
        raise StepFailed(
            f"upgrade to PostgreSQL {target} refused, nothing was changed: this database uses "
            f"extension{'s' if len(missing) > 1 else ''} that PostgreSQL {target} here does not have: {', '.join(missing)}",
            outcome=back,
        )
    upgraded = _as(project, postgres_version=target, volume_version=target)
    if project.owner_is_superuser:
        # The new server is made the new way: Berth's own superuser, the owner not one.
        upgraded.admin_password = secrets.token_urlsafe(24)
    backup = Backup.objects.create(
        project=project, operation=operation, requested_by=operation.requested_by, trigger=Backup.Trigger.PRE_UPGRADE,
        postgres_version=old,
    )  # fmt: skip
    runtime.stack_stop(stack_spec(project))
    try:
        backup_take(project, backup, runtime=runtime)
        # What a dead worker's attempt left (never the volume in use: this one is named for the new major).
        runtime.volume_remove(project_volume(upgraded))
        upgrade_volume_fill(upgraded, backup, operation_id=operation.public_id, runtime=runtime, from_old_kind=project.owner_is_superuser)
        project_stack_up(upgraded, start=True, create_volume=False)
        runtime.stack_wait_ready(stack_spec(upgraded), timeout_s=settings.BERTH_READY_TIMEOUT)
    except (BackupRefused, UpgradeFailed, RuntimeFailure) as exc:
        # Back onto the old major and volume, untouched: the containers are recreated from the old spec.
        project_stack_up(project, start=True, create_volume=False)
        runtime.stack_wait_ready(stack_spec(project), timeout_s=settings.BERTH_READY_TIMEOUT)
        _volume_remove_quietly(runtime, project_volume(upgraded))
        raise StepFailed(
            f"upgrade to PostgreSQL {target} failed, the project is back on PostgreSQL {old} with its data: {exc}", outcome=_running(project)
        ) from None
    return {
        **_running(project),
        "postgres_version": target,
        "volume_version": target,
        "admin_password_encrypted": upgraded.admin_password_encrypted,
        "kept_postgres_version": old,
        "kept_volume_version": project.volume_version,
        "kept_owner_is_superuser": project.owner_is_superuser,
        "kept_at": timezone.now(),
    }


def _step_rollback_upgrade(project: Project) -> StepResult:
    """Return to the kept volume and its major; the upgraded database is backed up (verified), then its volume goes."""
    operation = _current_operation(project)
    runtime = get_runtime()
    back: StepResult = {"status": operation.prior_status or S.FAILED}
    kept = kept_volume(project)
    if kept is None:
        raise StepFailed("no volume is kept from an upgrade: there is nothing to roll back to", outcome=back)
    if not runtime.stack_state(project.public_id, volume=kept).volume:
        raise StepFailed(
            f"the kept volume {kept} is gone from the engine: there is nothing to roll back to; nothing was changed", outcome=back
        )
    previous = _as(project, postgres_version=project.kept_postgres_version, volume_version=project.kept_volume_version)
    if project.kept_owner_is_superuser:
        previous.admin_password_encrypted = ""  # its server's superuser is the owner, as before the upgrade
    runtime.stack_stop(stack_spec(project))
    current = project_volume(project)
    if runtime.stack_state(project.public_id, volume=current).volume:
        # What was written since the upgrade is kept in a verified backup before its volume goes.
        safety = Backup.objects.create(
            project=project, operation=operation, requested_by=operation.requested_by, trigger=Backup.Trigger.PRE_ROLLBACK,
            postgres_version=project.postgres_version,
        )  # fmt: skip
        try:
            backup_take(project, safety, runtime=runtime)
        except BackupRefused as exc:
            if operation.prior_status == S.RUNNING:
                _stack_up_ready(project, runtime)
            raise StepFailed(f"rollback refused, nothing was changed: the backup of the upgraded database failed: {exc}", outcome=back) from None
    project_stack_up(previous, start=True, create_volume=False)
    runtime.stack_wait_ready(stack_spec(previous), timeout_s=settings.BERTH_READY_TIMEOUT)
    fields: StepResult = {
        "postgres_version": previous.postgres_version,
        "volume_version": previous.volume_version,
        "admin_password_encrypted": previous.admin_password_encrypted,
        **NO_KEPT_VOLUME,
    }
    if operation.prior_status == S.STOPPED:
        runtime.stack_stop(stack_spec(previous))
        fields |= {"status": S.STOPPED, "health": Project.Health.DOWN, "observed_at": timezone.now()}
    else:
        fields |= _running(project)
    _volume_remove_quietly(runtime, current)
    return fields


def _step_drop_kept_volume(project: Project) -> StepResult:
    """Remove the volume an upgrade kept: no rollback after this."""
    if (kept := kept_volume(project)) is not None:
        get_runtime().volume_remove(kept)
    return dict(NO_KEPT_VOLUME)
# --- changes after creation (services/settings/requests.py) ---------------------------------


def _step_reconfigure(project: Project) -> StepResult:
    """Apply the reloadable settings to the running server: the bootstrap writes them (ALTER SYSTEM) and reloads."""
    try:
        get_runtime().stack_wait_ready(stack_spec(project), timeout_s=settings.BERTH_READY_TIMEOUT)
    except RuntimeUnavailable:
        raise
    except RuntimeFailure as exc:
        # The server keeps running as it was: the status stays; the next start applies the settings.
        raise StepFailed(f"the settings were kept but not applied: {exc}; they apply when the project next starts", outcome={}) from None
    return {}


def _step_restart(project: Project) -> StepResult:
    """Stop the stack and bring it up with the current spec: containers whose spec changed (settings, memory) are recreated."""
    runtime = get_runtime()
    runtime.stack_stop(stack_spec(project))
    _stack_up_ready(project, runtime)
    return _running(project)


def _step_rotate(project: Project) -> StepResult:
    """Bring a running stack up with the new secret (stored by the request): the api is recreated with it, the bootstrap sets passwords.

    A stopped project has nothing to do now: its next start does the same.
    """
    if project.status != S.RUNNING:
        return {}
    _stack_up_ready(project, get_runtime())
    return _running(project)


# --- the warm pool (services/pool/requests.py) ------------------------------------------------


def _step_pool_fill(project: Project) -> StepResult:
    """Make, start, bootstrap and probe a stack for the pool: a create that ends `pooled`, not `running`."""
    _stack_up_ready(project, get_runtime())
    return {**_running(project), "status": S.POOLED}


def _step_pool_drain(project: Project) -> StepResult:
    """Remove a pool stack for good: nobody's data is in it, so no final backup."""
    get_runtime().stack_purge(project.public_id)
    return {
        "status": S.PURGED, "health": Project.Health.MISSING, "observed_at": timezone.now(),
        "db_port": None, "api_port": None, "network_subnet": None,
    }  # fmt: skip


def _step_claim(project: Project) -> StepResult:
    # A claim is recorded as succeeded in the create's transaction and never queued.
    raise StepFailed("a claim is recorded when it happens; there is nothing to run", outcome={})


# Sessions that logged in with the old password end too: a leaked password's
# open connection is as bad as a new one. The api's (authenticator) were
# replaced with its container; Berth's own (the superuser's) are not the owner's.
END_OWNER_SESSIONS_SQL = """\\getenv owner BERTH_OWNER
SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE usename = :'owner' AND pid <> pg_backend_pid();
"""


def _step_rotate_password(project: Project) -> StepResult:
    outcome = _step_rotate(project)
    if project.status == S.RUNNING:
        runtime = get_runtime()
        spec = stack_spec(project)
        _, result = runtime.exec_stream(
            spec.db.name, SERVER_SQL_ARGV, environment={**spec.db_probe.bootstrap_env, "BERTH_SQL": END_OWNER_SESSIONS_SQL}, idle_timeout_s=30
        ).read_all()
        if result.exit_code != 0:
            raise StepFailed(
                f"the new password is set, but the sessions opened with the old one could not be ended: {result.stderr.strip()}",
                outcome=outcome,
            )
    return outcome


K = Operation.Kind
# Operation.kind → its step: every kind has one.
STEPS: dict[str, Step] = {
    K.CREATE: _step_create,
    K.START: _step_start,
    K.STOP: _step_stop,
    K.DELETE: _step_delete,
    K.RESTORE: _step_restore,
    K.PURGE: _step_purge,
    K.BACKUP: _step_backup,
    K.VERIFY_BACKUP: _step_verify_backup,
    K.RESTORE_BACKUP: _step_restore_backup,
    K.CLONE: _step_clone,
    K.UPGRADE: _step_upgrade,
    K.ROLLBACK_UPGRADE: _step_rollback_upgrade,
    K.DROP_KEPT_VOLUME: _step_drop_kept_volume,
    K.POOL_FILL: _step_pool_fill,
    K.POOL_DRAIN: _step_pool_drain,
    K.CLAIM: _step_claim,
    K.RECONFIGURE: _step_reconfigure,
    K.RESTART: _step_restart,
    K.ROTATE_PASSWORD: _step_rotate_password,
    K.ROTATE_KEYS: _step_rotate,
    K.MOVE: _step_move,
}
