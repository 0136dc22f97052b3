"""Read-side queries shared by the dashboard, the API and the admin."""

from django.contrib.auth.models import User
from django.db.models import Q, QuerySet

from .models import Backup, BackupSchedule, Operation, Project, is_public_id
from projects.stack.spec import kept_volume


def projects_for_user(user: User, *, include_deleted: bool = False) -> QuerySet[Project]:
    """The projects `user` may see: their own, or every one for staff (the warm pool's stacks, owned by nobody, for nobody)."""
    projects = Project.objects.select_related("owner").filter(owner__isnull=False)
    if not user.is_staff:
        projects = projects.filter(owner=user)
    if not include_deleted:
        # A project being restored is coming back: it belongs with the live ones.
        projects = projects.filter(Q(deleted_at__isnull=True) | Q(status=Project.Status.RESTORING)).exclude(
            Q(status=Project.Status.PURGED) | Q(status=Project.Status.DELETING)
        )
    return projects


def project_for_user(user: User, public_id: str) -> Project | None:
    """One project by id if `user` may see it (deleted ones included), else None."""
    if not is_public_id(public_id):
        return None
    return projects_for_user(user, include_deleted=True).filter(public_id=public_id).first()


def backup_for_user(user: User, public_id: str) -> Backup | None:
    """One backup by id if `user` may see its project (purged ones included), else None."""
    if not is_public_id(public_id):
        return None
    visible = projects_for_user(user, include_deleted=True)
    return Backup.objects.select_related("project", "project__owner").filter(public_id=public_id, project__in=visible).first()


def backup_schedule_for(project: Project) -> BackupSchedule | None:
    """The project's daily backup schedule, or None when it has none."""
    return BackupSchedule.objects.filter(project=project).first()


def project_never_succeeded(project: Project) -> bool:
    """A created project (not a clone: its backup decides its version) none of whose operations ever succeeded."""
    return (
        project.operations.filter(kind=Operation.Kind.CREATE).exists()
        and not project.operations.filter(state=Operation.State.SUCCEEDED).exists()
    )


def project_never_ran(project: Project) -> bool:
    """Failed without ever reaching running: its create failed (and every retry since). It holds nobody's data."""
    return project.status == Project.Status.FAILED and not project.is_deleted and project_never_succeeded(project)


def backup_to_restore(project: Project) -> Backup | None:
    """The backup to offer when the project's data is gone: its newest verified one, else its newest that dumped."""
    newest = project.backups.order_by("-created_at", "-id")
    return newest.filter(state=Backup.State.VERIFIED).first() or newest.filter(state=Backup.State.SUCCEEDED).first()


def project_kept_volume(project: Project) -> str | None:
    """The name of the volume an upgrade kept for a rollback (listed on the project), or None."""
    return kept_volume(project)
