"""Every legal and illegal transition of the lifecycle, through the services, against FakeRuntime."""

import pytest
from django.utils import timezone

from projects.models import Project
from projects.services.lifecycle import requests as lifecycle
from projects.services.upgrades import requests as upgrades
from projects.services.errors import InvalidTransition

S = Project.Status

ACTIONS = {
    "stop": lambda p: lifecycle.project_stop(project=p),
    "start": lambda p: lifecycle.project_start(project=p),
    "delete": lambda p: lifecycle.project_delete(project=p),
    "restore": lambda p: lifecycle.project_restore(project=p),
    "purge": lambda p: lifecycle.project_purge(project=p, confirm=p.public_id),
    "upgrade": lambda p: upgrades.project_upgrade(project=p, postgres_version="17"),
    "rollback_upgrade": lambda p: upgrades.project_rollback_upgrade(project=p),
    "drop_kept_volume": lambda p: upgrades.project_kept_volume_drop(project=p),
}
# These two need a project an upgrade left a kept volume to.
UPGRADE_ACTIONS = {"rollback_upgrade", "drop_kept_volume"}

# (status, deleted?) -> actions accepted, and the status each one settles in.
# A rollback settles as it found the project (a failed one comes back running);
# dropping the kept volume keeps the status.
LEGAL = {
    (S.RUNNING, False): {
        "stop": S.STOPPED, "start": S.RUNNING, "delete": S.DELETED, "upgrade": S.RUNNING, "rollback_upgrade": S.RUNNING,
        "drop_kept_volume": S.RUNNING,
    },
    (S.STOPPED, False): {
        "start": S.RUNNING, "stop": S.STOPPED, "delete": S.DELETED, "rollback_upgrade": S.STOPPED, "drop_kept_volume": S.STOPPED,
    },
    (S.DELETED, True): {"restore": S.STOPPED, "purge": S.PURGED},
    (S.FAILED, False): {
        "start": S.RUNNING, "stop": S.STOPPED, "delete": S.DELETED, "rollback_upgrade": S.RUNNING, "drop_kept_volume": S.FAILED,
    },
    (S.FAILED, True): {"delete": S.DELETED, "restore": S.STOPPED, "purge": S.PURGED},
}
ALL_STATES = [
    (S.PROVISIONING, False), (S.STOPPING, False), (S.STARTING, False), (S.DELETING, False),
    (S.RESTORING, True), (S.PURGING, True), (S.PURGED, True), (S.UPGRADING, False), *LEGAL,
]  # fmt: skip


def project_in(user, status: str, deleted: bool, *, upgraded: bool = False, runtime=None) -> Project:
    op = lifecycle.project_create(owner=user, name="t", postgres_version="15")
    project = Project.objects.get(pk=op.project_id)
    Project.objects.filter(pk=project.pk).update(status=status, deleted_at=timezone.now() if deleted else None)
    if upgraded:
        # Upgraded from 15 to 17 on a new volume, the old one kept.
        runtime.volumes[f"project_{project.public_id}_data_pg17"] = project.public_id
        runtime.mounts[f"project_{project.public_id}_db"] = f"project_{project.public_id}_data_pg17"
        Project.objects.filter(pk=project.pk).update(
            postgres_version="17", volume_version="17", kept_postgres_version="15", kept_at=timezone.now()
        )
    project.refresh_from_db()
    return project


@pytest.mark.parametrize("status, deleted", ALL_STATES)
@pytest.mark.parametrize("action", sorted(ACTIONS))
def test_each_status_accepts_exactly_its_actions(user, fake_runtime, status, deleted, action):
    project = project_in(user, status, deleted, upgraded=action in UPGRADE_ACTIONS, runtime=fake_runtime)
    expected = LEGAL.get((status, deleted), {}).get(action)
    if expected is None:
        with pytest.raises(InvalidTransition, match=f"cannot {action} a project that is {status}"):
            ACTIONS[action](project)
        project.refresh_from_db()
        assert project.status == status  # a refused action changes nothing
        assert project.operations.count() == 1  # only the create
    else:
        operation = ACTIONS[action](project)
        operation.refresh_from_db()
        project.refresh_from_db()
        assert (operation.state, project.status) == ("succeeded", expected)


def test_create_settles_running_through_provisioning(user, fake_runtime):
    op = lifecycle.project_create(owner=user, name="fresh")
    project = Project.objects.get(pk=op.project_id)
    assert project.status == S.RUNNING and project.health == "healthy"
    assert fake_runtime.calls["stack_up"] == 1 and fake_runtime.calls["stack_wait_ready"] == 1
