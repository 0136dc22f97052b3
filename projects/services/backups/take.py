"""Taking one backup (dump, then verify), and the safety backup a destructive step takes first.

A backup is only called good once it has been restored: `backup_take` dumps
then verifies, and a restore, a purge, an upgrade, a rollback or a move goes on
only after a verified one (`backup_safety`).
"""

import logging
from datetime import datetime
from typing import Any

from django.utils import timezone

from projects.models import Backup, Operation, Project
from projects.runtime import Runtime, RuntimeFailure, get_runtime
from projects.services.backups.dumps import backup_dump, backup_restore_test
from projects.services.backups.files import BackupFailed
from projects.services.operations.step import StepFailed
from projects.services.redact import secrets_redact

logger = logging.getLogger(__name__)

B = Backup.State


class BackupRefused(Exception):
    """A backup (or its verification) failed, so the action that needed it must not go on."""


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


def backup_safety(
    operation: Operation, *, trigger: str, runtime: Runtime, keep_until: datetime | None = None, postgres_version: str = ""
) -> Backup:
    """The verified backup a step takes before it changes or removes data; BackupRefused when it is not good.

    Berth's own (no quota), made by `operation` on behalf of whoever asked for it,
    of the project's major (or `postgres_version`, the one the dump was made on).
    """
    project = operation.project
    backup = Backup.objects.create(
        project=project, operation=operation, requested_by=operation.requested_by, trigger=trigger,
        postgres_version=postgres_version or project.postgres_version, keep_until=keep_until,
    )  # fmt: skip
    backup_take(project, backup, runtime=runtime)
    return backup


def operation_backup(operation: Operation) -> Backup:
    """The Backup a backup kind works on (operation_enqueue's `backup`)."""
    if operation.backup is None:
        raise StepFailed(f"operation {operation.public_id} ({operation.kind}) has no backup to work on", outcome={})
    return operation.backup
