"""Sync against FakeRuntime: health follows the engine, drift is reported, nothing is removed."""

from projects.models import Project, installation_id
from projects.runtime import RuntimeUnavailable
from projects.runtime.base import ContainerState
from projects.services import lifecycle
from projects.services.sync import projects_sync

H = Project.Health


def running_project(user, name: str = "s") -> Project:
    return Project.objects.get(pk=lifecycle.project_create(owner=user, name=name).project_id)


def test_a_healthy_stack_is_reported_healthy_without_drift(user, fake_runtime):
    project = running_project(user)
    report = projects_sync()
    project.refresh_from_db()
    assert project.health == H.HEALTHY and project.observed_at is not None
    assert report.drift == [] and report.checked == 1


def test_a_vanished_container_turns_health_missing_and_is_drift_fixed_by_start(user, fake_runtime):
    project = running_project(user)
    del fake_runtime.containers_by_name[f"project_{project.public_id}_db"]
    report = projects_sync()
    project.refresh_from_db()
    assert (project.status, project.health) == ("running", H.MISSING)  # sync never changes status
    [drift] = report.drift
    assert drift.project_id == project.public_id and "missing" in drift.problem and "start" in drift.fix
    lifecycle.project_start(project=project)
    projects_sync()
    project.refresh_from_db()
    assert project.health == H.HEALTHY


def test_an_exited_container_turns_health_down_or_unhealthy(user, fake_runtime):
    project = running_project(user)
    fake_runtime.set_status(f"project_{project.public_id}_api", "exited")
    projects_sync()
    project.refresh_from_db()
    assert project.health == H.UNHEALTHY  # the database still runs
    fake_runtime.set_status(f"project_{project.public_id}_db", "exited")
    report = projects_sync()
    project.refresh_from_db()
    assert project.health == H.DOWN
    assert "stopped" in report.drift[0].problem


def test_a_stopped_database_is_down_even_while_the_api_runs(user, fake_runtime):
    # The database is the project: `docker kill` of the db alone must read as down.
    project = running_project(user)
    fake_runtime.set_status(f"project_{project.public_id}_db", "exited")
    [drift] = projects_sync().drift
    project.refresh_from_db()
    assert project.health == H.DOWN
    assert drift.problem == "running, but its database container is stopped" and "start" in drift.fix


def test_an_unhealthy_healthcheck_is_unhealthy(user, fake_runtime):
    project = running_project(user)
    fake_runtime.set_status(f"project_{project.public_id}_db", "running", "unhealthy")
    projects_sync()
    project.refresh_from_db()
    assert project.health == H.UNHEALTHY


def test_a_stopped_project_with_stopped_containers_is_not_drift(user, fake_runtime):
    project = running_project(user)
    lifecycle.project_stop(project=project)
    report = projects_sync()
    project.refresh_from_db()
    assert project.health == H.DOWN and report.drift == []


def test_an_unknown_berth_container_is_reported_and_never_removed(user, fake_runtime):
    stray = ContainerState(name="project_ffffffffffff_db", project_id="ffffffffffff", service="db", status="running", install=installation_id())
    fake_runtime.containers_by_name[stray.name] = stray
    report = projects_sync()
    [drift] = report.drift
    assert drift.project_id == "ffffffffffff" and "without a project" in drift.problem
    assert stray.name in fake_runtime.containers_by_name
    assert fake_runtime.calls["stack_remove_containers"] == fake_runtime.calls["stack_purge"] == 0


def test_containers_of_a_deleted_project_are_drift(user, fake_runtime):
    project = running_project(user)
    lifecycle.project_delete(project=project)
    stray = ContainerState(name=f"project_{project.public_id}_db", project_id=project.public_id, service="db", status="running")
    fake_runtime.containers_by_name[stray.name] = stray
    [drift] = projects_sync().drift
    assert "deleted, but containers exist" in drift.problem and "delete" in drift.fix


def test_one_pass_makes_one_engine_call_whatever_the_number_of_projects(user, fake_runtime):
    for n in range(5):
        running_project(user, f"s{n}")
    fake_runtime.calls.clear()
    projects_sync()
    assert sum(fake_runtime.calls.values()) == 1


def test_an_unreachable_engine_makes_health_unknown_and_changes_no_status(user, fake_runtime):
    project = running_project(user)
    fake_runtime.fail_with("containers", RuntimeUnavailable("Docker Engine unreachable at unix:///nowhere"))
    report = projects_sync()
    project.refresh_from_db()
    assert report.engine_error.startswith("Docker Engine unreachable")
    assert (project.status, project.health) == ("running", H.UNKNOWN)


def test_a_backups_throwaway_container_is_not_drift_for_a_deleted_project(user, fake_runtime):
    project = running_project(user)
    lifecycle.project_delete(project=project)
    verifier = ContainerState(
        name=f"project_{project.public_id}_verify_abc", project_id=project.public_id, service="backup-verify", status="running"
    )
    fake_runtime.containers_by_name[verifier.name] = verifier
    assert projects_sync().drift == []


def test_a_healthcheck_still_starting_keeps_a_project_just_proven_healthy(user, fake_runtime):
    # Right after a start the engine's healthcheck says "starting": no verdict,
    # so the health the operation proved (a real query) stands.
    project = running_project(user)
    fake_runtime.set_status(f"project_{project.public_id}_db", "running", "starting")
    projects_sync()
    project.refresh_from_db()
    assert project.health == H.HEALTHY


def test_a_healthcheck_still_starting_after_an_outage_is_not_yet_healthy(user, fake_runtime):
    project = running_project(user)
    Project.objects.filter(pk=project.pk).update(health=H.DOWN)  # the watcher saw it die
    fake_runtime.set_status(f"project_{project.public_id}_db", "running", "starting")
    projects_sync()
    project.refresh_from_db()
    assert project.health == H.UNHEALTHY
