"""The worker's side of major-version upgrades: upgrade onto a new volume, roll back to the kept one, drop the kept one."""

import secrets

from django.utils import timezone

from projects.models import Backup, Operation, Project
from projects.recipes import variants_for
from projects.runtime import RuntimeFailure, get_runtime
from projects.services.backups.take import BackupRefused, backup_safety
from projects.services.operations.step import (
    NO_KEPT_VOLUME,
    StepFailed,
    StepResult,
    project_as,
    running,
    running_fields,
    stack_up_ready,
    stopped,
    volume_remove_quietly,
)
from projects.services.operations.tenant_safety import project_wait_ready
from projects.services.upgrades.volumes import UpgradeFailed, extensions_missing, upgrade_volume_fill
from projects.stack.spec import kept_volume, project_volume, stack_spec
from projects.stack.up import project_stack_up

S = Project.Status


def upgrade(operation: Operation) -> StepResult:
    """Move the project to the operation's major on a new volume, keeping the old one for a rollback.

    Before anything changes, the extensions it uses are checked against the new
    major's. Then the stack stops (no write lands after the dump), a verified
    backup is taken, the new volume is made and filled from it in a throwaway
    server and checked table by table, and the stack comes up on it with the
    same names, ports and credentials. Any failure puts the stack back on the
    old major and volume, as it was.
    """
    project, runtime = operation.project, get_runtime()
    target, old = operation.postgres_version, project.postgres_version
    back: StepResult = {"status": operation.prior_status or S.RUNNING}
    try:
        missing = extensions_missing(project, version=target, operation_id=operation.public_id, runtime=runtime)
    except UpgradeFailed as exc:
        raise StepFailed(f"upgrade to PostgreSQL {target} not started, nothing was changed: {exc}", outcome=back) from None
    if missing:
        # PostGIS is in Berth's variant images only, which an operator builds by hand: say which.
        how = "".join(
            f"; an operator can add it with `manage.py images build {image}`, which is then offered for {target}"
            for image in variants_for(target, missing)
        )
        raise StepFailed(
            f"upgrade to PostgreSQL {target} refused, nothing was changed: this database uses "
            f"extension{'s' if len(missing) > 1 else ''} that PostgreSQL {target} here does not have: {', '.join(missing)}{how}",
            outcome=back,
        )
    upgraded = project_as(project, postgres_version=target, volume_version=target)
    if project.owner_is_superuser:
        # The new server is made the new way: Berth's own superuser, the owner not one.
        upgraded.admin_password = secrets.token_urlsafe(24)
    runtime.stack_stop(stack_spec(project))
    try:
        backup = backup_safety(operation, trigger=Backup.Trigger.PRE_UPGRADE, runtime=runtime, postgres_version=old)
        # What a dead worker's attempt left (never the volume in use: this one is named for the new major).
        runtime.volume_remove(project_volume(upgraded))
        upgrade_volume_fill(upgraded, backup, operation_id=operation.public_id, runtime=runtime, from_old_kind=project.owner_is_superuser)
        project_stack_up(upgraded, start=True, create_volume=False)
        project_wait_ready(upgraded, stack_spec(upgraded), runtime)
    except (BackupRefused, UpgradeFailed, RuntimeFailure) as exc:
        # Back onto the old major and volume, untouched: the containers are recreated from the old spec.
        project_stack_up(project, start=True, create_volume=False)
        project_wait_ready(project, stack_spec(project), runtime)
        volume_remove_quietly(runtime, project_volume(upgraded))
        raise StepFailed(
            f"upgrade to PostgreSQL {target} failed, the project is back on PostgreSQL {old} with its data: {exc}", outcome=running(project)
        ) from None
    return {
        **running_fields(project),
        "postgres_version": target,
        "volume_version": target,
        "admin_password_encrypted": upgraded.admin_password_encrypted,
        "kept_postgres_version": old,
        "kept_volume_version": project.volume_version,
        "kept_owner_is_superuser": project.owner_is_superuser,
        "kept_at": timezone.now(),
    }


def rollback_upgrade(operation: Operation) -> StepResult:
    """Return to the kept volume and its major; the upgraded database is backed up (verified), then its volume goes."""
    project, runtime = operation.project, get_runtime()
    back: StepResult = {"status": operation.prior_status or S.FAILED}
    kept = kept_volume(project)
    if kept is None:
        raise StepFailed("no volume is kept from an upgrade: there is nothing to roll back to", outcome=back)
    if not runtime.stack_state(project.public_id, volume=kept).volume:
        raise StepFailed(
            f"the kept volume {kept} is gone from the engine: there is nothing to roll back to; nothing was changed", outcome=back
        )
    previous = project_as(project, postgres_version=project.kept_postgres_version, volume_version=project.kept_volume_version)
    if project.kept_owner_is_superuser:
        previous.admin_password_encrypted = ""  # its server's superuser is the owner, as before the upgrade
    runtime.stack_stop(stack_spec(project))
    current = project_volume(project)
    if runtime.stack_state(project.public_id, volume=current).volume:
        # What was written since the upgrade is kept in a verified backup before its volume goes.
        try:
            backup_safety(operation, trigger=Backup.Trigger.PRE_ROLLBACK, runtime=runtime)
        except BackupRefused as exc:
            if operation.prior_status == S.RUNNING:
                stack_up_ready(operation, runtime)
            raise StepFailed(f"rollback refused, nothing was changed: the backup of the upgraded database failed: {exc}", outcome=back) from None
    project_stack_up(previous, start=True, create_volume=False)
    project_wait_ready(previous, stack_spec(previous), runtime)
    fields: StepResult = {
        "postgres_version": previous.postgres_version,
        "volume_version": previous.volume_version,
        "admin_password_encrypted": previous.admin_password_encrypted,
        **NO_KEPT_VOLUME,
    }
    if operation.prior_status == S.STOPPED:
        runtime.stack_stop(stack_spec(previous))
        fields |= stopped()
    else:
        fields |= running(project)
    volume_remove_quietly(runtime, current)
    return fields


def drop_kept_volume(operation: Operation) -> StepResult:
    """Remove the volume an upgrade kept: no rollback after this."""
    if (kept := kept_volume(operation.project)) is not None:
        get_runtime().volume_remove(kept)
    return dict(NO_KEPT_VOLUME)
