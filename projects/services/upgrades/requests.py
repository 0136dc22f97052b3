"""Major-version upgrades in place: upgrade, roll back, drop the kept volume (each queues an operation; steps.py runs it)."""

from django.contrib.auth.models import User

from projects.models import Operation, Project

from projects.services.errors import InvalidInput, InvalidTransition
from projects.services.lifecycle.requests import project_check_offered
from projects.services.operations.queue import operation_enqueue

S = Project.Status


def project_upgrade(*, project: Project, postgres_version: str | None, requested_by: User | None = None) -> Operation:
    """Queue the upgrade of a running project to a higher major that this installation offers."""
    if not postgres_version:
        raise InvalidInput("postgres_version", "the major version to upgrade to is required, e.g. \"17\"")
    version = str(postgres_version)
    if not version.isdigit():
        raise InvalidInput("postgres_version", f"must be a major version number, e.g. \"17\", not {version!r}")
    if int(version) <= int(project.postgres_version):
        same = int(version) == int(project.postgres_version)
        raise InvalidInput(
            "postgres_version",
            f"the project already runs PostgreSQL {project.postgres_version}" if same else
            f"PostgreSQL {version} is older than the project's {project.postgres_version}: a downgrade cannot read its data; "
            "only the rollback of an upgrade goes back (POST /v1/projects/{id}/rollback-upgrade)".replace("{id}", project.public_id),
        )  # fmt: skip
    project_check_offered(postgres_version=version, api=project.api_flavour)
    if project.has_kept_volume:
        # One kept volume at a time: a second upgrade would leave the first one's without a way back.
        raise InvalidTransition(
            f"the volume of PostgreSQL {project.kept_postgres_version} from its last upgrade is still kept; roll back to it "
            f"(POST /v1/projects/{project.public_id}/rollback-upgrade) or drop it (DELETE /v1/projects/{project.public_id}/kept-volume) first"
        )
    return operation_enqueue(
        project=project, kind="upgrade", action="upgrade", transitional=S.UPGRADING, requested_by=requested_by, postgres_version=version
    )


def project_rollback_upgrade(*, project: Project, requested_by: User | None = None) -> Operation:
    """Queue the return to the major and volume an upgrade kept; what was written since is lost (a backup keeps it)."""
    _check_kept(project, doing="roll back")
    return operation_enqueue(project=project, kind="rollback_upgrade", action="rollback_upgrade", transitional=S.UPGRADING, requested_by=requested_by)


def project_kept_volume_drop(*, project: Project, requested_by: User | None = None) -> Operation:
    """Queue the removal of the volume an upgrade kept: no rollback after it."""
    _check_kept(project, doing="drop the kept volume of")
    return operation_enqueue(project=project, kind="drop_kept_volume", action="drop_kept_volume", transitional=None, requested_by=requested_by)


def _check_kept(project: Project, *, doing: str) -> None:
    if not project.has_kept_volume:
        raise InvalidTransition(f"cannot {doing} this project: no volume is kept from an upgrade (it was never upgraded, or it was rolled back or dropped)")
