"""The drift report against FakeRuntime: every mismatch listed with its fix, nothing removed, nothing changed."""

from dataclasses import replace

import pytest
from django.core.management import call_command

from projects.models import Installation, Project, installation_id
from projects.runtime import RuntimeUnavailable
from projects.runtime.base import ContainerState
from projects.services.lifecycle import requests as lifecycle
from projects.services.backups.schedule import backups_settle_orphans
from projects.services.fleet.drift import drift_report
from projects.services.fleet.watcher import projects_sync

S = Project.Status
STRAY = "0123456789ab"


def running_project(user) -> Project:
    return Project.objects.get(pk=lifecycle.project_create(owner=user, name="d").project_id)


def assert_nothing_removed(fake_runtime) -> None:
    assert fake_runtime.calls["stack_remove_containers"] == fake_runtime.calls["stack_purge"] == 0


def report_command(capsys) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exited:
        call_command("sync_projects", "--report")
    out = capsys.readouterr()
    return exited.value.code, out.out, out.err


def test_a_healthy_stack_has_no_drift_and_the_command_exits_0(user, fake_runtime, capsys):
    running_project(user)
    report = drift_report()
    assert report.entries == [] and report.projects_checked == 1 and report.objects_checked == 4
    call_command("sync_projects", "--report")  # no SystemExit: exit status 0
    assert "1 project(s) and 4 engine object(s) checked, 0 drift; nothing was changed" in capsys.readouterr().out


def stray_objects(fake_runtime, install: str, project_id: str = STRAY) -> None:
    """A db container, a network and a volume of `project_id`, labelled as made by `install`."""
    fake_runtime.containers_by_name[f"project_{project_id}_db"] = ContainerState(
        name=f"project_{project_id}_db", project_id=project_id, service="db", status="running", install=install
    )
    fake_runtime.networks[f"project_{project_id}_net"] = project_id
    fake_runtime.volumes[f"project_{project_id}_data"] = project_id
    fake_runtime.installs[f"project_{project_id}_net"] = fake_runtime.installs[f"project_{project_id}_data"] = install


def test_objects_without_a_project_are_listed_each_with_a_manual_fix_and_kept(user, fake_runtime, capsys):
    stray_objects(fake_runtime, installation_id())
    fake_runtime.volumes["berth_unlabelled_data"] = ""
    fake_runtime.installs["berth_unlabelled_data"] = installation_id()

    entries = drift_report().entries

    assert [(e.kind, e.subject) for e in entries] == [
        ("orphan", f"project_{STRAY}_db"),
        ("orphan", f"project_{STRAY}_net"),
        ("orphan", "berth_unlabelled_data"),
        ("orphan", f"project_{STRAY}_data"),
    ]
    assert entries[0].problem == f"Berth-labelled container with project {STRAY}, which Berth has no record of"
    assert entries[0].fix == f"nothing automatic: inspect it, then `docker rm -f project_{STRAY}_db` if it is not needed"
    assert entries[2].problem == "Berth-labelled volume with no project label"
    assert "`docker volume rm project_0123456789ab_data`" in entries[3].fix
    code, out, _ = report_command(capsys)
    assert code == 1 and f"orphan: project_{STRAY}_net:" in out and "4 drift; nothing was changed" in out
    assert f"project_{STRAY}_data" in fake_runtime.volumes
    assert_nothing_removed(fake_runtime)


def test_another_installations_objects_are_neither_drift_nor_orphans_nor_touched(user, fake_runtime, capsys):
    project = running_project(user)
    stray_objects(fake_runtime, "0ther0install")
    # Even one carrying a project id this installation knows: the label decides.
    fake_runtime.containers_by_name["project_x_dump_y"] = ContainerState(
        name="project_x_dump_y", project_id=project.public_id, service="backup-dump", status="running", install="0ther0install"
    )

    report = drift_report()
    assert report.entries == [] and report.objects_checked == 4
    assert projects_sync().drift == []
    assert backups_settle_orphans().cleaned == []
    assert "project_x_dump_y" in fake_runtime.containers_by_name and f"project_{STRAY}_db" in fake_runtime.containers_by_name
    assert_nothing_removed(fake_runtime)


def test_unlabelled_objects_of_this_installations_projects_are_adopted_and_others_left_unreported(user, fake_runtime):
    project = running_project(user)
    # Made before installations were labelled: the project's stack, and a stray of a project nobody here knows.
    for name, state in list(fake_runtime.containers_by_name.items()):
        fake_runtime.containers_by_name[name] = replace(state, install="")
    for name in fake_runtime.installs:
        fake_runtime.installs[name] = ""
    stray_objects(fake_runtime, "")

    assert drift_report().entries == []
    assert projects_sync().drift == []
    project.refresh_from_db()
    assert project.health == Project.Health.HEALTHY


def test_the_installation_id_is_made_once_and_labels_every_object(user, fake_runtime):
    running_project(user)
    install_id = installation_id()
    assert Installation.objects.count() == 1 and installation_id() == install_id
    assert {c.install for c in fake_runtime.containers_by_name.values()} == {install_id}
    assert set(fake_runtime.installs.values()) == {install_id}


def test_a_running_project_whose_containers_vanished_is_fixed_by_start(user, fake_runtime):
    project = running_project(user)
    fake_runtime.stack_remove_containers(project.public_id)
    fake_runtime.calls.clear()
    [entry] = drift_report().of(project.public_id)
    assert (entry.kind, entry.problem) == ("project", "running, but its containers are missing")
    assert entry.fix.startswith("start recreates")
    assert_nothing_removed(fake_runtime)


def test_a_running_project_whose_database_stopped_is_fixed_by_start(user, fake_runtime):
    project = running_project(user)
    fake_runtime.set_status(f"project_{project.public_id}_db", "exited")
    [entry] = drift_report().of(project.public_id)
    assert entry.problem == "running, but its database container is stopped" and entry.fix.startswith("start")


def test_a_stopped_project_whose_containers_run_is_fixed_by_stop(user, fake_runtime):
    project = running_project(user)
    lifecycle.project_stop(project=project)
    for service in ("db", "api"):
        fake_runtime.set_status(f"project_{project.public_id}_{service}", "running")
    [entry] = drift_report().of(project.public_id)
    assert (entry.problem, entry.fix) == ("stopped, but its containers are running", "stop stops them")


def test_a_container_publishing_another_port_is_a_port_mismatch(user, fake_runtime):
    project = running_project(user)
    name = f"project_{project.public_id}_api"
    fake_runtime.containers_by_name[name] = replace(fake_runtime.containers_by_name[name], host_ports=(19999,))
    [entry] = drift_report().of(project.public_id)
    assert entry.kind == "ports"
    assert entry.problem == f"{name} publishes port 19999, the project's api port is {project.api_port}"
    assert entry.fix.startswith("delete then restore")


def test_a_missing_data_volume_is_reported_because_start_would_make_an_empty_database(user, fake_runtime):
    project = running_project(user)
    del fake_runtime.volumes[f"project_{project.public_id}_data"]
    [entry] = drift_report().of(project.public_id)
    assert entry.kind == "volume" and "data volume" in entry.problem and "empty database" in entry.fix


def test_a_purged_projects_leftover_volume_is_an_orphan(user, fake_runtime):
    project = running_project(user)
    lifecycle.project_delete(project=project)
    lifecycle.project_purge(project=project, confirm=project.public_id)
    fake_runtime.volumes[f"project_{project.public_id}_data"] = project.public_id
    [entry] = drift_report().entries
    assert (entry.kind, entry.subject) == ("orphan", f"project_{project.public_id}_data")
    assert entry.problem == f"Berth-labelled volume with project {project.public_id}, which is purged"


def test_a_deleted_project_keeps_its_volume_without_drift(user, fake_runtime):
    project = running_project(user)
    lifecycle.project_delete(project=project)
    assert drift_report().entries == []


def test_the_report_changes_no_row(user, fake_runtime):
    project = running_project(user)
    fake_runtime.stack_remove_containers(project.public_id)
    before = Project.objects.values().get(pk=project.pk)
    drift_report()
    assert Project.objects.values().get(pk=project.pk) == before


def test_an_unreachable_engine_exits_2_with_the_error(user, fake_runtime, capsys):
    fake_runtime.fail_with("inventory", RuntimeUnavailable("Docker Engine unreachable at unix:///nowhere"))
    assert drift_report().engine_error == "Docker Engine unreachable at unix:///nowhere"
    code, _, err = report_command(capsys)
    assert code == 2 and "engine unreachable: Docker Engine unreachable at unix:///nowhere" in err


def test_the_staff_page_lists_each_entry_with_its_fix_and_changes_nothing(user, fake_runtime, client, django_user_model):
    project = running_project(user)
    fake_runtime.stack_remove_containers(project.public_id)
    fake_runtime.volumes[f"project_{STRAY}_data"] = STRAY
    fake_runtime.installs[f"project_{STRAY}_data"] = installation_id()
    fake_runtime.calls.clear()
    client.force_login(django_user_model.objects.create_user("ops", password="ops-password-1", is_staff=True))
    page = client.get("/drift").content.decode()
    assert "running, but its containers are missing" in page and "start recreates or restarts them" in page
    assert f"project_{STRAY}_data" in page and "docker volume rm" in page
    assert "2 mismatches" in page
    assert_nothing_removed(fake_runtime)


def test_the_staff_page_says_when_the_engine_cannot_be_reached(user, fake_runtime, client, django_user_model):
    fake_runtime.fail_with("inventory", RuntimeUnavailable("Docker Engine unreachable at unix:///nowhere"))
    client.force_login(django_user_model.objects.create_user("ops", password="ops-password-1", is_staff=True))
    response = client.get("/drift")
    assert response.status_code == 200
    assert "Docker Engine unreachable at unix:///nowhere" in response.content.decode()


def test_a_pooled_stack_is_berths_no_orphan_and_its_lost_volume_is_drift(db, settings, fake_runtime):
    from projects.services.pool.requests import pool_refill

    settings.BERTH_WARM_POOL = ((None, None, 1),)
    pool_refill()
    project = Project.objects.get(owner__isnull=True, status=S.POOLED)
    assert drift_report().entries == []
    del fake_runtime.volumes[f"project_{project.public_id}_data"]
    [entry] = drift_report().entries
    assert (entry.kind, entry.subject) == ("volume", project.public_id)
