"""Backup services against FakeRuntime: dumps, their failures, verification, restore, clone, purge, schedule settings.

The periodic pass has its own file (test_backup_pass.py); both use backup_helpers.py.
"""

import errno
import hashlib
import json
import os
from datetime import timedelta

import pytest
from django.utils import timezone

from projects.models import Backup, BackupSchedule, Operation, Project
from projects.runtime.fake import fake_postgres
from projects.services.backups import requests as backups
from projects.services.lifecycle import requests as lifecycle
from projects.services.backups import files as files_service
from projects.services.errors import InvalidInput, InvalidTransition, OperationInFlight
from tests.unit.backup_helpers import backup, backup_files, create, play, project, scratch_left, volume

S = Project.Status
B = Backup.State


# --- taking a backup ----------------------------------------------------------


def test_backup_of_a_running_project_is_dumped_verified_and_leaves_the_project_alone(project, fake_runtime, settings):
    operation, made = backup(project)
    assert (operation.kind, operation.state, operation.error) == ("backup", "succeeded", "")
    assert made.state == B.VERIFIED and made.trigger == "manual" and made.verified_at
    assert made.tables == {"public.items": 3, "public.orders": 5} and made.row_count == 8
    path = backups.backup_path(made)
    assert path == settings.BERTH_BACKUP_DIR / project.public_id / f"{made.public_id}.dump"
    assert made.size == path.stat().st_size and made.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert made.operation_id == operation.pk
    project.refresh_from_db()
    assert project.status == S.RUNNING
    assert backup_files(settings) == [path.name]  # no partial file
    assert scratch_left(fake_runtime) == []  # the verification's throwaway container is gone
    assert fake_runtime.calls["scratch_up"] == 1  # the running db was dumped in place; only verify used one


def test_backup_counts_as_the_projects_one_operation_in_flight(project, settings):
    settings.TASKS = {"default": {"BACKEND": "django.tasks.backends.dummy.DummyBackend"}}
    operation, made = backup(project)
    assert (operation.state, made.state) == ("queued", B.RUNNING)
    project.refresh_from_db()
    assert project.status == S.RUNNING  # a backup has no transitional status
    with pytest.raises(OperationInFlight):
        backups.project_backup(project=project)
    with pytest.raises(OperationInFlight):
        lifecycle.project_stop(project=project)
    assert project.backups.count() == 1  # the refused request left no row behind


def test_backup_of_a_stopped_project_dumps_from_a_throwaway_container_on_its_volume(project, fake_runtime):
    lifecycle.project_stop(project=project)
    operation, made = backup(project)
    assert operation.state == "succeeded" and made.state == B.VERIFIED
    assert made.tables == {"public.items": 3, "public.orders": 5}
    assert fake_runtime.calls["scratch_up"] == 2  # one on the project's volume, one to verify
    assert scratch_left(fake_runtime) == []
    assert volume(project) in fake_runtime.volumes  # the project's volume is never a throwaway's to remove
    project.refresh_from_db()
    assert project.status == S.STOPPED
    assert fake_runtime.containers_by_name[f"project_{project.public_id}_db"].status == "exited"


def test_backup_refuses_a_db_container_that_is_neither_running_nor_stopped(project, fake_runtime, settings):
    fake_runtime.set_status(f"project_{project.public_id}_db", "restarting")
    operation, made = backup(project)
    assert operation.state == "failed" and made.state == B.FAILED
    assert "restarting, neither running nor stopped" in made.error
    assert fake_runtime.calls["scratch_up"] == 0  # never a second server on the same data
    assert backup_files(settings) == []


@pytest.mark.parametrize(
    "answer, reason",
    [
        ((b"", 1, "pg_dump: error: connection to server failed"), "pg_dump exited 1: pg_dump: error: connection to server failed"),
        ((b"PGDMP partial", None, ""), "pg_dump did not finish: the container stopped or vanished"),
        ((b"PGDMP partial", 137, ""), "pg_dump exited 137 (killed"),
        ((b"", 0, "BERTH-MANIFEST {}"), "the dump is empty"),
        ((b"PGDMP" + b"x" * 20, 0, 'BERTH-MANIFEST {"tables": {}}'), "the dump is only 25 bytes"),
        ((b"<html>" + b"x" * 999, 0, 'BERTH-MANIFEST {"tables": {}}'), "not a pg_dump file"),
        ((b"PGDMP" + b"x" * 999, 0, "psql: notice"), "ended without its table list"),
    ],
    ids=["exit-1", "died", "killed", "empty", "short", "not-an-archive", "no-manifest"],
)
def test_a_bad_dump_fails_the_backup_and_leaves_no_file(project, fake_runtime, settings, answer, reason):
    play(fake_runtime, "berth-dump", answer)
    operation, made = backup(project)
    assert operation.state == "failed" and made.state == B.FAILED
    assert reason in made.error and reason in operation.error
    assert made.size is None and made.sha256 == ""
    assert backup_files(settings) == []  # neither the file nor a partial one
    project.refresh_from_db()
    assert project.status == S.RUNNING  # a failed backup does not fail the project


def test_a_full_disk_fails_the_backup_loudly_and_removes_the_partial_file(project, monkeypatch, settings):
    real_write = os.write

    def write(fd, data):
        if len(data) > 100:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write(fd, data)

    monkeypatch.setattr(files_service.os, "write", write)
    operation, made = backup(project)
    assert made.state == B.FAILED and "is full (No space left on device)" in made.error
    assert "BERTH_BACKUP_DIR" in made.error
    assert backup_files(settings) == []


def test_an_engine_failure_during_the_dump_fails_the_backup_not_the_project(project, fake_runtime):
    from projects.runtime import RuntimeUnavailable

    fake_runtime.fail_with("exec_stream", RuntimeUnavailable("Docker Engine unreachable at unix:///x"))
    operation, made = backup(project)
    assert made.state == B.FAILED and "Docker Engine unreachable" in made.error
    project.refresh_from_db()
    assert project.status == S.RUNNING


def test_a_backup_whose_engine_is_unreachable_fails_at_once_with_the_operations_reason(project, fake_runtime):
    # The operation fails before its step runs (the ping): the backup it was to
    # make is over too, with that reason, not left running for the orphan pass.
    from projects.runtime import RuntimeUnavailable

    fake_runtime.fail_with("ping", RuntimeUnavailable("Docker Engine unreachable at unix:///x: refused"))
    operation, made = backup(project)
    assert operation.state == "failed" and "Docker Engine unreachable" in operation.error
    assert made.state == B.FAILED and made.error == operation.error and made.finished_at is not None
    project.refresh_from_db()
    assert project.status == S.RUNNING


def test_a_restores_safety_backup_fails_with_its_operation_when_the_engine_is_unreachable(project, fake_runtime):
    from projects.runtime import RuntimeUnavailable
    from projects.services.operations.queue import operation_execute

    _, good = backup(project)
    safety = Backup.objects.create(project=project, postgres_version=project.postgres_version, trigger=Backup.Trigger.PRE_RESTORE)
    fake_runtime.fail_with("ping", RuntimeUnavailable("Docker Engine unreachable at unix:///x: refused"))

    def step(p):
        raise AssertionError("the step never runs without an engine")

    operation = Operation.objects.create(project=project, kind="restore_backup", backup=good, prior_status=S.RUNNING)
    Backup.objects.filter(pk=safety.pk).update(operation=operation)
    operation_execute(operation.pk, step)
    safety.refresh_from_db()
    good.refresh_from_db()
    assert safety.state == B.FAILED and "Docker Engine unreachable" in safety.error
    assert good.state == B.VERIFIED  # the backup it was to restore is untouched


def test_any_failed_operation_settles_the_backup_it_was_making(project):
    # Whatever ends the operation (here a bug of ours, before the dump began),
    # its backup does not outlive it as running.
    from projects.services.operations.queue import operation_execute

    def broken(p):
        raise KeyError("oops")

    made = Backup.objects.create(project=project, postgres_version=project.postgres_version)
    operation = Operation.objects.create(project=project, kind="backup", backup=made, prior_status=S.RUNNING)
    operation_execute(operation.pk, broken)
    made.refresh_from_db()
    operation.refresh_from_db()
    assert operation.state == "failed" and made.state == B.FAILED and made.error == operation.error


# --- verification -------------------------------------------------------------


def test_verification_fails_when_the_restored_row_counts_differ(project, fake_runtime):
    def fewer_rows(runtime, container, argv, env):
        out, code, err = fake_postgres(runtime, container, argv, env)
        manifest = json.loads(out)
        if "_verify_" in container:  # only what the verification restored
            manifest["tables"]["public.items"] = 2
            manifest["tables"].pop("public.orders")
        return json.dumps(manifest).encode(), code, err

    play(fake_runtime, "psql", fewer_rows)
    operation, made = backup(project)
    assert operation.state == "failed" and made.state == B.VERIFY_FAILED
    assert "tables missing after restore: public.orders" in made.error
    assert "public.items has 2 rows, 3 at dump time" in made.error
    assert backups.backup_path(made).exists()  # a bad verification keeps the file, for a person to inspect
    assert scratch_left(fake_runtime) == []


def test_verification_fails_when_pg_restore_fails(project, fake_runtime):
    play(fake_runtime, "berth-restore", (b"", 1, 'pg_restore: error: could not execute query: ERROR: type "vector" does not exist'))
    _, made = backup(project)
    assert made.state == B.VERIFY_FAILED
    assert made.error.startswith("the restore failed: pg_restore exited 1") and 'type "vector" does not exist' in made.error


def test_verification_that_cannot_run_keeps_the_backup_succeeded(project, fake_runtime):
    from projects.runtime import ImageUnavailable

    fake_runtime.fail_with("scratch_up", ImageUnavailable("image postgres:17 is not on the engine"))
    operation, made = backup(project)
    assert operation.state == "failed"
    assert made.state == B.SUCCEEDED and made.error.startswith("verification could not run: image postgres:17")
    fake_runtime.heal()
    operation = backups.backup_verify(backup=made)
    operation.refresh_from_db()
    assert operation.state == "succeeded"
    made.refresh_from_db()
    assert made.state == B.VERIFIED and made.error == ""


def test_a_file_altered_by_one_byte_fails_verification_and_restore_refuses_it(project):
    _, made = backup(project)
    path = backups.backup_path(made)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))

    operation = backups.backup_verify(backup=made)
    operation.refresh_from_db()
    made.refresh_from_db()
    assert operation.state == "failed" and made.state == B.VERIFY_FAILED
    assert "sha256" in made.error and "altered or damaged after the dump" in made.error
    with pytest.raises(InvalidTransition, match=f"backup {made.public_id} is verify_failed, so it cannot be restored"):
        backups.project_restore_backup(backup=made, confirm=project.public_id)


def test_restore_of_a_backup_altered_since_its_verification_is_refused_before_anything_changes(project, fake_runtime):
    _, made = backup(project)
    path = backups.backup_path(made)
    path.write_bytes(path.read_bytes()[:-1] + b"!")  # same size, one byte different
    fake_runtime.databases[volume(project)] = {"public.items": 0}

    operation = backups.project_restore_backup(backup=made, confirm=project.public_id)
    operation.refresh_from_db()
    project.refresh_from_db()
    made.refresh_from_db()
    assert operation.state == "failed" and "refused" in operation.error and "sha256" in operation.error
    assert project.status == S.RUNNING and fake_runtime.databases[volume(project)] == {"public.items": 0}
    assert made.state == B.VERIFY_FAILED
    assert not project.backups.filter(trigger="pre-restore").exists()  # refused before the safety backup


# --- restore ------------------------------------------------------------------


def test_restore_takes_a_verified_safety_backup_then_replaces_the_data(project, fake_runtime):
    _, made = backup(project)
    fake_runtime.databases[volume(project)] = {"public.items": 0, "public.orders": 5, "public.new": 1}

    operation = backups.project_restore_backup(backup=made, confirm=project.public_id)
    operation.refresh_from_db()
    assert (operation.kind, operation.state, operation.error) == ("restore_backup", "succeeded", "")
    assert fake_runtime.databases[volume(project)] == {"public.items": 3, "public.orders": 5}
    safety = operation.backups_made.get()
    assert (safety.trigger, safety.state) == ("pre-restore", B.VERIFIED)
    assert safety.tables == {"public.items": 0, "public.orders": 5, "public.new": 1}
    project.refresh_from_db()
    assert project.status == S.RUNNING
    assert fake_runtime.calls["stack_wait_ready"] == 2  # create, then after the restore (bootstrap again)


def test_restore_into_a_stopped_project_uses_a_throwaway_on_its_volume_and_leaves_it_stopped(project, fake_runtime):
    _, made = backup(project)
    lifecycle.project_stop(project=project)
    fake_runtime.databases[volume(project)] = {}
    operation = backups.project_restore_backup(backup=made, confirm=project.public_id)
    operation.refresh_from_db()
    assert operation.state == "succeeded", operation.error
    assert fake_runtime.databases[volume(project)] == {"public.items": 3, "public.orders": 5}
    project.refresh_from_db()
    assert project.status == S.STOPPED and scratch_left(fake_runtime) == []


def test_restore_needs_the_project_id_typed_as_confirmation(project):
    _, made = backup(project)
    with pytest.raises(InvalidInput, match=f"confirm: must be the project's id \\({project.public_id}\\)"):
        backups.project_restore_backup(backup=made, confirm="yes")
    assert not project.operations.filter(kind="restore_backup").exists()


def test_restore_is_refused_when_the_safety_backup_fails(project, fake_runtime):
    _, made = backup(project)
    fake_runtime.databases[volume(project)] = {"public.items": 1}
    play(fake_runtime, "berth-dump", (b"", 1, "pg_dump: error: out of shared memory"))
    operation = backups.project_restore_backup(backup=made, confirm=project.public_id)
    operation.refresh_from_db()
    project.refresh_from_db()
    assert operation.state == "failed" and operation.error.startswith("the safety backup failed, so nothing was restored")
    assert project.status == S.RUNNING and fake_runtime.databases[volume(project)] == {"public.items": 1}


def test_a_restore_that_fails_half_way_leaves_the_project_failed_and_names_the_safety_backup(project, fake_runtime):
    _, made = backup(project)
    db = f"project_{project.public_id}_db"
    play(fake_runtime, "berth-restore", (b"", 1, "pg_restore: error: could not write to the database"), only_in=db)
    operation = backups.project_restore_backup(backup=made, confirm=project.public_id)
    operation.refresh_from_db()
    project.refresh_from_db()
    safety = project.backups.get(trigger="pre-restore")
    assert operation.state == "failed" and project.status == S.FAILED
    assert f"backup {safety.public_id}, taken just before, holds what it had" in operation.error
    assert safety.state == B.VERIFIED
    # Failed accepts stop, and stopped accepts the restore again.
    lifecycle.project_stop(project=project)
    fake_runtime.exec_handler = fake_postgres
    again = backups.project_restore_backup(backup=safety, confirm=project.public_id)
    again.refresh_from_db()
    assert again.state == "succeeded", again.error


# --- clone --------------------------------------------------------------------


def test_clone_creates_a_new_project_with_its_own_ports_and_the_same_rows(project, user, fake_runtime):
    _, made = backup(project)
    operation = lifecycle.project_create(owner=user, name="copy", from_backup=made)
    clone = Project.objects.get(pk=operation.project_id)
    operation.refresh_from_db()
    assert (operation.kind, operation.state, operation.backup_id) == ("clone", "succeeded", made.pk)
    assert clone.status == S.RUNNING and clone.public_id != project.public_id
    assert {clone.db_port, clone.api_port}.isdisjoint({project.db_port, project.api_port})
    assert (clone.postgres_version, clone.api_flavour) == (project.postgres_version, project.api_flavour)
    assert fake_runtime.databases[volume(clone)] == {"public.items": 3, "public.orders": 5}


def test_clone_refuses_a_failed_backup_and_an_older_postgres(project, user, fake_runtime):
    _, made = backup(project)
    with pytest.raises(InvalidInput, match="postgres_version: must be 17 or newer"):
        lifecycle.project_create(owner=user, from_backup=made, postgres_version="15")
    Backup.objects.filter(pk=made.pk).update(state=B.FAILED)
    made.refresh_from_db()
    with pytest.raises(InvalidTransition, match="is failed, so it cannot be restored"):
        lifecycle.project_create(owner=user, from_backup=made)
    assert Project.objects.count() == 1  # nothing reserved


# --- purge --------------------------------------------------------------------


def test_purge_first_takes_a_verified_final_backup_kept_for_purge_backup_days(project, fake_runtime, settings):
    settings.BERTH_PURGE_BACKUP_DAYS = 10
    _, manual = backup(project)
    lifecycle.project_delete(project=project)
    operation = lifecycle.project_purge(project=project, confirm=project.public_id)
    operation.refresh_from_db()
    project.refresh_from_db()
    assert operation.state == "succeeded" and project.status == S.PURGED
    final = project.backups.get(trigger="pre-purge")
    assert final.state == B.VERIFIED and final.tables == {"public.items": 3, "public.orders": 5}
    assert final.operation_id == operation.pk
    soon = timezone.now() + timedelta(days=10)
    for kept in (final, manual):
        kept.refresh_from_db()
        assert abs((kept.keep_until - soon).total_seconds()) < 60
    assert backups.backup_path(final).exists()
    # The final backup is a backup like any other: it clones.
    clone_op = lifecycle.project_create(owner=project.owner, from_backup=final)
    assert fake_runtime.databases[volume(Project.objects.get(pk=clone_op.project_id))] == final.tables


def test_purge_is_refused_and_the_project_stays_deleted_when_the_final_backup_fails(project, fake_runtime):
    lifecycle.project_delete(project=project)
    play(fake_runtime, "berth-dump", (b"", 1, "pg_dump: error: invalid page in block 7"))
    operation = lifecycle.project_purge(project=project, confirm=project.public_id)
    operation.refresh_from_db()
    project.refresh_from_db()
    assert operation.state == "failed" and operation.error.startswith("purge refused, nothing was removed")
    assert "invalid page in block 7" in operation.error
    assert project.status == S.DELETED and volume(project) in fake_runtime.volumes
    assert fake_runtime.calls["stack_purge"] == 0


def test_purge_of_a_project_that_never_had_a_volume_needs_no_backup(project, fake_runtime):
    lifecycle.project_delete(project=project)
    del fake_runtime.volumes[volume(project)]
    operation = lifecycle.project_purge(project=project, confirm=project.public_id)
    operation.refresh_from_db()
    assert operation.state == "succeeded" and not project.backups.exists()


@pytest.mark.parametrize("kwargs, field", [({"hour": 24, "keep": 1}, "hour"), ({"hour": 3, "keep": 0}, "keep"), ({"hour": "3", "keep": 1}, "hour"), ({"hour": 3, "keep": 1, "enabled": "yes"}, "enabled")])
def test_schedule_settings_are_validated(project, kwargs, field):
    with pytest.raises(InvalidInput) as caught:
        backups.backup_schedule_set(project=project, **kwargs)
    assert caught.value.field == field and not BackupSchedule.objects.exists()


def test_a_failure_that_echoes_the_password_never_stores_it(project, fake_runtime):
    secret = project.db_password
    play(fake_runtime, "berth-dump", (b"", 1, f"pg_dump: error: password authentication failed for {secret}"))
    operation, made = backup(project)
    assert secret not in made.error and secret not in operation.error
    assert "********" in made.error
