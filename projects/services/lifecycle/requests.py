"""The project lifecycle: create, stop, start, delete, restore, purge.

Each public service checks its input, then queues an Operation (see
operations.py); the worker runs the matching step (steps.py).
"""

import logging

from django.contrib.auth.models import User
from django.db import transaction

from projects.models import Backup, Operation, Project
from projects.runtime import get_runtime
from projects.stack.images import api_image, offer, postgres_image
from projects.selectors import project_never_ran

from projects.services.backups.requests import backup_assert_cloneable
from projects.services.settings.credentials import project_credentials_generate
from projects.services.errors import Forbidden, InvalidInput, InvalidTransition
from projects.services.names import project_name_check_free, project_name_clean
from projects.services.operations.queue import operation_enqueue
from projects.services.placement.nodes import node_assert_up, node_place
from projects.services.pool.requests import pool_claim, pool_refill
from projects.services.ports import project_insert_with_ports
from projects.services.lifecycle.quotas import quota_check_project

logger = logging.getLogger(__name__)

S = Project.Status


def project_create(
    *, owner: User, name: str | None = None, postgres_version: str | None = None, api: str | None = None, from_backup: Backup | None = None
) -> Operation:
    """Reserve ports and secrets for a new project and queue its creation; `from_backup` clones that backup's rows into it.

    A create the warm pool can serve (no backup, a version and flavour it
    holds) claims a ready stack instead: its operation, `claim`, has already
    succeeded and the project is running.
    """
    source = from_backup.project if from_backup is not None else None
    offered = offer()
    version = str(postgres_version or (from_backup.postgres_version if from_backup else "") or offered.default_postgres_version or "")
    flavour = api or (source.api_flavour if source else "") or offered.default_api or ""
    project_check_offered(postgres_version=version, api=flavour)
    if from_backup is not None:
        backup_assert_cloneable(from_backup, postgres_version=version)
    if name is not None:
        name = project_name_clean(name=name)

    project = Project(owner=owner, name=name or "untitled", postgres_version=version, api_flavour=flavour)
    project.name = name or f"project-{project.public_id}"
    project_credentials_generate(project)
    if from_backup is None:
        with transaction.atomic():
            quota_check_project(owner=owner)
            if name is not None:
                project_name_check_free(owner=owner, name=name)
            claimed = pool_claim(owner=owner, name=name, postgres_version=version, api=flavour)
        if claimed is not None:
            try:
                pool_refill()  # the pool replaces what was just taken
            except Exception:
                # The claim stands whatever the refill meets; the watcher's next pass tries again.
                logger.exception("pool refill after claiming %s failed", claimed.project.public_id)
            return claimed
    # The cold path. On a Swarm, the node with the most free memory that holds
    # the images (services/placement/nodes.py): asked only now, so a claim needs no
    # engine, and outside any transaction (it is an engine call).
    node = node_place(runtime=get_runtime(), images={postgres_image(version), api_image(flavour)})
    if node is not None:
        project.node, project.node_address = node.name, node.address
    with transaction.atomic():
        # One transaction: a project row never exists without its create operation.
        quota_check_project(owner=owner)
        if name is not None:
            project_name_check_free(owner=owner, name=name)
        project_insert_with_ports(project)
        return operation_enqueue(
            project=project, kind="clone" if from_backup else "create", action="create", transitional=S.PROVISIONING,
            requested_by=owner, backup=from_backup,
        )


def project_check_offered(*, postgres_version: str, api: str) -> None:
    """Refuse a version or flavour this installation cannot run (its image could not be had when `up` checked)."""
    offered = offer()
    if postgres_version not in offered.postgres:
        why = offered.missing.get(f"postgres:{postgres_version}")
        choices = ", ".join(sorted(offered.postgres, key=int)) or "none (see `manage.py images`)"
        raise InvalidInput(
            "postgres_version",
            (f"PostgreSQL {postgres_version} cannot run here ({why}); " if why else "") + f"must be one of {choices}",
        )
    if api not in offered.api:
        why = offered.missing.get(f"api:{api}") if api in Project.Api.values else None
        choices = ", ".join(sorted(offered.api)) or "none (see `manage.py images`)"
        raise InvalidInput("api", (f"{Project.Api(api).label} cannot run here ({why}); " if why else "") + f"must be one of {choices}")


def project_stop(*, project: Project, requested_by: User | None = None) -> Operation:
    return operation_enqueue(project=project, kind="stop", action="stop", transitional=S.STOPPING, requested_by=requested_by)


def project_start(
    *, project: Project, requested_by: User | None = None, postgres_version: str | None = None, api: str | None = None,
    allow_empty_database: bool = False,
) -> Operation:  # fmt: skip
    """Start (or repair) a project.

    `postgres_version`/`api` retry a create that failed with other choices;
    `allow_empty_database` lets a project whose data volume is gone start on a
    new, empty one (its owner's choice).
    """
    if postgres_version is None and api is None:
        return _enqueue_onto_volume(
            project=project, action="start", transitional=S.STARTING, requested_by=requested_by, allow_empty_database=allow_empty_database
        )
    version, flavour = str(postgres_version or project.postgres_version), api or project.api_flavour
    project_check_offered(postgres_version=version, api=flavour)
    with transaction.atomic():
        # Checked under the project's lock with the enqueue: no create of it may have succeeded in between.
        locked = Project.objects.select_for_update().get(pk=project.pk)
        if not project_never_ran(locked):
            raise InvalidTransition(
                "only a project whose create failed can be retried with another postgres_version or api; "
                f"this one is {locked.status} and has run"
            )
        Project.objects.filter(pk=project.pk).update(postgres_version=version, api_flavour=flavour)
        return _enqueue_onto_volume(
            project=locked, action="start", transitional=S.STARTING, requested_by=requested_by, allow_empty_database=allow_empty_database
        )


def _enqueue_onto_volume(*, project: Project, action: str, transitional: str, requested_by: User | None, allow_empty_database: bool) -> Operation:
    """Queue a start or restore, the two actions that bring a stack up on the project's data volume."""
    # Giving a project that held data an empty database is its owner's choice
    # (staff act on the project, not on what it holds); None is Berth itself.
    if not isinstance(allow_empty_database, bool):
        raise InvalidInput("allow_empty_database", "must be true or false")
    if allow_empty_database and requested_by is not None and requested_by.pk != project.owner_id:
        raise Forbidden("only the project's owner can allow it an empty database")
    return operation_enqueue(
        project=project, kind=action, action=action, transitional=transitional, requested_by=requested_by,
        allow_empty_database=allow_empty_database,
    )  # fmt: skip


def project_delete(*, project: Project, requested_by: User | None = None) -> Operation:
    """Soft delete: containers go, the volume and the ports stay until purge."""
    return operation_enqueue(project=project, kind="delete", action="delete", transitional=S.DELETING, requested_by=requested_by)


def project_restore(*, project: Project, requested_by: User | None = None, allow_empty_database: bool = False) -> Operation:
    """Bring a deleted project back, stopped, with the same ports and data; `allow_empty_database` as for start."""
    return _enqueue_onto_volume(project=project, action="restore", transitional=S.RESTORING, requested_by=requested_by, allow_empty_database=allow_empty_database)


def project_purge(*, project: Project, confirm: str | None, requested_by: User | None = None) -> Operation:
    """Remove a deleted project's data for good; `confirm` must repeat its id."""
    if confirm != project.public_id:
        raise InvalidInput("confirm", f"must be the project's id ({project.public_id}) to purge it for good")
    node_assert_up(project=project, doing="purge", unless_forgotten=True)
    return operation_enqueue(project=project, kind="purge", action="purge", transitional=S.PURGING, requested_by=requested_by)
