"""A project that ran never gets a new, empty data volume by accident (issue 15, item 2), against FakeRuntime.

Its volume removed behind Berth's back, `start` (and `restore`) fails, the
project `failed` with health `missing` and an error naming the fix; the owner
may restore a backup or allow an empty database; the drift report says one thing.
"""

import json

import pytest
from django.apps import apps

from projects.models import Backup, Operation, Project
from projects.runtime import ImageUnavailable, RuntimeFailure
from projects.services.backups import requests as backups
from projects.services.lifecycle import requests as lifecycle
from projects.services.fleet.drift import drift_report
from projects.services.errors import Forbidden, InvalidInput
from tests.conftest import bearer

S = Project.Status
H = Project.Health


def running_project(user, fake_runtime, rows: int = 3, name: str = "kept") -> Project:
    project = Project.objects.get(pk=lifecycle.project_create(owner=user, name=name).project_id)
    fake_runtime.databases[volume(project)] = {"public.items": rows}
    return project


def volume(project: Project) -> str:
    return f"project_{project.public_id}_data"


def vanish(project: Project, fake_runtime) -> None:
    """What `docker rm -f` of its containers and `docker volume rm` of its volume leave."""
    for name in [n for n, c in fake_runtime.containers_by_name.items() if c.project_id == project.public_id]:
        del fake_runtime.containers_by_name[name]
    del fake_runtime.volumes[volume(project)]
    fake_runtime.databases.pop(volume(project), None)


def settled(operation: Operation) -> tuple[Operation, Project]:
    operation.refresh_from_db()
    return operation, Project.objects.get(pk=operation.project_id)


# --- the record of having run -------------------------------------------------------


def test_a_create_that_succeeds_records_when_the_project_first_ran(user, fake_runtime):
    project = running_project(user, fake_runtime)
    assert project.first_running_at is not None
    first = project.first_running_at
    lifecycle.project_stop(project=project)
    _, project = settled(lifecycle.project_start(project=project))
    assert project.first_running_at == first  # the first time, not the latest


def test_a_create_that_fails_records_nothing(user, fake_runtime):
    fake_runtime.fail_with("stack_up", ImageUnavailable("image x is not on the engine"))
    _, project = settled(lifecycle.project_create(owner=user, name="never"))
    assert project.status == S.FAILED and project.first_running_at is None


def test_the_migration_backfills_projects_that_are_or_were_up(user, fake_runtime):
    from importlib import import_module

    backfill = import_module("projects.migrations.0009_first_running_at").backfill
    up = running_project(user, fake_runtime, name="up")
    stopped = running_project(user, fake_runtime, name="stopped")
    Project.objects.filter(pk=stopped.pk).update(status=S.STOPPED)
    failed_after_running = running_project(user, fake_runtime, name="failed")
    Project.objects.filter(pk=failed_after_running.pk).update(status=S.FAILED)
    fake_runtime.fail_with("stack_up", RuntimeFailure("no"))
    _, never = settled(lifecycle.project_create(owner=user, name="never"))
    fake_runtime.heal()
    Project.objects.update(first_running_at=None)

    backfill(apps, None)

    ran = dict(Project.objects.values_list("pk", "first_running_at"))
    assert all(ran[p.pk] is not None for p in (up, stopped, failed_after_running))
    assert ran[never.pk] is None
    create = up.operations.get(kind="create")
    assert ran[up.pk] == create.finished_at


# --- start and restore refuse an empty database ----------------------------------------


def test_start_of_a_project_whose_volume_vanished_fails_naming_the_fix_and_makes_nothing(user, fake_runtime):
    project = running_project(user, fake_runtime)
    vanish(project, fake_runtime)

    operation, project = settled(lifecycle.project_start(project=project, requested_by=user))

    assert operation.state == "failed" and (project.status, project.health) == (S.FAILED, H.MISSING)
    assert f"data volume {volume(project)} is gone" in operation.error and "new, empty database" in operation.error
    assert "it has no backup to restore" in operation.error
    assert f'POST /v1/projects/{project.public_id}/start {{"allow_empty_database": true}}' in operation.error
    assert volume(project) not in fake_runtime.volumes and fake_runtime.stack_state(project.public_id).containers == ()


def test_the_error_names_the_newest_verified_backup_to_restore(user, fake_runtime):
    project = running_project(user, fake_runtime)
    older = backups.project_backup(project=project).backup
    newer = backups.project_backup(project=project).backup
    Backup.objects.filter(pk=newer.pk).update(state=Backup.State.VERIFY_FAILED)
    vanish(project, fake_runtime)

    operation, _ = settled(lifecycle.project_start(project=project))

    assert f"restore backup {older.public_id} (verified, taken " in operation.error
    assert f'POST /v1/backups/{older.public_id}/restore {{"confirm": "{project.public_id}"}}, then start it' in operation.error
    assert newer.public_id not in operation.error


def test_a_running_project_whose_stack_vanished_is_not_repaired_onto_an_empty_volume_either(user, fake_runtime):
    # The sync pass shows it as running · missing; start is the repair it offers.
    project = running_project(user, fake_runtime)
    vanish(project, fake_runtime)
    _, project = settled(lifecycle.project_start(project=project))
    assert project.status == S.FAILED and volume(project) not in fake_runtime.volumes


def test_the_owner_can_start_it_with_an_empty_database(user, fake_runtime):
    project = running_project(user, fake_runtime)
    vanish(project, fake_runtime)
    settled(lifecycle.project_start(project=project, requested_by=user))

    operation, project = settled(lifecycle.project_start(project=project, requested_by=user, allow_empty_database=True))

    assert operation.state == "succeeded" and operation.allow_empty_database
    assert (project.status, project.health) == (S.RUNNING, H.HEALTHY)
    assert volume(project) in fake_runtime.volumes and fake_runtime.databases.get(volume(project), {}) == {}


def test_only_the_owner_may_allow_an_empty_database(user, staff, fake_runtime):
    project = running_project(user, fake_runtime)
    vanish(project, fake_runtime)
    with pytest.raises(Forbidden, match="owner"):
        lifecycle.project_start(project=project, requested_by=staff, allow_empty_database=True)
    with pytest.raises(InvalidInput, match="allow_empty_database"):
        lifecycle.project_start(project=project, requested_by=user, allow_empty_database="yes")
    project.refresh_from_db()
    assert project.status == S.RUNNING and project.operations.count() == 1  # nothing changed, nothing queued


def test_a_project_that_never_ran_is_started_on_a_new_volume_as_before(user, fake_runtime):
    fake_runtime.fail_with("stack_wait_ready", RuntimeFailure("the api did not answer"))
    _, project = settled(lifecycle.project_create(owner=user, name="never"))
    fake_runtime.heal()
    del fake_runtime.volumes[volume(project)]
    _, project = settled(lifecycle.project_start(project=project))
    assert project.status == S.RUNNING


def test_restore_of_a_deleted_project_whose_volume_vanished_fails_until_the_owner_allows_it(user, fake_runtime):
    project = running_project(user, fake_runtime)
    settled(lifecycle.project_delete(project=project))
    del fake_runtime.volumes[volume(project)]

    operation, project = settled(lifecycle.project_restore(project=project, requested_by=user))
    assert (project.status, project.health) == (S.FAILED, H.MISSING) and project.is_deleted
    assert "restoring would bring it back with a new, empty database" in operation.error
    assert f'POST /v1/projects/{project.public_id}/restore {{"allow_empty_database": true}}' in operation.error

    operation, project = settled(lifecycle.project_restore(project=project, requested_by=user, allow_empty_database=True))
    assert operation.state == "succeeded" and project.status == S.STOPPED and not project.is_deleted


# --- restoring a backup is the other way back ----------------------------------------------


def test_a_backup_restores_into_a_failed_project_whose_volume_vanished_without_a_safety_backup(user, fake_runtime):
    project = running_project(user, fake_runtime, rows=7)
    good = Backup.objects.get(pk=backups.project_backup(project=project).backup_id)
    assert good.state == Backup.State.VERIFIED
    vanish(project, fake_runtime)
    settled(lifecycle.project_start(project=project))

    operation, project = settled(backups.project_restore_backup(backup=good, confirm=project.public_id))

    assert operation.state == "succeeded", operation.error
    assert (project.status, project.health) == (S.STOPPED, H.DOWN)
    assert fake_runtime.databases[volume(project)] == {"public.items": 7}
    assert not project.backups.filter(trigger=Backup.Trigger.PRE_RESTORE).exists()  # there was nothing to keep
    _, project = settled(lifecycle.project_start(project=project))
    assert project.status == S.RUNNING and fake_runtime.databases[volume(project)] == {"public.items": 7}


def test_a_backup_restored_into_a_running_project_whose_stack_vanished_brings_it_up(user, fake_runtime):
    project = running_project(user, fake_runtime, rows=2)
    good = Backup.objects.get(pk=backups.project_backup(project=project).backup_id)
    vanish(project, fake_runtime)

    operation, project = settled(backups.project_restore_backup(backup=good, confirm=project.public_id))

    assert operation.state == "succeeded", operation.error
    assert (project.status, project.health) == (S.RUNNING, H.HEALTHY)
    assert all(c.running for c in fake_runtime.stack_state(project.public_id).containers)
    assert fake_runtime.databases[volume(project)] == {"public.items": 2}


def test_a_backup_restored_into_a_failed_project_with_its_volume_takes_a_safety_backup_and_settles_it(user, fake_runtime):
    project = running_project(user, fake_runtime)
    good = Backup.objects.get(pk=backups.project_backup(project=project).backup_id)
    Project.objects.filter(pk=project.pk).update(status=S.FAILED)

    operation, project = settled(backups.project_restore_backup(backup=good, confirm=project.public_id))

    assert operation.state == "succeeded" and project.status == S.RUNNING  # its db was running: it answers again
    assert project.backups.filter(trigger=Backup.Trigger.PRE_RESTORE, state=Backup.State.VERIFIED).exists()


# --- the API and the drift report ------------------------------------------------------------


def post(client, path, body, headers):
    return client.post(path, data=json.dumps(body), content_type="application/json", **headers)


def test_api_start_takes_allow_empty_database_from_the_owner(client, user, staff, fake_runtime):
    project = running_project(user, fake_runtime)
    vanish(project, fake_runtime)
    path = f"/v1/projects/{project.public_id}/start?wait=5"

    refused = post(client, path, {}, bearer(user)).json()
    assert refused["status"] == "failed" and refused["health"] == "missing"
    assert "allow_empty_database" in refused["operation"]["error"]

    assert post(client, path, {"allow_empty_database": "yes"}, bearer(user)).status_code == 400
    unknown = post(client, path, {"allow_empty": True}, bearer(user))
    assert unknown.status_code == 400 and unknown.json()["error"]["field"] == "allow_empty"
    forbidden = post(client, path, {"allow_empty_database": True}, bearer(staff))
    assert forbidden.status_code == 403 and forbidden.json()["error"]["code"] == "forbidden"
    assert Project.objects.get(pk=project.pk).operations.count() == 2  # the create and the refused start

    started = post(client, path, {"allow_empty_database": True}, bearer(user))
    assert started.status_code == 200 and started.json()["status"] == "running"


def test_drift_report_says_one_thing_for_a_vanished_volume(user, fake_runtime):
    project = running_project(user, fake_runtime)
    good = backups.project_backup(project=project).backup
    vanish(project, fake_runtime)

    entries = drift_report().of(project.public_id)

    assert len(entries) == 1, entries
    (entry,) = entries
    assert entry.kind == "volume" and entry.problem == f"running, but its data volume {volume(project)} is missing"
    assert "start refuses to make an empty database" in entry.fix and f"restore backup {good.public_id}" in entry.fix
    assert "same volume" not in entry.fix


def test_drift_report_still_names_a_vanished_volume_once_the_start_failed(user, fake_runtime):
    project = running_project(user, fake_runtime)
    vanish(project, fake_runtime)
    settled(lifecycle.project_start(project=project))
    (entry,) = drift_report().of(project.public_id)
    assert entry.kind == "volume" and entry.problem.startswith("failed, but its data volume")


def test_a_purge_of_a_project_whose_volume_vanished_needs_no_final_backup(user, fake_runtime):
    # A leftover throwaway volume of the project is not its data volume.
    project = running_project(user, fake_runtime)
    settled(lifecycle.project_delete(project=project))
    del fake_runtime.volumes[volume(project)]
    fake_runtime.volumes[f"project_{project.public_id}_verify_000000000001_data"] = project.public_id
    operation, project = settled(lifecycle.project_purge(project=project, confirm=project.public_id))
    assert operation.state == "succeeded" and project.status == S.PURGED
    assert not project.backups.exists()


# --- the dashboard ----------------------------------------------------------------------------

HTMX = {"HX-Request": "true"}


def test_the_owner_sees_start_with_an_empty_database_on_the_failed_project_and_it_needs_the_name(client, user, fake_runtime):
    project = running_project(user, fake_runtime)
    vanish(project, fake_runtime)
    settled(lifecycle.project_start(project=project))
    client.force_login(user)

    page = client.get(f"/projects/{project.public_id}").content.decode()
    assert "Start with an empty database…" in page and 'name="allow_empty_database"' in page
    assert "data volume is gone" in page.lower()

    wrong = client.post(f"/projects/{project.public_id}/start", {"allow_empty_database": "1", "confirm": "nope"}, headers=HTMX)
    assert wrong.status_code == 422 and Project.objects.get(pk=project.pk).status == S.FAILED

    right = client.post(f"/projects/{project.public_id}/start", {"allow_empty_database": "1", "confirm": "kept"}, headers=HTMX)
    assert right.status_code == 200
    project.refresh_from_db()
    assert project.status == S.RUNNING and project.operations.first().allow_empty_database
    assert "Start with an empty database" not in right.content.decode()  # the volume is there again


def test_a_plain_start_from_the_dashboard_still_refuses_the_empty_database(client, user, fake_runtime):
    project = running_project(user, fake_runtime)
    vanish(project, fake_runtime)
    client.force_login(user)
    response = client.post(f"/projects/{project.public_id}/start", headers=HTMX)
    project.refresh_from_db()
    assert project.status == S.FAILED and "is gone" in response.content.decode()


def test_staff_see_no_empty_database_control_and_cannot_post_it(client, user, staff, fake_runtime):
    project = running_project(user, fake_runtime)
    vanish(project, fake_runtime)
    settled(lifecycle.project_start(project=project))
    client.force_login(staff)
    assert "with an empty database…" not in client.get(f"/projects/{project.public_id}").content.decode()
    response = client.post(f"/projects/{project.public_id}/start", {"allow_empty_database": "1", "confirm": "kept"}, headers=HTMX)
    assert response.status_code == 403 and Project.objects.get(pk=project.pk).status == S.FAILED


def test_a_deleted_project_whose_volume_vanished_offers_restore_with_an_empty_database(client, user, fake_runtime):
    project = running_project(user, fake_runtime)
    settled(lifecycle.project_delete(project=project))
    del fake_runtime.volumes[volume(project)]
    client.force_login(user)
    assert "Restore with an empty database…" in client.get(f"/projects/{project.public_id}").content.decode()
    response = client.post(f"/projects/{project.public_id}/restore", {"allow_empty_database": "1", "confirm": "kept"}, headers=HTMX)
    assert response.status_code == 200
    assert Project.objects.get(pk=project.pk).status == S.STOPPED
