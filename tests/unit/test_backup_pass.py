"""services/backups/schedule.py against FakeRuntime: due schedules, retention, and what dead workers left behind (orphans)."""

from datetime import UTC, datetime, timedelta

import pytest
from django.core.management import call_command
from django.utils import timezone

from projects.models import Backup
from projects.runtime.base import ContainerState
from projects.services.backups import schedule as backup_pass
from projects.services.backups import requests as backups
from projects.services.lifecycle import requests as lifecycle
from projects.services.errors import InvalidTransition
from tests.unit.backup_helpers import backup, create, project

B = Backup.State


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
