"""Per-user quotas: how many projects, manual backups and backup bytes one user may hold.

Defaults come from BERTH_QUOTA_*; an operator sets one user's own limits (or
makes them unlimited) in the admin (UserQuota). Staff are not exempt by being
staff. What counts:

- projects: every project the user owns that is not purged (a deleted one
  still holds its volume and ports until purge);
- backups: the user's manual backups that hold or will hold a file (failed
  ones have none); scheduled, safety (pre-restore) and final (pre-purge)
  backups are Berth's own and never count here;
- backup bytes: the size of every backup file of the user's projects,
  whatever made it. It is checked before a manual or a scheduled backup, never
  before a restore's safety backup or a purge's final one: no quota ever
  blocks a purge, or the backup that protects a restore.

The checks run inside the transaction that inserts the new row, with the
user's row locked, so two requests at once cannot both take the last unit.
"""

from dataclasses import dataclass

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import User
from django.db.models import Sum

from projects.models import Backup, Project, UserQuota

from projects.services.errors import QuotaExceeded


@dataclass(frozen=True)
class Limits:
    projects: int
    backups: int
    backup_bytes: int


def quota_limits(user: User) -> Limits | None:
    """The user's limits, or None when an operator made them unlimited."""
    own = UserQuota.objects.filter(user=user).first()
    if own is not None and own.unlimited:
        return None

    def pick(name: str, default: int) -> int:
        value = getattr(own, name) if own is not None else None
        return default if value is None else value

    return Limits(
        projects=pick("projects", settings.BERTH_QUOTA_PROJECTS),
        backups=pick("backups", settings.BERTH_QUOTA_BACKUPS),
        backup_bytes=pick("backup_bytes", settings.BERTH_QUOTA_BACKUP_BYTES),
    )


def quota_usage(user: User) -> dict[str, int]:
    """What the user holds now, in the units of their limits."""
    backups = Backup.objects.filter(project__owner=user)
    return {
        "projects": Project.objects.filter(owner=user).exclude(status=Project.Status.PURGED).count(),
        "backups": backups.filter(trigger=Backup.Trigger.MANUAL).exclude(state=Backup.State.FAILED).count(),
        "backup_bytes": backups.aggregate(total=Sum("size"))["total"] or 0,
    }


def _lock_user(user: User) -> None:
    # Serialises one user's creates (PostgreSQL; SQLite's IMMEDIATE
    # transactions serialise every write already).
    get_user_model().objects.select_for_update().filter(pk=user.pk).first()


def quota_check_project(*, owner: User) -> None:
    """QuotaExceeded when `owner` holds as many projects as allowed. Call inside the create's transaction."""
    limits = quota_limits(owner)
    if limits is None:
        return
    _lock_user(owner)
    held = Project.objects.filter(owner=owner).exclude(status=Project.Status.PURGED).count()
    if held >= limits.projects:
        raise QuotaExceeded(
            f"your quota is {limits.projects} project(s) and you hold {held} (deleted ones count until they are purged): "
            "purge a deleted project, or ask an operator for a larger quota",
            limit="projects",
        )


def quota_check_backup(*, project: Project, trigger: str) -> None:
    """QuotaExceeded when a backup of `trigger` would take the project's owner past a quota. Call inside the backup's transaction."""
    if trigger not in (Backup.Trigger.MANUAL, Backup.Trigger.SCHEDULED):
        return  # a restore's safety backup and a purge's final one are never refused
    owner = project.owner
    if owner is None:
        return  # a warm-pool stack is Berth's and takes no backups; nobody's quota is involved
    limits = quota_limits(owner)
    if limits is None:
        return
    _lock_user(owner)
    usage = quota_usage(owner)
    if trigger == Backup.Trigger.MANUAL and usage["backups"] >= limits.backups:
        raise QuotaExceeded(
            f"the quota is {limits.backups} manual backup(s) and the owner's projects hold {usage['backups']}: "
            "delete an old backup first (scheduled backups do not count)",
            limit="backups",
        )
    if usage["backup_bytes"] >= limits.backup_bytes:
        raise QuotaExceeded(
            f"the owner's backups take {usage['backup_bytes']} bytes, the quota is {limits.backup_bytes}: "
            "delete old backups first, or ask an operator for a larger quota",
            limit="backup_bytes",
        )
