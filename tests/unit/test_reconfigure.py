"""Changing a project after creation and rotating its credentials (services/settings/requests.py), on FakeRuntime."""

import pytest
from django.contrib.auth.models import Permission
from django.utils import timezone

from projects.keys import project_keys
from projects.models import Operation, Project
from projects.stack.spec import settings_sql, stack_spec
from projects.services.lifecycle import requests as lifecycle
from projects.services.errors import InvalidInput, InvalidTransition, NotPermitted, OperationInFlight
from projects.services.settings.requests import project_change, project_rotate

S = Project.Status


@pytest.fixture
def running(user) -> Project:
    return Project.objects.get(pk=lifecycle.project_create(owner=user, name="shop").project_id)


@pytest.fixture
def stopped(running, user) -> Project:
    lifecycle.project_stop(project=running, requested_by=user)
    running.refresh_from_db()
    return running


def row(project: Project) -> tuple:
    """Everything a refused change must leave as it was."""
    p = Project.objects.get(pk=project.pk)
    return (
        p.name, p.status, p.db_memory, p.api_memory, p.postgres_settings, p.restart_pending,
        p.db_password, p.jwt_secret, p.authenticator_password, p.operations.count(),
    )  # fmt: skip


def test_a_project_starts_with_todays_memory_settings_and_no_settings_of_its_own(running, settings):
    assert (running.db_memory, running.api_memory) == (settings.BERTH_DB_MEMORY, settings.BERTH_API_MEMORY)
    assert running.postgres_settings == {} and not running.restart_pending


def test_a_reloadable_setting_on_a_running_project_is_checked_by_the_server_then_applied_by_reconfigure(running, user, fake_runtime):
    project, operation = project_change(project=running, requested_by=user, postgres_settings={"work_mem": "8MB", "timezone": "Europe/Paris"})
    assert operation is not None and operation.kind == "reconfigure"
    operation.refresh_from_db()
    assert operation.state == "succeeded"
    assert project.postgres_settings == {"work_mem": "8MB", "timezone": "Europe/Paris"}
    assert project.status == S.RUNNING and not project.restart_pending
    # The server took the trial values, then got the project's current ones back.
    trial, restored = fake_runtime.server_sql[-2:]
    assert "ALTER SYSTEM SET work_mem = '8MB';" in trial and "ALTER SYSTEM SET timezone = 'Europe/Paris';" in trial
    assert restored == settings_sql({**stack_spec_settings(running)})
    # The reconfigure ran the bootstrap, which writes them and reloads.
    bootstrap = fake_runtime.specs[running.public_id].db_probe.bootstrap_sql
    assert "ALTER SYSTEM SET work_mem = '8MB';" in bootstrap and bootstrap.rstrip().endswith("SELECT pg_reload_conf();")


def stack_spec_settings(project: Project) -> dict[str, str]:
    from projects.stack.spec import postgres_settings

    return postgres_settings()


def test_a_value_the_server_refuses_is_400_with_its_words_and_changes_nothing(running, user, fake_runtime):
    before = row(running)
    with pytest.raises(InvalidInput, match='the server refused it: invalid value for parameter "TimeZone": "Mars/Olympus"') as refused:
        project_change(project=running, requested_by=user, postgres_settings={"timezone": "Mars/Olympus"}, name="renamed")
    assert refused.value.field == "postgres_settings"
    assert row(running) == before
    # The file holds the current values again.
    assert fake_runtime.server_sql[-1] == settings_sql(stack_spec_settings(running))


def test_a_restart_setting_is_kept_and_pending_until_the_next_start(running, user):
    project, operation = project_change(project=running, requested_by=user, postgres_settings={"max_connections": "80"})
    assert operation is None
    assert project.postgres_settings == {"max_connections": "80"} and project.restart_pending
    assert "max_connections=80" in stack_spec(project).db.command
    lifecycle.project_stop(project=project, requested_by=user)
    lifecycle.project_start(project=project, requested_by=user)
    project.refresh_from_db()
    assert project.status == S.RUNNING and not project.restart_pending


def test_restart_true_applies_a_memory_change_at_once(running, user, fake_runtime):
    project, operation = project_change(project=running, requested_by=user, db_memory="1g", api_memory="128m", restart=True)
    assert operation is not None and operation.kind == "restart"
    operation.refresh_from_db()
    project.refresh_from_db()
    assert operation.state == "succeeded" and project.status == S.RUNNING and not project.restart_pending
    spec = fake_runtime.specs[running.public_id]
    assert (spec.db.mem_limit, spec.api.mem_limit) == ("1g", "128m")


def test_a_stopped_project_keeps_the_change_for_its_next_start_without_asking_a_server(stopped, user, fake_runtime):
    asked = len(fake_runtime.server_sql)
    project, operation = project_change(project=stopped, requested_by=user, postgres_settings={"statement_timeout": "30s"}, db_memory="768m")
    assert operation is None and project.status == S.STOPPED
    assert project.postgres_settings == {"statement_timeout": "30s"} and project.db_memory == "768m"
    assert len(fake_runtime.server_sql) == asked


def test_a_name_only_the_server_knows_is_refused_on_a_stopped_project_but_may_go_back_to_the_default(stopped, user):
    Project.objects.filter(pk=stopped.pk).update(postgres_settings={"timezone": "UTC"})
    stopped.refresh_from_db()
    before = row(stopped)
    with pytest.raises(InvalidTransition, match="timezone can be set only while the project runs"):
        project_change(project=stopped, requested_by=user, postgres_settings={"timezone": "Europe/Paris"})
    assert row(stopped) == before
    project, _ = project_change(project=stopped, requested_by=user, postgres_settings={"timezone": None})
    assert project.postgres_settings == {}


def test_a_failed_project_can_be_given_more_memory(running, user):
    Project.objects.filter(pk=running.pk).update(status=S.FAILED)
    running.refresh_from_db()
    project, operation = project_change(project=running, requested_by=user, db_memory="2g")
    assert operation is None and project.db_memory == "2g"


def test_null_takes_a_setting_back_to_berths_default(running, user):
    project_change(project=running, requested_by=user, postgres_settings={"work_mem": "8MB", "lock_timeout": "1s"})
    project, _ = project_change(project=running, requested_by=user, postgres_settings={"work_mem": None})
    assert project.postgres_settings == {"lock_timeout": "1s"}


def test_no_change_queues_nothing(running, user):
    project_change(project=running, requested_by=user, postgres_settings={"work_mem": "8MB"})
    count = running.operations.count()
    project, operation = project_change(project=running, requested_by=user, postgres_settings={"work_mem": "8MB"}, name="shop")
    assert operation is None and running.operations.count() == count


def test_a_name_change_is_stored_trimmed_and_refused_when_taken(running, user):
    lifecycle.project_create(owner=user, name="other")
    project, operation = project_change(project=running, requested_by=user, name="  shop2 ")
    assert project.name == "shop2" and operation is None
    with pytest.raises(InvalidInput, match="already have a project called 'other'"):
        project_change(project=running, requested_by=user, name="other")


@pytest.mark.parametrize(
    "change, field, says",
    [
        ({"postgres_settings": {"fsync": "off"}}, "postgres_settings", "not a setting a project may change"),
        ({"postgres_settings": {"work_mem": "lots"}}, "postgres_settings", "amount of memory"),
        ({"postgres_settings": {"fsync": None}}, "postgres_settings", "not a setting"),
        ({"postgres_settings": ["work_mem"]}, "postgres_settings", "must be an object"),
        ({"postgres_settings": {"shared_buffers": "512MB"}}, "postgres_settings", "at most half of db_memory"),
        ({"db_memory": "1m"}, "db_memory", "from 64m"),
        ({"api_memory": 5}, "api_memory", "memory limit such as"),
        ({"name": ""}, "name", "must not be empty"),
        ({"name": 3}, "name", "must be a string"),
        ({"restart": "yes"}, "restart", "true or false"),
        ({"work_mem": "8MB", "name": "x\u202e"}, "name", "bidirectional"),
    ],
)
def test_a_bad_value_is_refused_naming_the_field_and_changes_nothing(running, user, change, field, says):
    change = {k: v for k, v in change.items() if k != "work_mem"}
    before = row(running)
    with pytest.raises(InvalidInput, match=says) as refused:
        project_change(project=running, requested_by=user, **change)
    assert refused.value.field == field and row(running) == before


def test_lowering_db_memory_below_twice_shared_buffers_is_refused(running, user):
    project_change(project=running, requested_by=user, postgres_settings={"shared_buffers": "128MB"})
    with pytest.raises(InvalidInput, match="at most half of db_memory") as refused:
        project_change(project=running, requested_by=user, db_memory="128m")
    assert refused.value.field == "db_memory"


@pytest.mark.parametrize("status, deleted", [(S.DELETED, True), (S.STARTING, False), (S.PROVISIONING, False), (S.PURGED, True)])
def test_a_project_whose_status_refuses_is_409_and_unchanged(running, user, status, deleted):
    Project.objects.filter(pk=running.pk).update(status=status, deleted_at=timezone.now() if deleted else None)
    running.refresh_from_db()
    before = row(running)
    with pytest.raises(InvalidTransition):
        project_change(project=running, requested_by=user, postgres_settings={"work_mem": "8MB"})
    assert row(running) == before


def test_restart_of_a_stopped_project_is_409_and_unchanged(stopped, user):
    before = row(stopped)
    with pytest.raises(InvalidTransition, match="cannot restart a project that is stopped"):
        project_change(project=stopped, requested_by=user, db_memory="1g", restart=True)
    assert row(stopped) == before


def test_a_change_while_an_operation_is_in_flight_is_409_naming_it(running, user):
    in_flight = Operation.objects.create(project=running, kind="backup", state="running")
    before = row(running)
    with pytest.raises(OperationInFlight) as refused:
        project_change(project=running, requested_by=user, postgres_settings={"work_mem": "8MB"})
    assert refused.value.operation == in_flight and row(running) == before
    with pytest.raises(OperationInFlight):
        project_rotate(project=running, requested_by=user, what="password")
    assert row(running) == before


def test_another_user_and_staff_without_the_permission_cannot_change_or_rotate(running, other_user, staff):
    before = row(running)
    for who in (other_user, staff):
        with pytest.raises(NotPermitted):
            project_change(project=running, requested_by=who, db_memory="1g")
        with pytest.raises(NotPermitted):
            project_change(project=running, requested_by=who, name="mine now")
        with pytest.raises(NotPermitted):
            project_rotate(project=running, requested_by=who, what="keys")
    assert row(running) == before


def test_staff_with_the_permission_may_change(running, staff):
    staff.user_permissions.add(Permission.objects.get(codename="change_project", content_type__app_label="projects"))
    staff = type(staff).objects.get(pk=staff.pk)
    project, _ = project_change(project=running, requested_by=staff, postgres_settings={"work_mem": "8MB"})
    assert project.postgres_settings == {"work_mem": "8MB"}


# --- rotation ------------------------------------------------------------------------


def test_a_password_rotation_gives_the_owner_and_the_api_new_passwords_and_recreates_the_api(running, user, fake_runtime):
    old_password, old_authenticator = running.db_password, running.authenticator_password
    old_api_env = stack_spec(running).api.environment
    operation = project_rotate(project=running, requested_by=user, what="password")
    operation.refresh_from_db()
    running.refresh_from_db()
    assert (operation.kind, operation.state) == ("rotate_password", "succeeded")
    assert running.db_password != old_password and running.authenticator_password != old_authenticator
    spec = fake_runtime.specs[running.public_id]
    assert spec.api.environment != old_api_env and spec.db_probe.password == running.db_password
    assert spec.db_probe.bootstrap_env["BERTH_OWNER_PASSWORD"] == running.db_password
    assert running.status == S.RUNNING
    # The sessions opened with the old password are ended, the superuser's own are not.
    assert "pg_terminate_backend(pid)) FROM pg_stat_activity WHERE usename = :'owner'" in fake_runtime.server_sql[-1]


def test_a_keys_rotation_changes_both_keys(running, user, fake_runtime):
    old = project_keys(running)
    operation = project_rotate(project=running, requested_by=user, what="keys")
    operation.refresh_from_db()
    running.refresh_from_db()
    new = project_keys(running)
    assert operation.state == "succeeded"
    assert new["anon_key"] != old["anon_key"] and new["service_key"] != old["service_key"]
    assert fake_runtime.specs[running.public_id].api.environment["PGRST_JWT_SECRET"] == running.jwt_secret


def test_a_stopped_project_rotates_for_its_next_start(stopped, user):
    old = stopped.jwt_secret
    operation = project_rotate(project=stopped, requested_by=user, what="keys")
    operation.refresh_from_db()
    stopped.refresh_from_db()
    assert operation.state == "succeeded" and stopped.status == S.STOPPED and stopped.jwt_secret != old


@pytest.mark.parametrize("what", ["passwords", None, 1, ["keys"]])
def test_rotating_anything_else_is_400_and_changes_nothing(running, user, what):
    before = row(running)
    with pytest.raises(InvalidInput, match="must be password or keys"):
        project_rotate(project=running, requested_by=user, what=what)
    assert row(running) == before


def test_rotating_a_deleted_project_is_409_and_keeps_its_secrets(running, user):
    lifecycle.project_delete(project=running, requested_by=user)
    before = row(running)
    with pytest.raises(InvalidTransition, match="cannot rotate a project that is deleted"):
        project_rotate(project=running, requested_by=user, what="keys")
    assert row(running) == before


def test_a_project_of_the_old_kind_cannot_rotate_its_password(running, user):
    Project.objects.filter(pk=running.pk).update(admin_password_encrypted="")
    running.refresh_from_db()
    before = row(running)
    with pytest.raises(InvalidTransition, match="old kind"):
        project_rotate(project=running, requested_by=user, what="password")
    assert row(running) == before
