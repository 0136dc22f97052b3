"""The periodic backup pass (`manage.py backup_projects`): due schedules, retention, and what dead workers left.

django-tasks has no scheduler, so schedules are kept by polling: each pass
queues the scheduled backups that fell due since the last one.
"""

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from django.utils import timezone

from projects.models import Backup, BackupSchedule, Operation, Project, installation_id
from projects.runtime import Runtime, RuntimeFailure, get_runtime

from projects.services.backups.dumps import SCRATCH_SERVICES
from projects.services.backups.files import partial_path, partial_paths
from projects.services.backups.requests import backup_delete, project_backup
from projects.services.errors import ServiceError
from projects.services.operations.steps import backup_record

S = Project.Status
B = Backup.State


@dataclass
class BackupsReport:
    queued: list[str] = field(default_factory=list)  # "<project id>: operation <id>"
    skipped: list[str] = field(default_factory=list)  # due, but refused for now (an operation in flight, …)
    removed: list[str] = field(default_factory=list)  # backups removed by retention or expiry
    settled: list[str] = field(default_factory=list)  # running backups whose worker died, now failed
    cleaned: list[str] = field(default_factory=list)  # partial files and throwaway containers left behind
    engine_error: str = ""


def last_due(hour: int, now: datetime) -> datetime:
    """The latest time at or before `now` at which a daily backup at `hour` (UTC) fell due."""
    due = now.astimezone(UTC).replace(hour=hour, minute=0, second=0, microsecond=0)
    return due if due <= now else due - timedelta(days=1)


def backups_run_due(*, now: datetime | None = None, report: BackupsReport | None = None) -> BackupsReport:
    """Queue the scheduled backups that are due: one per schedule per day, caught up once after downtime."""
    now = now or timezone.now()
    report = report or BackupsReport()
    schedules = BackupSchedule.objects.filter(enabled=True, project__status__in=[S.RUNNING, S.STOPPED]).select_related("project")
    for schedule in schedules:
        project = schedule.project
        if project.backups.filter(trigger=Backup.Trigger.SCHEDULED, created_at__gte=last_due(schedule.hour, now)).exists():
            continue
        try:
            operation = project_backup(project=project, trigger=Backup.Trigger.SCHEDULED)
        except ServiceError as exc:
            report.skipped.append(f"{project.public_id}: {exc}")  # the next pass tries again
            continue
        report.queued.append(f"{project.public_id}: operation {operation.public_id}")
    return report


def backups_prune(*, now: datetime | None = None, report: BackupsReport | None = None) -> BackupsReport:
    """Remove expired backups (keep_until passed) and scheduled ones beyond each schedule's `keep`."""
    now = now or timezone.now()
    report = report or BackupsReport()
    doomed = list(Backup.objects.filter(keep_until__lt=now).exclude(state=B.RUNNING).select_related("project"))
    for schedule in BackupSchedule.objects.select_related("project"):
        scheduled = list(schedule.project.backups.filter(trigger=Backup.Trigger.SCHEDULED).exclude(state=B.RUNNING).order_by("-created_at", "-id"))
        good = [b for b in scheduled if b.is_restorable][: schedule.keep]
        # Older than the oldest good one kept: good ones beyond `keep`, failed ones before them.
        if len(good) == schedule.keep:
            doomed += [b for b in scheduled if b.created_at < good[-1].created_at]
    for backup in {b.pk: b for b in doomed}.values():
        try:
            backup_delete(backup=backup)
        except ServiceError:
            continue  # in use; the next pass
        report.removed.append(f"{backup.project.public_id}: backup {backup.public_id} ({backup.trigger})")
    return report


def backups_settle_orphans(*, runtime: Runtime | None = None, report: BackupsReport | None = None) -> BackupsReport:
    """Fail the backups a dead worker left running, and remove its partial files and throwaway containers."""
    runtime = runtime or get_runtime()
    report = report or BackupsReport()
    in_flight = Operation.objects.filter(state__in=Operation.IN_FLIGHT)
    orphans = Backup.objects.filter(state=B.RUNNING).exclude(operation__in=in_flight).exclude(operations__in=in_flight)
    # A backup row is made just before its operation: give a queuing request a moment.
    for backup in orphans.filter(created_at__lt=timezone.now() - timedelta(minutes=1)).select_related("project"):
        backup_record(backup, state=B.FAILED, error="the worker stopped during this backup; it has no file", finished_at=timezone.now())
        partial_path(backup).unlink(missing_ok=True)
        report.settled.append(f"{backup.project.public_id}: backup {backup.public_id}")
    # Only what belongs to projects of this database: another Berth (a test
    # run, a second instance) may share the engine or the directory, and its
    # work in progress is not ours to judge.
    running = set(Backup.objects.filter(state=B.RUNNING).values_list("public_id", flat=True))
    partials = partial_paths()
    ours = set(Project.objects.filter(public_id__in={p.parent.name for p in partials}).values_list("public_id", flat=True))
    for partial in partials:
        if partial.parent.name in ours and partial.name[1:].split(".")[0] not in running:
            partial.unlink(missing_ok=True)
            report.cleaned.append(str(partial))
    try:
        # Another installation's throwaways (berth.install) are its own business.
        scratch = [c for c in runtime.containers() if c.service in SCRATCH_SERVICES and c.install in (installation_id(), "")]
        # Read after the listing: a throwaway listed while its operation ran is
        # never taken for a leftover, even if that operation started just now.
        idle = set(
            Project.objects.filter(public_id__in={c.project_id for c in scratch})
            .exclude(operations__in=in_flight)
            .values_list("public_id", flat=True)
        )
        for container in scratch:
            if container.project_id in idle:
                runtime.scratch_remove(container.name)
                report.cleaned.append(container.name)
    except RuntimeFailure as exc:
        report.engine_error = str(exc)
    return report


def backups_pass(*, now: datetime | None = None, runtime: Runtime | None = None) -> BackupsReport:
    """What `manage.py backup_projects` does once: leftovers, then due schedules, then retention."""
    report = backups_settle_orphans(runtime=runtime)
    backups_run_due(now=now, report=report)
    backups_prune(now=now, report=report)
    return report
