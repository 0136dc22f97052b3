"""Backups you can trust: the requests the edges call (the worker's side is steps.py).

- `project_backup` queues an Operation (so the one-in-flight-per-project rule
  holds) that never changes the project's status; the worker dumps, then
  verifies by a test restore (steps.py, backup_engine.py).
- `backup_verify` queues a new verification; `project_restore_backup` queues a
  restore, which takes a safety backup (verified) before it replaces the
  project's database; a purge takes a final one.
- `backup_delete` and `backup_schedule_set` act at once.
"""

from datetime import datetime, timedelta

from django.conf import settings
from django.contrib.auth.models import User
from django.db import transaction
from django.utils import timezone

from projects.models import Backup, BackupSchedule, Operation, Project

from projects.services.access import project_check_actor
from projects.services.backups.files import backup_path
from projects.services.errors import BackupProtected, InvalidInput, InvalidTransition
from projects.services.operations.queue import operation_enqueue
from projects.services.lifecycle.quotas import quota_check_backup

B = Backup.State


def project_backup(*, project: Project, requested_by: User | None = None, trigger: str = Backup.Trigger.MANUAL) -> Operation:
    """Queue a backup (dump, then verification) of `project`; its status does not change."""
    project_check_actor(user=requested_by, project=project)
    with transaction.atomic():
        quota_check_backup(project=project, trigger=trigger)
        backup = Backup.objects.create(project=project, trigger=trigger, requested_by=requested_by, postgres_version=project.postgres_version)
        operation = operation_enqueue(
            project=project, kind="backup", action="backup", transitional=None, requested_by=requested_by, backup=backup
        )
        Backup.objects.filter(pk=backup.pk).update(operation=operation)
    return operation


def backup_verify(*, backup: Backup, requested_by: User | None = None) -> Operation:
    """Queue a new verification of `backup` (after a restore test, or to check its file still holds)."""
    if backup.state in (B.RUNNING, B.FAILED):
        raise InvalidTransition(f"backup {backup.public_id} is {backup.state}: there is no file to verify")
    return operation_enqueue(
        project=backup.project, kind="verify_backup", action="verify_backup", transitional=None, requested_by=requested_by, backup=backup
    )


def backup_assert_restorable(backup: Backup) -> None:
    """InvalidTransition unless `backup` holds a dump that is not known to be bad."""
    if not backup.is_restorable:
        why = f": {backup.error}" if backup.error else ""
        raise InvalidTransition(f"backup {backup.public_id} is {backup.state}, so it cannot be restored{why}")


def project_restore_backup(*, backup: Backup, confirm: str | None, requested_by: User | None = None) -> Operation:
    """Replace the project's database with `backup`, after a safety backup; `confirm` must repeat the project's id."""
    project = backup.project
    if confirm != project.public_id:
        raise InvalidInput("confirm", f"must be the project's id ({project.public_id}) to replace its database with backup {backup.public_id}")
    backup_assert_restorable(backup)
    return operation_enqueue(
        project=project, kind="restore_backup", action="restore_backup", transitional=None, requested_by=requested_by, backup=backup
    )


def backup_assert_cloneable(backup: Backup, *, postgres_version: str) -> None:
    """For project_create(from_backup=…): the backup restores, into the same or a newer PostgreSQL."""
    backup_assert_restorable(backup)
    if int(postgres_version) < int(backup.postgres_version):
        raise InvalidInput(
            "postgres_version", f"must be {backup.postgres_version} or newer: backup {backup.public_id} was dumped from PostgreSQL {backup.postgres_version}"
        )


def backup_delete(*, backup: Backup, requested_by: User | None = None) -> None:
    """Remove a backup's file and row; refused while an operation makes or uses it, and for a purge's recent final backup."""
    project_check_actor(user=requested_by, project=backup.project)
    backup_check_unprotected(backup)
    if backup.state == B.RUNNING or backup.operations.filter(state__in=Operation.IN_FLIGHT).exists():
        raise InvalidTransition(f"backup {backup.public_id} is in use by an operation in flight")
    backup_path(backup).unlink(missing_ok=True)
    backup.delete()


def backup_check_unprotected(backup: Backup, *, now: datetime | None = None) -> None:
    """BackupProtected for a purge's final backup while the purge is younger than BERTH_PURGE_BACKUP_DAYS.

    It is the only copy of a purged project's data: its grace period is what
    lets an owner change their mind, so nobody shortens it by hand (the
    backup pass removes it when it ends).
    """
    if backup.trigger != Backup.Trigger.PRE_PURGE:
        return
    now = now or timezone.now()
    # The purge set keep_until to its own time plus the grace period (the
    # backup pass removes the file then); an unfinished purge's, from the dump.
    until = backup.keep_until or backup.created_at + timedelta(days=settings.BERTH_PURGE_BACKUP_DAYS)
    if now < until:
        raise BackupProtected(
            f"backup {backup.public_id} is the final backup of a purge: it is kept until {until:%Y-%m-%d %H:%M} UTC "
            f"(BERTH_PURGE_BACKUP_DAYS={settings.BERTH_PURGE_BACKUP_DAYS}), then removed by itself"
        )


def backup_schedule_set(*, project: Project, hour: int, keep: int, enabled: bool = True, requested_by: User | None = None) -> BackupSchedule:
    """Daily backups of `project` at `hour` (UTC), keeping the newest `keep` good ones."""
    project_check_actor(user=requested_by, project=project)
    for name, value, low, high in (("hour", hour, 0, BackupSchedule.HOUR_MAX), ("keep", keep, 1, BackupSchedule.KEEP_MAX)):
        if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
            raise InvalidInput(name, f"must be a whole number from {low} to {high}")
    if not isinstance(enabled, bool):
        raise InvalidInput("enabled", "must be true or false")
    schedule, _ = BackupSchedule.objects.update_or_create(project=project, defaults={"hour": hour, "keep": keep, "enabled": enabled})
    return schedule
