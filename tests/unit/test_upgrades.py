"""Major-version upgrades (services/upgrades/requests.py, their steps in steps.py) against FakeRuntime: refusals, transitions, rollback, drop."""

import pytest
from django.utils import timezone

from projects.models import Backup, Project
from projects.services.fleet import drift
from projects.services.lifecycle import requests as lifecycle
from projects.services.upgrades import requests as upgrades
from projects.services.errors import InvalidInput, InvalidTransition, OperationInFlight
from projects.runtime.fake import fake_postgres
from tests.unit.backup_helpers import create, scratch_left, volume

S = Project.Status
ROWS = {"public.items": 3, "public.orders": 5}


@pytest.fixture
def on15(user, fake_runtime):
    project = create(user, name="shop", postgres_version="15")
    fake_runtime.databases[volume(project)] = dict(ROWS)
    return project


def upgrade(project: Project, version: str = "17"):
    operation = upgrades.project_upgrade(project=project, postgres_version=version)
    operation.refresh_from_db()
    project.refresh_from_db()
    return operation


def db_container(fake_runtime, project: Project):
    return fake_runtime.containers_by_name[f"project_{project.public_id}_db"]


# --- the upgrade -------------------------------------------------------------------


def test_upgrade_moves_the_project_to_a_new_volume_of_the_new_major_and_keeps_the_old_one(on15, fake_runtime):
    ports, db_url = (on15.db_port, on15.api_port), on15.db_url()
    operation = upgrade(on15)
    assert (operation.kind, operation.state, operation.error, operation.postgres_version) == ("upgrade", "succeeded", "", "17")
    assert (on15.status, on15.postgres_version, on15.volume_version) == (S.RUNNING, "17", "17")
    new = f"{volume(on15)}_pg17"
    assert fake_runtime.databases[new] == ROWS  # every row, restored and counted
    assert db_container(fake_runtime, on15).image == "postgres:17" and fake_runtime.mounts[f"project_{on15.public_id}_db"] == new
    # The old volume stays, untouched, recorded for a rollback.
    assert fake_runtime.databases[volume(on15)] == ROWS
    assert (on15.kept_postgres_version, on15.kept_volume_version, on15.kept_at is not None) == ("15", "", True)
    assert (on15.db_port, on15.api_port) == ports and on15.db_url() == db_url
    made = on15.backups.get()
    assert (made.trigger, made.state, made.postgres_version) == ("pre-upgrade", Backup.State.VERIFIED, "15")
    assert [c for c in fake_runtime.containers_by_name.values() if c.service.startswith(("backup-", "upgrade-"))] == []


def test_an_old_kind_project_is_upgraded_onto_a_server_of_the_new_kind(on15, fake_runtime):
    Project.objects.filter(pk=on15.pk).update(admin_password_encrypted="")
    on15.refresh_from_db()
    assert on15.owner_is_superuser
    upgrade(on15)
    assert not on15.owner_is_superuser and on15.admin_user == "berth_admin"
    assert on15.kept_owner_is_superuser
    upgrades.project_rollback_upgrade(project=on15)
    on15.refresh_from_db()
    assert on15.owner_is_superuser  # its old server's superuser is the owner again


def test_upgrade_refuses_the_same_version_a_lower_one_and_nonsense_with_the_reason(on15, user, fake_runtime):
    on17 = create(user, name="new", postgres_version="17")
    with pytest.raises(InvalidInput, match="already runs PostgreSQL 17"):
        upgrades.project_upgrade(project=on17, postgres_version="17")
    with pytest.raises(InvalidInput, match="older than the project's 17: a downgrade"):
        upgrades.project_upgrade(project=on17, postgres_version="15")
    with pytest.raises(InvalidInput, match="major version number"):
        upgrades.project_upgrade(project=on15, postgres_version="17.2")
    with pytest.raises(InvalidInput, match="required"):
        upgrades.project_upgrade(project=on15, postgres_version=None)
    for project in (on15, on17):
        project.refresh_from_db()
        assert project.operations.count() == 1 and project.status == S.RUNNING


def test_upgrade_refuses_a_version_this_installation_does_not_offer(on15, settings):
    settings.BERTH_POSTGRES_IMAGES = {"15": "postgres:15", "17": "postgres:17"}
    with pytest.raises(InvalidInput, match="postgres_version: must be one of 15, 17"):
        upgrades.project_upgrade(project=on15, postgres_version="16")
    assert on15.operations.count() == 1


def test_upgrade_refuses_a_project_that_is_not_running(on15):
    lifecycle.project_stop(project=on15)
    with pytest.raises(InvalidTransition, match="cannot upgrade a project that is stopped"):
        upgrades.project_upgrade(project=on15, postgres_version="17")
    on15.refresh_from_db()
    assert (on15.status, on15.postgres_version) == (S.STOPPED, "15")


def test_upgrade_refuses_while_an_operation_is_in_flight(on15, settings):
    settings.TASKS = {"default": {"BACKEND": "django.tasks.backends.dummy.DummyBackend"}}
    lifecycle.project_stop(project=on15)
    Project.objects.filter(pk=on15.pk).update(status=S.RUNNING)
    with pytest.raises(OperationInFlight):
        upgrades.project_upgrade(project=on15, postgres_version="17")


def test_upgrade_refuses_while_a_previous_upgrades_volume_is_kept(on15):
    upgrade(on15)
    Project.objects.filter(pk=on15.pk).update(postgres_version="15")  # as if a 15 → 17 → 18 were possible
    on15.refresh_from_db()
    with pytest.raises(InvalidTransition, match="still kept; roll back to it .* or drop it"):
        upgrades.project_upgrade(project=on15, postgres_version="17")


def test_extensions_the_new_major_lacks_are_named_and_nothing_changes(on15, fake_runtime):
    fake_runtime.extensions_used[volume(on15)] = ["plpgsql", "postgis", "timescaledb"]
    operation = upgrade(on15)
    assert operation.state == "failed"
    assert "does not have: postgis, timescaledb" in operation.error and "nothing was changed" in operation.error
    assert (on15.status, on15.postgres_version, on15.volume_version, on15.kept_postgres_version) == (S.RUNNING, "15", "", "")
    assert on15.backups.count() == 0 and fake_runtime.calls["stack_stop"] == 0
    assert f"{volume(on15)}_pg17" not in fake_runtime.volumes and scratch_left(fake_runtime) == []


def test_a_refusal_over_postgis_names_the_variant_image_that_has_it(on15, fake_runtime):
    fake_runtime.extensions_used[volume(on15)] = ["plpgsql", "postgis"]
    operation = upgrade(on15)
    assert operation.state == "failed" and "does not have: postgis; " in operation.error
    assert "`manage.py images build berth/postgres:17-postgis`, which is then offered for 17" in operation.error


def test_a_row_count_mismatch_after_the_restore_leaves_the_project_on_its_old_version_with_its_data(on15, fake_runtime):
    def handler(runtime, container, argv, env):
        answer = fake_postgres(runtime, container, argv, env)
        if "upgrade-restore" in container and argv[:2] == ["sh", "-c"] and argv[3] == "berth-restore":
            runtime.databases[runtime.mounts[container]]["public.items"] -= 1  # only the upgrade's restore loses a row
        return answer

    fake_runtime.exec_handler = handler
    operation = upgrade(on15)
    assert operation.state == "failed"
    assert "back on PostgreSQL 15 with its data" in operation.error and "public.items has 2 rows, 3 at dump time" in operation.error
    assert (on15.status, on15.postgres_version, on15.volume_version, on15.kept_postgres_version) == (S.RUNNING, "15", "", "")
    assert db_container(fake_runtime, on15).image == "postgres:15" and db_container(fake_runtime, on15).running
    assert fake_runtime.mounts[f"project_{on15.public_id}_db"] == volume(on15)
    assert fake_runtime.databases[volume(on15)] == ROWS
    assert f"{volume(on15)}_pg17" not in fake_runtime.volumes  # the failed attempt's volume is gone


def test_an_engine_error_while_switching_over_puts_the_old_stack_back(on15, fake_runtime):
    from projects.runtime import NotReady

    calls = {"n": 0}
    original = fake_runtime.stack_wait_ready

    def ready(spec, *, timeout_s):
        calls["n"] += 1
        if spec.db.image == "postgres:17":
            raise NotReady("the db did not become ready in time: boom")
        return original(spec, timeout_s=timeout_s)

    fake_runtime.stack_wait_ready = ready
    operation = upgrade(on15)
    assert operation.state == "failed" and "boom" in operation.error
    assert (on15.status, on15.postgres_version) == (S.RUNNING, "15")
    assert db_container(fake_runtime, on15).image == "postgres:15"
    assert fake_runtime.databases[volume(on15)] == ROWS


# --- rollback and drop ----------------------------------------------------------------


def test_rollback_returns_to_the_old_major_and_volume_as_it_was_and_backs_up_the_upgraded_one(on15, fake_runtime):
    upgrade(on15)
    fake_runtime.databases[f"{volume(on15)}_pg17"]["public.items"] = 10  # written after the upgrade
    operation = upgrades.project_rollback_upgrade(project=on15)
    operation.refresh_from_db()
    on15.refresh_from_db()
    assert (operation.kind, operation.state, operation.error) == ("rollback_upgrade", "succeeded", "")
    assert (on15.status, on15.postgres_version, on15.volume_version, on15.has_kept_volume) == (S.RUNNING, "15", "", False)
    assert db_container(fake_runtime, on15).image == "postgres:15"
    assert fake_runtime.databases[volume(on15)] == ROWS  # the data as it was before the upgrade
    assert f"{volume(on15)}_pg17" not in fake_runtime.volumes
    kept = on15.backups.get(trigger="pre-rollback")
    assert kept.state == Backup.State.VERIFIED and kept.tables["public.items"] == 10 and kept.postgres_version == "17"


def test_rollback_of_a_stopped_project_leaves_it_stopped(on15, fake_runtime):
    upgrade(on15)
    lifecycle.project_stop(project=on15)
    upgrades.project_rollback_upgrade(project=on15)
    on15.refresh_from_db()
    assert (on15.status, on15.postgres_version) == (S.STOPPED, "15")
    assert not db_container(fake_runtime, on15).running


def test_rollback_and_drop_without_a_kept_volume_are_refused(on15):
    with pytest.raises(InvalidTransition, match="no volume is kept from an upgrade"):
        upgrades.project_rollback_upgrade(project=on15)
    with pytest.raises(InvalidTransition, match="no volume is kept from an upgrade"):
        upgrades.project_kept_volume_drop(project=on15)
    assert on15.operations.count() == 1


def test_rollback_whose_kept_volume_vanished_changes_nothing(on15, fake_runtime):
    upgrade(on15)
    del fake_runtime.volumes[volume(on15)]
    operation = upgrades.project_rollback_upgrade(project=on15)
    operation.refresh_from_db()
    on15.refresh_from_db()
    assert operation.state == "failed" and "is gone from the engine" in operation.error
    assert (on15.status, on15.postgres_version) == (S.RUNNING, "17")


def test_dropping_the_kept_volume_removes_it_and_ends_the_way_back(on15, fake_runtime):
    upgrade(on15)
    operation = upgrades.project_kept_volume_drop(project=on15)
    operation.refresh_from_db()
    on15.refresh_from_db()
    assert (operation.state, on15.status, on15.has_kept_volume) == ("succeeded", S.RUNNING, False)
    assert volume(on15) not in fake_runtime.volumes and f"{volume(on15)}_pg17" in fake_runtime.volumes


def test_purge_removes_the_kept_volume_with_the_project(on15, fake_runtime):
    upgrade(on15)
    lifecycle.project_delete(project=on15)
    lifecycle.project_purge(project=on15, confirm=on15.public_id)
    on15.refresh_from_db()
    assert on15.status == S.PURGED and not on15.has_kept_volume
    assert not [v for v in fake_runtime.volumes if on15.public_id in v]
    final = on15.backups.get(trigger="pre-purge")
    assert final.tables == ROWS and final.postgres_version == "17"


def test_drift_reports_neither_volume_of_an_upgraded_project(on15, fake_runtime):
    upgrade(on15)
    assert drift.drift_report().of(on15.public_id) == []
    del fake_runtime.volumes[f"{volume(on15)}_pg17"]
    entries = drift.drift_report().of(on15.public_id)
    assert [e.kind for e in entries] == ["volume"] and "_pg17 is missing" in entries[0].problem


def test_a_deleted_then_restored_project_comes_back_on_its_upgraded_volume(on15, fake_runtime):
    upgrade(on15)
    lifecycle.project_delete(project=on15)
    lifecycle.project_restore(project=on15)
    lifecycle.project_start(project=on15)
    on15.refresh_from_db()
    assert (on15.status, on15.postgres_version) == (S.RUNNING, "17")
    assert fake_runtime.mounts[f"project_{on15.public_id}_db"] == f"{volume(on15)}_pg17"
    assert on15.deleted_at is None and on15.kept_at <= timezone.now()
