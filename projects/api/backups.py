"""JSON API v1: backups. Same token auth, error format, 404-if-not-yours, 409 rules and ?wait=N as api.py.

Only the project's owner may download a backup's file (it holds every row);
staff who can see the project see its backups but get 403 on the file.
"""

from typing import Any

from django.http import FileResponse, JsonResponse

from projects.api.common import (
    backup_visible,
    json_body,
    methods,
    operation_json,
    project_json,
    project_visible,
    query_flag,
    settled,
    time_json,
    token_required,
    wait_seconds,
)
from projects.downloads import HAS_FILE
from projects.downloads import backup_download as backup_file_download
from projects.http import ApiRequest, AuthedRequest
from projects.models import Backup, BackupSchedule, Operation, Project
from projects.selectors import backup_schedule_for
from projects.services.backups import requests as backups
from projects.services.errors import InvalidInput

LIST_MAX = 200


def backup_json(backup: Backup) -> dict[str, Any]:
    return {
        "backup_id": backup.public_id,
        "project_id": backup.project.public_id,
        "state": backup.state,
        "trigger": backup.trigger,
        "created_at": time_json(backup.created_at),
        "finished_at": time_json(backup.finished_at),
        "verified_at": time_json(backup.verified_at),
        "size": backup.size,
        "sha256": backup.sha256 or None,
        "postgres_version": backup.postgres_version,
        "tables": backup.tables,
        "databases": backup.held_databases,
        "rows": backup.row_count,
        "error": backup.error or None,
        "keep_until": time_json(backup.keep_until),
        "download_url": f"/v1/backups/{backup.public_id}/download" if backup.state in HAS_FILE else None,
    }


def schedule_json(schedule: BackupSchedule | None) -> dict[str, Any] | None:
    if schedule is None:
        return None
    return {"enabled": schedule.enabled, "hour": schedule.hour, "keep": schedule.keep}


def _made(operation: Operation) -> Backup:
    """The Backup a backup operation makes, verifies or restores (operation_enqueue always gets one)."""
    if operation.backup is None:
        raise RuntimeError(f"operation {operation.public_id} ({operation.kind}) has no backup")
    return operation.backup


def _backup_answer(request: AuthedRequest, operation: Operation, *, created: bool = False) -> JsonResponse:
    """202 while it runs; with ?wait=N the settled backup (201 for a new one, 200 for a verification)."""
    operation, final = settled(request, operation)
    backup = _made(operation)
    # Settled means the backup too: an answer never says 201 with a backup still running.
    final = final and backup.state != Backup.State.RUNNING
    data = {**backup_json(backup), "operation": operation_json(operation)}
    return JsonResponse(data, status=(201 if created else 200) if final else 202)


@token_required
@methods("GET", "POST")
def project_backups(request: AuthedRequest, project_id: str) -> JsonResponse:
    project = project_visible(request, project_id)
    if request.method == "GET":
        listed = project.backups.select_related("project")[:LIST_MAX]
        schedule = backup_schedule_for(project)
        return JsonResponse({"backups": [backup_json(b) for b in listed], "schedule": schedule_json(schedule)})
    wait_seconds(request)
    if unknown := sorted(json_body(request)):
        raise InvalidInput(unknown[0], "is not a field of a backup request (it takes none)")
    return _backup_answer(request, backups.project_backup(project=project, requested_by=request.user), created=True)


@token_required
@methods("GET", "PUT")
def project_backup_schedule(request: AuthedRequest, project_id: str) -> JsonResponse:
    project = project_visible(request, project_id)
    if request.method == "GET":
        return JsonResponse({"schedule": schedule_json(backup_schedule_for(project))})
    body = json_body(request)
    if unknown := sorted(set(body) - {"hour", "keep", "enabled"}):
        raise InvalidInput(unknown[0], "is not a field of a schedule (hour, keep, enabled)")
    for required in ("hour", "keep"):
        if required not in body:
            raise InvalidInput(required, "is required")
    schedule = backups.backup_schedule_set(
        project=project, hour=body["hour"], keep=body["keep"], enabled=body.get("enabled", True), requested_by=request.user
    )
    return JsonResponse({"schedule": schedule_json(schedule)})


@token_required
@methods("GET", "DELETE")
def backup_detail(request: AuthedRequest, backup_id: str) -> JsonResponse:
    backup = backup_visible(request, backup_id)
    if request.method == "GET":
        return JsonResponse(backup_json(backup))
    backups.backup_delete(backup=backup, requested_by=request.user)
    return JsonResponse({"deleted": backup_id})


@token_required
@methods("POST")
def backup_action(request: ApiRequest, backup_id: str, action: str) -> JsonResponse:
    backup = backup_visible(request, backup_id)
    wait_seconds(request)
    body = json_body(request)
    if action == "verify":
        return _backup_answer(request, backups.backup_verify(backup=backup, requested_by=request.user))
    confirm = body.get("confirm")
    operation = backups.project_restore_backup(backup=backup, confirm=confirm if isinstance(confirm, str) else None, requested_by=request.user)
    # A restore changes the project: answer with it, like the other project actions.
    operation, final = settled(request, operation)
    project = Project.objects.select_related("owner").get(pk=operation.project_id)
    data = project_json(project, request=request, operation=operation)
    data["backup"] = backup_json(_made(operation))
    safety = operation.backups_made.select_related("project").first()
    data["safety_backup"] = backup_json(safety) if safety else None
    return JsonResponse(data, status=200 if final else 202)


@token_required
@methods("GET")
def backup_download(request: AuthedRequest, backup_id: str) -> FileResponse:
    backup = backup_visible(request, backup_id)
    return backup_file_download(backup=backup, user=request.user, force=query_flag(request, "force"))
