"""Lifecycle services against FakeRuntime: outcomes, failures, retries, idempotency."""

import pytest
from django.db import IntegrityError, transaction

from projects.models import Operation, Project
from projects.runtime import ImageUnavailable, RuntimeUnavailable
from projects.services.lifecycle import requests as lifecycle
from projects.services.operations import steps
from projects.services.errors import InvalidInput, OperationInFlight
from projects.services.operations.queue import operation_execute

S = Project.Status


def create(user, **kwargs) -> Project:
    op = lifecycle.project_create(owner=user, **kwargs)
    return Project.objects.get(pk=op.project_id)


def test_create_reserves_ports_and_encrypted_secrets(user, settings):
    project = create(user, name="shop", postgres_version="15", api="postgraphile")
    assert project.name == "shop" and project.postgres_version == "15" and project.api_flavour == "postgraphile"
    assert settings.BERTH_DB_PORTS[0] <= project.db_port <= settings.BERTH_DB_PORTS[1]
    assert settings.BERTH_API_PORTS[0] <= project.api_port <= settings.BERTH_API_PORTS[1]
    assert len(project.db_password) >= 24 and project.db_password not in project.db_password_encrypted
    assert len(project.jwt_secret) >= 32 and project.jwt_secret not in project.jwt_secret_encrypted


def test_create_uses_the_configured_defaults(user, settings):
    settings.BERTH_DEFAULT_POSTGRES_VERSION, settings.BERTH_DEFAULT_API = "15", "postgraphile"
    project = create(user)
    assert (project.postgres_version, project.api_flavour) == ("15", "postgraphile")
    assert project.name == f"project-{project.public_id}"


@pytest.mark.parametrize(
    "kwargs, field",
    [({"postgres_version": "9"}, "postgres_version"), ({"api": "soap"}, "api"), ({"name": "x" * 64}, "name")],
)
def test_create_refuses_bad_input_and_reserves_nothing(user, kwargs, field):
    with pytest.raises(InvalidInput) as caught:
        lifecycle.project_create(owner=user, **kwargs)
    assert caught.value.field == field
    assert Project.objects.count() == 0


def test_missing_image_fails_the_create_with_the_image_named(user, fake_runtime, settings):
    fake_runtime.images = {"postgres:17"}
    project = create(user)
    op = project.operations.get()
    assert project.status == S.FAILED and op.state == "failed"
    assert settings.BERTH_POSTGREST_IMAGE in op.error
    assert fake_runtime.inventory().containers == ()


def test_a_failed_create_is_retried_by_start_and_converges(user, fake_runtime):
    fake_runtime.fail_with("stack_wait_ready", RuntimeUnavailable("Docker Engine unreachable at unix:///x"))
    project = create(user)
    assert project.status == S.FAILED
    assert project.operations.get().error == "Docker Engine unreachable at unix:///x"
    fake_runtime.heal()
    lifecycle.project_start(project=project)
    project.refresh_from_db()
    assert project.status == S.RUNNING
    assert len(fake_runtime.stack_state(project.public_id).containers) == 2


def test_an_unexpected_error_fails_the_operation_without_its_text(user, fake_runtime, monkeypatch):
    def explode(spec, **kwargs):
        raise ValueError("password=hunter2 leaked into an exception")

    monkeypatch.setattr(fake_runtime, "stack_up", explode)
    project = create(user)
    op = project.operations.get()
    assert project.status == S.FAILED
    assert "hunter2" not in op.error and "ValueError" in op.error


def test_a_second_action_while_one_is_in_flight_is_refused_naming_it(user):
    project = create(user)
    running = Operation.objects.create(project=project, kind="stop", state="running")
    with pytest.raises(OperationInFlight, match=running.public_id) as caught:
        lifecycle.project_start(project=project)
    assert caught.value.operation == running


def test_the_database_refuses_two_operations_in_flight_for_one_project(user):
    project = create(user)
    Operation.objects.create(project=project, kind="stop", state="queued")
    with pytest.raises(IntegrityError), transaction.atomic():
        Operation.objects.create(project=project, kind="start", state="running")


def test_operations_on_different_projects_do_not_block_each_other(user):
    first, second = create(user), create(user)
    Operation.objects.create(project=first, kind="stop", state="running")
    lifecycle.project_stop(project=second)
    second.refresh_from_db()
    assert second.status == S.STOPPED


def test_delivering_an_operation_twice_runs_it_once(user, fake_runtime):
    project = create(user)
    op = project.operations.get()
    calls = fake_runtime.calls["stack_up"]
    again = operation_execute(op.pk, steps.STEPS["create"])
    assert again.state == "succeeded" and fake_runtime.calls["stack_up"] == calls


def test_delete_keeps_volume_and_ports_and_sets_the_purge_clock(user, fake_runtime, settings):
    settings.BERTH_DELETE_RETENTION_DAYS = 3
    project = create(user)
    ports = (project.db_port, project.api_port)
    lifecycle.project_delete(project=project)
    project.refresh_from_db()
    assert project.status == S.DELETED
    assert (project.db_port, project.api_port) == ports
    assert round((project.purge_after - project.deleted_at).total_seconds()) == 3 * 86400
    state = fake_runtime.stack_state(project.public_id)
    assert state.containers == () and state.volume and state.network


def test_restore_brings_back_the_same_ports_stopped(user, fake_runtime):
    project = create(user)
    urls = (project.db_url(), project.api_url)
    lifecycle.project_delete(project=project)
    lifecycle.project_restore(project=project)
    project.refresh_from_db()
    assert project.status == S.STOPPED and project.deleted_at is None and project.purge_after is None
    assert (project.db_url(), project.api_url) == urls
    assert {c.status for c in fake_runtime.stack_state(project.public_id).containers} == {"created"}


def test_purge_needs_the_project_id_as_confirmation(user):
    project = create(user)
    lifecycle.project_delete(project=project)
    with pytest.raises(InvalidInput, match="confirm"):
        lifecycle.project_purge(project=project, confirm=project.name)
    project.refresh_from_db()
    assert project.status == S.DELETED


def test_purge_removes_everything_and_frees_the_ports(user, fake_runtime):
    project = create(user)
    ports = (project.db_port, project.api_port)
    lifecycle.project_delete(project=project)
    lifecycle.project_purge(project=project, confirm=project.public_id)
    project.refresh_from_db()
    assert project.status == S.PURGED and project.db_port is None and project.api_port is None
    assert project.db_url() is None and project.api_url is None
    assert fake_runtime.inventory().volumes == {} and fake_runtime.inventory().networks == {}
    reused = create(user)
    assert reused.db_port == ports[0]


def test_a_failed_purge_is_retried_from_failed(user, fake_runtime):
    project = create(user)
    lifecycle.project_delete(project=project)
    fake_runtime.fail_with("stack_purge", RuntimeUnavailable("engine down"))
    lifecycle.project_purge(project=project, confirm=project.public_id)
    project.refresh_from_db()
    assert project.status == S.FAILED and project.is_deleted
    fake_runtime.heal()
    lifecycle.project_purge(project=project, confirm=project.public_id)
    project.refresh_from_db()
    assert project.status == S.PURGED


def test_stop_of_a_project_whose_image_vanished_still_stops(user, fake_runtime):
    project = create(user)
    fake_runtime.images = set()  # stop needs no image
    lifecycle.project_stop(project=project)
    project.refresh_from_db()
    assert project.status == S.STOPPED


def test_an_image_error_on_start_names_the_image(user, fake_runtime):
    project = create(user)
    lifecycle.project_stop(project=project)
    fake_runtime.fail_with("stack_up", ImageUnavailable("image postgres:17 is not on the engine"))
    op = lifecycle.project_start(project=project)
    op.refresh_from_db()
    assert op.state == "failed" and "postgres:17" in op.error


@pytest.mark.parametrize("action, status", [("stop", S.RUNNING), ("delete", S.RUNNING), ("start", S.STOPPED)])
def test_an_unreachable_engine_fails_the_operation_and_changes_nothing(user, fake_runtime, action, status):
    project = create(user)
    if status == S.STOPPED:
        lifecycle.project_stop(project=project)
    fake_runtime.fail_with("ping", RuntimeUnavailable("Docker Engine unreachable at unix:///nowhere: refused"))
    op = getattr(lifecycle, f"project_{action}")(project=project)
    op.refresh_from_db()
    project.refresh_from_db()
    assert op.state == "failed" and op.error.startswith("Docker Engine unreachable at unix:///nowhere")
    assert project.status == status and project.deleted_at is None


def test_a_create_with_an_unreachable_engine_fails_and_start_retries_it(user, fake_runtime):
    fake_runtime.fail_with("ping", RuntimeUnavailable("Docker Engine unreachable at unix:///nowhere"))
    project = create(user)
    assert project.status == S.FAILED  # provisioning is no place to stay
    fake_runtime.heal()
    lifecycle.project_start(project=project)
    project.refresh_from_db()
    assert project.status == S.RUNNING
