"""Backup services against FakeRuntime: dumps, their failures, verification, restore, clone, purge, schedules.

FakeRuntime's `fake_postgres` plays the commands Berth runs in a db
container over `fake_runtime.databases[<volume>]` (table -> rows); tests
replace single commands with `play(...)` to inject failures.
"""

import errno
import hashlib
import json
import os
from datetime import UTC, datetime, timedelta

import pytest
from django.core.management import call_command
from django.utils import timezone

from projects.models import Backup, BackupSchedule, Operation, Project
from projects.runtime.base import ContainerState
from projects.runtime.fake import fake_postgres
from projects.services import backup_pass, backups, lifecycle
from projects.services import backup_files as files_service
from projects.services.errors import InvalidInput, InvalidTransition, OperationInFlight

S = Project.Status
B = Backup.State


def create(user, **kwargs) -> Project:
    op = lifecycle.project_create(owner=user, **kwargs)
    return Project.objects.get(pk=op.project_id)


def volume(project: Project) -> str:
    return f"project_{project.public_id}_data"


def backup(project: Project, **kwargs) -> tuple[Operation, Backup]:
    operation = backups.project_backup(project=project, **kwargs)
    operation.refresh_from_db()
    return operation, Backup.objects.get(pk=operation.backup_id)


def play(fake_runtime, program: str, answer, *, only_in: str | None = None) -> None:
    """Make `program` (pg_isready, berth-dump, berth-restore, psql) answer `answer` (or call it), optionally in one container only."""

    def handler(runtime, container, argv, env):
        name = argv[3] if argv[:2] == ["sh", "-c"] else argv[0]
        if name == program and (only_in is None or container == only_in):
            return answer(runtime, container, argv, env) if callable(answer) else answer
        return fake_postgres(runtime, container, argv, env)

    fake_runtime.exec_handler = handler


def backup_files(settings) -> list[str]:
    root = settings.BERTH_BACKUP_DIR
    return sorted(p.name for p in root.rglob("*") if p.is_file()) if root.exists() else []


def scratch_left(fake_runtime) -> list[str]:
    return [c.name for c in fake_runtime.containers_by_name.values() if c.service.startswith("backup-")]


@pytest.fixture
def project(user, fake_runtime):
    project = create(user, name="shop")
    fake_runtime.databases[volume(project)] = {"public.items": 3, "public.orders": 5}
    return project


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
    from projects.services.operations import operation_execute

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
    from projects.services.operations import operation_execute

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


# --- schedules, retention, leftovers -------------------------------------------------


@pytest.mark.parametrize(
    "hour, now, due",
    [
        (3, datetime(2026, 5, 2, 4, 30, tzinfo=UTC), datetime(2026, 5, 2, 3, tzinfo=UTC)),
        (3, datetime(2026, 5, 2, 3, 0, tzinfo=UTC), datetime(2026, 5, 2, 3, tzinfo=UTC)),
        (3, datetime(2026, 5, 2, 2, 59, tzinfo=UTC), datetime(2026, 5, 1, 3, tzinfo=UTC)),
        (23, datetime(2026, 5, 2, 1, 0, tzinfo=UTC), datetime(2026, 5, 1, 23, tzinfo=UTC)),
    ],
)
def test_last_due_is_the_latest_scheduled_hour_at_or_before_now(hour, now, due):
    assert backup_pass.last_due(hour, now) == due


def test_a_schedule_queues_one_backup_a_day_and_catches_up_once(project):
    now = timezone.now()
    backups.backup_schedule_set(project=project, hour=now.hour, keep=3)
    first = backup_pass.backups_run_due(now=now)
    assert len(first.queued) == 1
    assert project.backups.get().trigger == "scheduled" and project.backups.get().state == B.VERIFIED
    assert backup_pass.backups_run_due(now=now + timedelta(minutes=30)).queued == []  # already done today
    assert len(backup_pass.backups_run_due(now=now + timedelta(days=3)).queued) == 1  # after downtime: one, not three
    assert project.backups.count() == 2


def test_a_new_schedule_backs_up_on_the_next_pass_not_at_its_next_hour(project):
    # README, "Schedules": set for an hour that is 12 hours away, the first backup is a catch-up at once.
    now = timezone.now()
    next_hour = now.replace(minute=0, second=0, microsecond=0) + timedelta(hours=12)
    backups.backup_schedule_set(project=project, hour=next_hour.hour, keep=3)
    assert len(backup_pass.backups_run_due(now=now).queued) == 1
    assert backup_pass.backups_run_due(now=next_hour - timedelta(minutes=1)).queued == []  # not due again before its hour
    assert len(backup_pass.backups_run_due(now=next_hour).queued) == 1  # then daily, at its hour


def test_schedules_skip_disabled_ones_and_projects_that_are_not_live(project, user):
    now = timezone.now()
    backups.backup_schedule_set(project=project, hour=now.hour, keep=3, enabled=False)
    other = create(user, name="other")
    backups.backup_schedule_set(project=other, hour=now.hour, keep=3)
    lifecycle.project_delete(project=other)
    assert backup_pass.backups_run_due(now=now).queued == []


def test_a_due_backup_of_a_busy_project_waits_for_the_next_pass(project, settings):
    now = timezone.now()
    backups.backup_schedule_set(project=project, hour=now.hour, keep=3)
    settings.TASKS = {"default": {"BACKEND": "django.tasks.backends.dummy.DummyBackend"}}
    backups.project_backup(project=project)  # a manual one, queued, never run: in flight
    report = backup_pass.backups_run_due(now=now)
    assert report.queued == [] and "already in flight" in report.skipped[0]


def test_retention_keeps_the_newest_good_scheduled_backups_and_nothing_else_goes(project, settings):
    backups.backup_schedule_set(project=project, hour=3, keep=2)
    made = [backup(project, trigger="scheduled")[1] for _ in range(4)]
    _, manual = backup(project)
    start = timezone.now() - timedelta(days=10)
    for n, b in enumerate(made):
        Backup.objects.filter(pk=b.pk).update(created_at=start + timedelta(days=n))
    Backup.objects.filter(pk=made[3].pk).update(state=B.FAILED)  # the newest failed: it keeps the two good before it

    report = backup_pass.backups_prune()
    remaining = set(project.backups.values_list("public_id", flat=True))
    assert remaining == {made[1].public_id, made[2].public_id, made[3].public_id, manual.public_id}
    assert len(report.removed) == 1 and not backups.backup_path(made[0]).exists()
    assert backups.backup_path(made[2]).exists()


def test_backups_past_keep_until_are_removed_with_their_files(project):
    _, made = backup(project)
    Backup.objects.filter(pk=made.pk).update(keep_until=timezone.now() - timedelta(seconds=1))
    report = backup_pass.backups_prune()
    assert report.removed == [f"{project.public_id}: backup {made.public_id} (manual)"]
    assert not project.backups.exists() and not backups.backup_path(made).exists()


def test_a_backup_in_use_by_an_operation_is_not_deleted(project, settings):
    _, made = backup(project)
    settings.TASKS = {"default": {"BACKEND": "django.tasks.backends.dummy.DummyBackend"}}
    backups.backup_verify(backup=made)  # queued, in flight
    with pytest.raises(InvalidTransition, match="in use"):
        backups.backup_delete(backup=made)


def test_leftovers_of_a_dead_worker_are_settled_and_cleaned(project, fake_runtime, settings):
    orphan = Backup.objects.create(project=project, postgres_version="17")
    Backup.objects.filter(pk=orphan.pk).update(created_at=timezone.now() - timedelta(minutes=5))
    partial = settings.BERTH_BACKUP_DIR / project.public_id / f".{orphan.public_id}.dump.partial"
    partial.parent.mkdir(parents=True)
    partial.write_bytes(b"PGDMP half")
    scratch = f"project_{project.public_id}_verify_{orphan.public_id}"
    fake_runtime.containers_by_name[scratch] = ContainerState(name=scratch, project_id=project.public_id, service="backup-verify", status="running")

    report = backup_pass.backups_pass()
    orphan.refresh_from_db()
    assert orphan.state == B.FAILED and "worker stopped" in orphan.error
    assert not partial.exists() and scratch not in fake_runtime.containers_by_name
    assert report.settled == [f"{project.public_id}: backup {orphan.public_id}"] and report.cleaned == [scratch]
    assert f"project_{project.public_id}_db" in fake_runtime.containers_by_name  # the project's own are never touched


def test_a_fresh_running_backup_is_not_taken_for_a_leftover(project, settings):
    settings.TASKS = {"default": {"BACKEND": "django.tasks.backends.dummy.DummyBackend"}}
    _, made = backup(project)
    backup_pass.backups_settle_orphans()
    made.refresh_from_db()
    assert made.state == B.RUNNING


@pytest.mark.parametrize("kwargs, field", [({"hour": 24, "keep": 1}, "hour"), ({"hour": 3, "keep": 0}, "keep"), ({"hour": "3", "keep": 1}, "hour"), ({"hour": 3, "keep": 1, "enabled": "yes"}, "enabled")])
def test_schedule_settings_are_validated(project, kwargs, field):
    with pytest.raises(InvalidInput) as caught:
        backups.backup_schedule_set(project=project, **kwargs)
    assert caught.value.field == field and not BackupSchedule.objects.exists()


def test_backup_projects_command_reports_what_it_did(project, capsys):
    backups.backup_schedule_set(project=project, hour=timezone.now().hour, keep=1)
    call_command("backup_projects")
    out = capsys.readouterr().out
    assert f"queued scheduled backup: {project.public_id}: operation" in out and "1 queued" in out


def test_a_partial_file_without_a_running_backup_is_removed(project, settings):
    stray = settings.BERTH_BACKUP_DIR / project.public_id / ".0123456789ab.dump.partial"
    stray.parent.mkdir(parents=True)
    stray.write_bytes(b"PGDMP")
    assert backup_pass.backups_settle_orphans().cleaned == [str(stray)]
    assert not stray.exists()


def test_leftovers_of_projects_this_database_does_not_know_are_never_touched(project, fake_runtime, settings):
    # Another Berth (a test run, a second instance) may share the engine and the directory.
    stranger = "feedfacecafe"
    scratch = f"project_{stranger}_verify_0123456789ab"
    fake_runtime.containers_by_name[scratch] = ContainerState(name=scratch, project_id=stranger, service="backup-verify", status="running")
    partial = settings.BERTH_BACKUP_DIR / stranger / ".0123456789ab.dump.partial"
    partial.parent.mkdir(parents=True)
    partial.write_bytes(b"PGDMP")
    assert backup_pass.backups_settle_orphans().cleaned == []
    assert scratch in fake_runtime.containers_by_name and partial.exists()


def test_a_failure_that_echoes_the_password_never_stores_it(project, fake_runtime):
    secret = project.db_password
    play(fake_runtime, "berth-dump", (b"", 1, f"pg_dump: error: password authentication failed for {secret}"))
    operation, made = backup(project)
    assert secret not in made.error and secret not in operation.error
    assert "********" in made.error
