"""services/operations/queue.py against FakeRuntime: what a dead worker leaves is settled, and an operation's error never holds a secret."""

from datetime import timedelta

import pytest
from django.core.management import call_command
from django.tasks import TaskResultStatus
from django.utils import timezone
from django_tasks_db.models import DBTaskResult

from projects.models import Operation, Project
from projects.runtime import RuntimeFailure, RuntimeUnavailable
from projects.services.lifecycle import requests as lifecycle
from projects.services.operations import steps
from projects.services.operations.queue import operation_execute, operation_recover_stale
from projects.services.fleet.watcher import projects_sync

S = Project.Status
DB_BACKEND = {"default": {"BACKEND": "django_tasks_db.DatabaseBackend"}}


def running_project(user) -> Project:
    return Project.objects.get(pk=lifecycle.project_create(owner=user, name="r").project_id)


def in_flight(project: Project, *, kind: str, state: str, age_s: float, status: str) -> Operation:
    """An operation as a worker killed `age_s` seconds ago left it."""
    then = timezone.now() - timedelta(seconds=age_s)
    op = Operation.objects.create(project=project, kind=kind, state=state)
    running = state == Operation.State.RUNNING
    Operation.objects.filter(pk=op.pk).update(
        created_at=then, started_at=then if running else None, heartbeat_at=then if running else None
    )
    Project.objects.filter(pk=project.pk).update(status=status)
    op.refresh_from_db()
    return op


def task_row(op: Operation, *, status: str, claimed_age_s: float | None = None) -> DBTaskResult:
    now = timezone.now()
    return DBTaskResult.objects.create(
        task_path="projects.tasks.run_operation",
        args_kwargs={"args": [], "kwargs": {"operation_id": op.pk}},
        backend_name="default",
        run_after=now,
        status=status,
        started_at=None if claimed_age_s is None else now - timedelta(seconds=claimed_age_s),
    )


# --- crash recovery -----------------------------------------------------------


def test_a_running_operation_without_heartbeat_fails_with_the_reason_and_its_project_can_retry(user, settings, fake_runtime):
    settings.BERTH_STALE_OPERATION_SECONDS = 60
    project = running_project(user)
    op = in_flight(project, kind="stop", state="running", age_s=61, status=S.STOPPING)

    [recovered] = operation_recover_stale()

    op.refresh_from_db()
    project.refresh_from_db()
    assert recovered.pk == op.pk and op.state == "failed" and op.finished_at is not None
    assert "no heartbeat for 60 s" in op.error and "retry" in op.error
    assert project.status == S.FAILED and "stop" in project.allowed_actions()
    lifecycle.project_stop(project=project)
    project.refresh_from_db()
    assert project.status == S.STOPPED


def test_a_running_operation_with_a_fresh_heartbeat_is_left_alone(user, settings):
    settings.BERTH_STALE_OPERATION_SECONDS = 60
    project = running_project(user)
    op = in_flight(project, kind="stop", state="running", age_s=59, status=S.STOPPING)
    assert operation_recover_stale() == []
    op.refresh_from_db()
    project.refresh_from_db()
    assert (op.state, project.status) == ("running", S.STOPPING)


def test_a_killed_create_is_retried_by_start_into_exactly_one_stack_on_the_same_ports(user, fake_runtime):
    project = running_project(user)
    ports = (project.db_port, project.api_port)
    # The first create got as far as the db container before its worker died.
    del fake_runtime.containers_by_name[f"project_{project.public_id}_api"]
    Operation.objects.filter(project=project).delete()
    in_flight(project, kind="create", state="running", age_s=600, status=S.PROVISIONING)

    operation_recover_stale()
    project.refresh_from_db()
    assert project.status == S.FAILED
    lifecycle.project_start(project=project)

    project.refresh_from_db()
    state = fake_runtime.stack_state(project.public_id)
    assert project.status == S.RUNNING and (project.db_port, project.api_port) == ports
    assert sorted(c.service for c in state.containers) == ["api", "db"]
    assert list(fake_runtime.networks.values()).count(project.public_id) == 1
    assert list(fake_runtime.volumes.values()).count(project.public_id) == 1


def test_a_failed_deleted_side_operation_is_retried_with_the_deleted_side_actions(user, settings):
    settings.BERTH_STALE_OPERATION_SECONDS = 60
    project = running_project(user)
    lifecycle.project_delete(project=project)
    op = in_flight(project, kind="purge", state="running", age_s=120, status=S.PURGING)
    operation_recover_stale()
    project.refresh_from_db()
    assert project.status == S.FAILED and op.kind in project.allowed_actions()


def test_a_queued_operation_past_the_limit_with_the_inline_backend_failed_because_its_process_died(user, settings):
    settings.BERTH_STALE_OPERATION_SECONDS = 60
    project = running_project(user)
    op = in_flight(project, kind="start", state="queued", age_s=61, status=S.STARTING)
    operation_recover_stale()
    op.refresh_from_db()
    assert op.state == "failed" and "never started" in op.error


def test_a_queued_operation_waiting_for_a_free_worker_is_never_failed_however_old(user, settings):
    project = running_project(user)
    settings.TASKS = DB_BACKEND
    op = in_flight(project, kind="start", state="queued", age_s=3600, status=S.STARTING)
    task_row(op, status=TaskResultStatus.READY)
    assert operation_recover_stale() == []
    op.refresh_from_db()
    assert op.state == "queued"


def test_a_queued_operation_whose_task_a_live_worker_just_claimed_is_left_alone(user, settings):
    project = running_project(user)
    settings.TASKS = DB_BACKEND
    op = in_flight(project, kind="start", state="queued", age_s=3600, status=S.STARTING)
    task_row(op, status=TaskResultStatus.RUNNING, claimed_age_s=1)
    assert operation_recover_stale() == []


@pytest.mark.parametrize("task", ["claimed by a worker that died", "failed", "lost"])
def test_a_queued_operation_whose_task_will_never_start_it_is_failed(user, settings, task):
    project = running_project(user)
    settings.TASKS = DB_BACKEND
    settings.BERTH_STALE_OPERATION_SECONDS = 60
    op = in_flight(project, kind="start", state="queued", age_s=3600, status=S.STARTING)
    row = None
    if task == "claimed by a worker that died":
        row = task_row(op, status=TaskResultStatus.RUNNING, claimed_age_s=61)
    elif task == "failed":
        row = task_row(op, status=TaskResultStatus.FAILED, claimed_age_s=3000)

    [recovered] = operation_recover_stale()

    project.refresh_from_db()
    assert recovered.pk == op.pk and project.status == S.FAILED
    if row is not None:
        row.refresh_from_db()
        # django-tasks-db never re-runs a claimed task; the row now says it is over.
        assert row.status == TaskResultStatus.FAILED


def test_the_killed_workers_task_row_stops_claiming_to_run(user, settings):
    project = running_project(user)
    settings.TASKS = DB_BACKEND
    op = in_flight(project, kind="stop", state="running", age_s=3600, status=S.STOPPING)
    row = task_row(op, status=TaskResultStatus.RUNNING, claimed_age_s=3600)
    operation_recover_stale()
    row.refresh_from_db()
    assert row.status == TaskResultStatus.FAILED and row.finished_at is not None
    assert "heartbeat" in row.traceback


def test_a_slow_worker_finishing_after_recovery_does_not_overwrite_the_verdict(user, settings, fake_runtime):
    settings.BERTH_STALE_OPERATION_SECONDS = 60
    project = running_project(user)
    op = Operation.objects.create(project=project, kind="stop")
    Project.objects.filter(pk=project.pk).update(status=S.STOPPING)

    def step(p: Project) -> dict:
        # While the step runs, the rest of Berth decides its worker is dead.
        operation_recover_stale(now=timezone.now() + timedelta(seconds=3600))
        return {"status": S.STOPPED}

    operation_execute(op.pk, step)
    op.refresh_from_db()
    project.refresh_from_db()
    assert op.state == "failed" and "heartbeat" in op.error
    assert project.status == S.FAILED


def test_every_sync_pass_recovers_stale_operations_even_with_the_engine_down(user, settings, fake_runtime):
    settings.BERTH_STALE_OPERATION_SECONDS = 60
    project = running_project(user)
    op = in_flight(project, kind="stop", state="running", age_s=61, status=S.STOPPING)
    fake_runtime.fail_with("containers", RuntimeUnavailable("Docker Engine unreachable at unix:///nowhere"))
    report = projects_sync()
    op.refresh_from_db()
    assert report.recovered == [op.public_id] and op.state == "failed"
    assert report.engine_error


def test_the_worker_command_recovers_stale_operations_before_it_runs_tasks(user, settings, monkeypatch):
    from projects.management.commands.worker import WakingWorker

    ran = []
    monkeypatch.setattr(WakingWorker, "configure_signals", lambda self: None)
    monkeypatch.setattr(WakingWorker, "run", lambda self: ran.append(Operation.objects.get(pk=op.pk).state))
    settings.BERTH_STALE_OPERATION_SECONDS = 60
    project = running_project(user)
    settings.TASKS = DB_BACKEND
    op = in_flight(project, kind="stop", state="running", age_s=61, status=S.STOPPING)
    call_command("worker", "--no-startup-delay", verbosity=0)
    assert ran == ["failed"]  # settled before the worker took its first task


# --- secrets never reach an operation's error -------------------------------------


def test_an_engine_error_that_echoes_a_secret_is_stored_and_logged_redacted(user, fake_runtime, caplog):
    project = running_project(user)
    password, jwt = project.db_password, project.jwt_secret
    fake_runtime.fail_with("stack_up", RuntimeFailure(f"create refused: env POSTGRES_PASSWORD={password} JWT={jwt}"))
    lifecycle.project_start(project=project)
    op = project.operations.filter(kind="start").get()
    assert op.state == "failed" and "POSTGRES_PASSWORD=********" in op.error
    assert password not in op.error and jwt not in op.error
    assert password not in caplog.text and jwt not in caplog.text


def test_an_unexpected_error_carrying_a_secret_is_logged_with_its_traceback_redacted(user, fake_runtime, caplog, monkeypatch):
    project = running_project(user)
    password = project.db_password

    def boom(p):
        raise ValueError(f"bad value {p.db_password}")

    monkeypatch.setitem(steps.STEPS, "start", boom)
    lifecycle.project_start(project=project)
    op = project.operations.filter(kind="start").get()
    assert op.error == "internal error (ValueError); see the worker's log"
    assert "Traceback" in caplog.text and "bad value ********" in caplog.text
    assert password not in caplog.text


def test_a_dead_workers_backup_fails_the_backup_and_leaves_the_project_as_it_was(user, settings):
    from projects.models import Backup

    settings.BERTH_STALE_OPERATION_SECONDS = 60
    project = running_project(user)
    backup = Backup.objects.create(project=project, postgres_version=project.postgres_version)
    op = in_flight(project, kind="backup", state="running", age_s=61, status=S.RUNNING)
    Operation.objects.filter(pk=op.pk).update(backup=backup)

    operation_recover_stale()

    project.refresh_from_db()
    backup.refresh_from_db()
    assert project.status == S.RUNNING  # a backup reads a project, it never changed its status
    assert backup.state == Backup.State.FAILED and "no heartbeat" in backup.error


def test_a_dead_workers_restore_from_backup_leaves_the_project_failed(user, settings):
    # The restore may have dropped the database before loading the backup: the
    # project cannot claim to be running with content nobody knows.
    settings.BERTH_STALE_OPERATION_SECONDS = 60
    project = running_project(user)
    in_flight(project, kind="restore_backup", state="running", age_s=61, status=S.RUNNING)

    operation_recover_stale()

    project.refresh_from_db()
    assert project.status == S.FAILED
