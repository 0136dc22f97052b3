"""Before a dump: room on the backup disk for the database plus a margin, and pg_dump that gives up on a held lock."""

import shutil

import pytest

from projects.models import Backup, Project
from projects.runtime.fake import FAKE_DATABASE_BYTES, fake_postgres
from projects.services.backups import requests as backups
from projects.services.lifecycle import requests as lifecycle
from projects.services.backups.files import backup_dir


@pytest.fixture
def project(user) -> Project:
    return Project.objects.get(pk=lifecycle.project_create(owner=user, name="shop").project_id)


def backup_now(project: Project, user):
    operation = backups.project_backup(project=project, requested_by=user)
    operation.refresh_from_db()
    return operation, project.backups.get()


FREE = 50 * 1024**3


@pytest.fixture(autouse=True)
def disk(monkeypatch):
    # The machine's disk is shared and its free space moves: the backup disk here has 50 GiB free.
    monkeypatch.setattr("projects.services.backups.dumps.shutil.disk_usage", lambda path: shutil._ntuple_diskusage(100 * 1024**3, 50 * 1024**3, FREE))


def free_bytes(settings) -> int:
    return FREE


def test_a_dump_is_refused_before_it_starts_when_the_disk_has_less_than_the_margin(project, user, settings, fake_runtime):
    settings.BERTH_BACKUP_FREE_MARGIN = free_bytes(settings) + 10**12
    operation, backup = backup_now(project, user)
    assert operation.state == "failed" and backup.state == Backup.State.FAILED
    assert "not enough free space" in backup.error and "BERTH_BACKUP_FREE_MARGIN" in backup.error
    assert fake_runtime.calls["exec_stream"] == 0  # refused before the engine was asked
    assert not any(backup_dir(project.public_id).iterdir())


def test_a_dump_is_refused_when_the_database_is_larger_than_the_room(project, user, settings):
    # Room for a megabyte; the database is 8 MiB.
    settings.BERTH_BACKUP_FREE_MARGIN = free_bytes(settings) - 1024 * 1024
    operation, backup = backup_now(project, user)
    assert backup.state == Backup.State.FAILED
    assert f"the database is {FAKE_DATABASE_BYTES} bytes" in backup.error and "nothing was written" in backup.error
    assert not any(backup_dir(project.public_id).iterdir())
    assert project.status == Project.objects.get(pk=project.pk).status == "running"  # the project is as it was


def test_with_room_the_dump_runs_with_the_room_and_the_lock_wait_it_was_given(project, user, settings, fake_runtime):
    settings.BERTH_BACKUP_FREE_MARGIN = 0
    settings.BERTH_BACKUP_LOCK_WAIT_SECONDS = 42
    seen = {}

    def spy(runtime, container, argv, environment):
        if argv[:2] == ["sh", "-c"] and argv[3:4] == ["berth-dump"]:
            seen.update(environment, script=argv[2])
        return fake_postgres(runtime, container, argv, environment)

    fake_runtime.exec_handler = spy
    _, backup = backup_now(project, user)
    assert backup.state == Backup.State.VERIFIED
    assert seen["BERTH_LOCK_WAIT"] == "42s" and '--lock-wait-timeout="$BERTH_LOCK_WAIT"' in seen["script"]
    assert int(seen["BERTH_DUMP_ROOM"]) == FREE
    assert 'pg_database_size(current_database())' in seen["script"]


def test_a_dump_that_gave_up_on_a_lock_says_which_setting_bounds_the_wait(project, user, settings, fake_runtime):
    settings.BERTH_BACKUP_LOCK_WAIT_SECONDS = 7

    def locked(runtime, container, argv, environment):
        if argv[3:4] == ["berth-dump"]:
            stderr = "pg_dump: error: query failed: ERROR:  canceling statement due to statement timeout\npg_dump: detail: Query was: LOCK TABLE public.items IN ACCESS SHARE MODE\n"
            return b"", 1, stderr
        return fake_postgres(runtime, container, argv, environment)

    fake_runtime.exec_handler = locked
    _, backup = backup_now(project, user)
    assert backup.state == Backup.State.FAILED and backup.size is None
    assert "stayed locked" in backup.error and "BERTH_BACKUP_LOCK_WAIT_SECONDS (7 s)" in backup.error
    assert "LOCK TABLE public.items" in backup.error
