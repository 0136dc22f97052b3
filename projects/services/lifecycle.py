"""The project lifecycle: create, stop, start, delete, restore, purge.

Each public service checks its input, then queues an Operation (see
operations.py); the worker runs the matching step (steps.py).
"""

import secrets

from django.conf import settings
from django.db import transaction

from projects.models import Backup, Operation, Project

from .backups import backup_assert_cloneable
from .errors import InvalidInput
from .names import project_name_check_free, project_name_clean
from .operations import operation_enqueue
from .ports import project_insert_with_ports

S = Project.Status


def project_create(
    *, owner, name: str | None = None, postgres_version: str | None = None, api: str | None = None, from_backup: Backup | None = None
) -> Operation:
    """Reserve ports and secrets for a new project and queue its creation; `from_backup` clones that backup's rows into it."""
    source = from_backup.project if from_backup is not None else None
    version = str(postgres_version or (from_backup.postgres_version if from_backup else "") or settings.BERTH_DEFAULT_POSTGRES_VERSION)
    if version not in settings.BERTH_POSTGRES_IMAGES:
        raise InvalidInput("postgres_version", f"must be one of {', '.join(sorted(settings.BERTH_POSTGRES_IMAGES))}")
    flavour = api or (source.api_flavour if source else "") or settings.BERTH_DEFAULT_API
    if flavour not in Project.Api.values:
        raise InvalidInput("api", f"must be one of {', '.join(Project.Api.values)}")
    if from_backup is not None:
        backup_assert_cloneable(from_backup, postgres_version=version)
    if name is not None:
        name = project_name_clean(name=name)

    project = Project(owner=owner, name=name or "untitled", postgres_version=version, api_flavour=flavour)
    project.name = name or f"project-{project.public_id}"
    project.db_password = secrets.token_urlsafe(24)
    project.jwt_secret = secrets.token_urlsafe(48)  # PostgREST wants at least 32 characters
    with transaction.atomic():
        # One transaction: a project row never exists without its create operation.
        if name is not None:
            project_name_check_free(owner=owner, name=name)
        project_insert_with_ports(project)
        return operation_enqueue(
            project=project, kind="clone" if from_backup else "create", action="create", transitional=S.PROVISIONING,
            requested_by=owner, backup=from_backup,
        )


def project_stop(*, project: Project, requested_by=None) -> Operation:
    return operation_enqueue(project=project, kind="stop", action="stop", transitional=S.STOPPING, requested_by=requested_by)


def project_start(*, project: Project, requested_by=None) -> Operation:
    return operation_enqueue(project=project, kind="start", action="start", transitional=S.STARTING, requested_by=requested_by)


def project_delete(*, project: Project, requested_by=None) -> Operation:
    """Soft delete: containers go, the volume and the ports stay until purge."""
    return operation_enqueue(project=project, kind="delete", action="delete", transitional=S.DELETING, requested_by=requested_by)


def project_restore(*, project: Project, requested_by=None) -> Operation:
    """Bring a deleted project back, stopped, with the same ports and data."""
    return operation_enqueue(project=project, kind="restore", action="restore", transitional=S.RESTORING, requested_by=requested_by)


def project_purge(*, project: Project, confirm: str | None, requested_by=None) -> Operation:
    """Remove a deleted project's data for good; `confirm` must repeat its id."""
    if confirm != project.public_id:
        raise InvalidInput("confirm", f"must be the project's id ({project.public_id}) to purge it for good")
    return operation_enqueue(project=project, kind="purge", action="purge", transitional=S.PURGING, requested_by=requested_by)
