"""Project networks on subnets Berth allocates itself (issue 15, item 1), against FakeRuntime."""

import pytest

from projects.models import Operation, Project
from projects.services.backups import requests as backups
from projects.services.lifecycle import requests as lifecycle


def create(user) -> Project:
    return Project.objects.get(pk=lifecycle.project_create(owner=user).project_id)


def network(fake_runtime, project: Project) -> str:
    return fake_runtime.subnets.get(f"project_{project.public_id}_net", "")


def test_each_projects_network_gets_the_next_subnet_of_the_pool_recorded_on_its_row(user, fake_runtime):
    first, second = create(user), create(user)
    assert (first.network_subnet, second.network_subnet) == ("10.240.0.0/28", "10.240.0.16/28")
    assert network(fake_runtime, first) == "10.240.0.0/28" and network(fake_runtime, second) == "10.240.0.16/28"


def test_subnets_other_networks_on_the_engine_use_are_skipped(user, fake_runtime):
    fake_runtime.foreign_subnets |= {"10.240.0.0/24", "172.17.0.0/16"}
    assert create(user).network_subnet == "10.240.1.0/28"


def test_a_subnet_taken_on_the_engine_since_it_was_recorded_is_replaced(user, fake_runtime):
    project = create(user)
    lifecycle.project_delete(project=project)
    project.refresh_from_db()
    # Its network vanished, and another Berth made one on the same subnet meanwhile.
    fake_runtime.networks.pop(f"project_{project.public_id}_net")
    fake_runtime.subnets.pop(f"project_{project.public_id}_net")
    fake_runtime.foreign_subnets.add("10.240.0.0/28")
    lifecycle.project_restore(project=project)
    project.refresh_from_db()
    assert project.status == Project.Status.STOPPED
    assert project.network_subnet == network(fake_runtime, project) == "10.240.0.16/28"


def test_a_project_made_before_subnets_gets_one_when_its_stack_is_next_brought_up(user, fake_runtime):
    project = create(user)
    Project.objects.filter(pk=project.pk).update(network_subnet=None)
    fake_runtime.networks.pop(f"project_{project.public_id}_net")
    fake_runtime.subnets.clear()
    project.refresh_from_db()
    lifecycle.project_start(project=project)
    project.refresh_from_db()
    assert project.status == Project.Status.RUNNING and project.network_subnet == network(fake_runtime, project) == "10.240.0.0/28"


def test_delete_keeps_the_subnet_and_only_purge_releases_it(user, fake_runtime):
    project = create(user)
    lifecycle.project_delete(project=project)
    project.refresh_from_db()
    assert project.network_subnet == "10.240.0.0/28"
    assert create(user).network_subnet == "10.240.0.16/28"
    lifecycle.project_purge(project=project, confirm=project.public_id)
    project.refresh_from_db()
    assert project.status == Project.Status.PURGED and project.network_subnet is None
    assert create(user).network_subnet == "10.240.0.0/28"


def test_an_exhausted_pool_fails_the_operation_naming_the_setting(user, fake_runtime, settings):
    settings.BERTH_NETWORK_POOL = ("10.240.0.0/27", 28)  # two subnets
    create(user), create(user)
    operation = lifecycle.project_create(owner=user)
    operation.refresh_from_db()
    assert operation.state == Operation.State.FAILED
    assert "no free /28 subnet left in BERTH_NETWORK_POOL 10.240.0.0/27" in operation.error
    assert Project.objects.get(pk=operation.project_id).status == Project.Status.FAILED


@pytest.mark.parametrize("status", ["stopped", "deleted"])
def test_backups_and_a_purges_final_backup_make_no_network(user, fake_runtime, status):
    project = create(user)
    if status == "stopped":
        lifecycle.project_stop(project=project)
    else:
        lifecycle.project_delete(project=project)
    project.refresh_from_db()
    # Even with the engine's pools and Berth's own exhausted: nothing here needs an address.
    fake_runtime.foreign_subnets.add("0.0.0.0/0")
    networks = dict(fake_runtime.networks)
    if status == "stopped":
        operation = backups.project_backup(project=project)
        operation.refresh_from_db()
        assert operation.state == Operation.State.SUCCEEDED, operation.error
        assert fake_runtime.networks == networks
    else:
        operation = lifecycle.project_purge(project=project, confirm=project.public_id)
        operation.refresh_from_db()
        assert operation.state == Operation.State.SUCCEEDED, operation.error
        assert fake_runtime.networks == {} and project.backups.get().state == "verified"
