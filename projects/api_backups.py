"""JSON API v1: backups. Same token auth, error format, 404-if-not-yours, 409 rules and ?wait=N as api.py.

Only the project's owner may download a backup's file (it holds every row);
staff who can see the project see its backups but get 403 on the file.
"""

import base64
from http import HTTPStatus

from django.http import FileResponse, HttpRequest, JsonResponse

from .api import _body, _settled, _time, _visible, _wait_seconds, error, methods, operation_json, project_json, service_error, token_required
from .models import Backup, BackupSchedule, Operation, Project
from .selectors import backup_for_user, backup_schedule_for
from .services import backups
from .services.errors import InvalidInput, ServiceError

LIST_MAX = 200
HAS_FILE = (Backup.State.SUCCEEDED, Backup.State.VERIFIED, Backup.State.VERIFY_FAILED)


def backup_json(backup: Backup) -> dict:
    return {
        "backup_id": backup.public_id,
        "project_id": backup.project.public_id,
        "state": backup.state,
        "trigger": backup.trigger,
        "created_at": _time(backup.created_at),
        "finished_at": _time(backup.finished_at),
        "verified_at": _time(backup.verified_at),
        "size": backup.size,
        "sha256": backup.sha256 or None,
        "postgres_version": backup.postgres_version,
        "tables": backup.tables,
        "rows": backup.row_count,
        "error": backup.error or None,
        "keep_until": _time(backup.keep_until),
        "download_url": f"/v1/backups/{backup.public_id}/download" if backup.state in HAS_FILE else None,
    }


def schedule_json(schedule: BackupSchedule | None) -> dict | None:
    if schedule is None:
        return None
    return {"enabled": schedule.enabled, "hour": schedule.hour, "keep": schedule.keep}


def _backup_visible(request: HttpRequest, backup_id: str) -> Backup | JsonResponse:
    backup = backup_for_user(request.user, backup_id)
    if backup is None:
        return error(404, "not_found", f"no backup {backup_id!r} (or it is not yours)")
    return backup


def _backup_answer(request: HttpRequest, operation: Operation, *, created: bool = False) -> JsonResponse:
    """202 while it runs; with ?wait=N the settled backup (201 for a new one, 200 for a verification)."""
    operation, final = _settled(request, operation)
    data = {**backup_json(operation.backup), "operation": operation_json(operation)}
    return JsonResponse(data, status=(201 if created else 200) if final else 202)


@token_required
@methods("GET", "POST")
def project_backups(request: HttpRequest, project_id: str) -> JsonResponse:
    project = _visible(request, project_id)
    if isinstance(project, JsonResponse):
        return project
    if request.method == "GET":
        listed = project.backups.select_related("project")[:LIST_MAX]
        schedule = backup_schedule_for(project)
        return JsonResponse({"backups": [backup_json(b) for b in listed], "schedule": schedule_json(schedule)})
    try:
        _wait_seconds(request)
        if unknown := sorted(_body(request)):
            raise InvalidInput(unknown[0], "is not a field of a backup request (it takes none)")
        operation = backups.project_backup(project=project, requested_by=request.user)
    except ServiceError as exc:
        return service_error(exc)
    return _backup_answer(request, operation, created=True)


@token_required
@methods("GET", "PUT")
def project_backup_schedule(request: HttpRequest, project_id: str) -> JsonResponse:
    project = _visible(request, project_id)
    if isinstance(project, JsonResponse):
        return project
    if request.method == "GET":
        return JsonResponse({"schedule": schedule_json(backup_schedule_for(project))})
    try:
        body = _body(request)
        if unknown := sorted(set(body) - {"hour", "keep", "enabled"}):
            raise InvalidInput(unknown[0], "is not a field of a schedule (hour, keep, enabled)")
        for required in ("hour", "keep"):
            if required not in body:
                raise InvalidInput(required, "is required")
        schedule = backups.backup_schedule_set(project=project, hour=body["hour"], keep=body["keep"], enabled=body.get("enabled", True))
    except ServiceError as exc:
        return service_error(exc)
    return JsonResponse({"schedule": schedule_json(schedule)})


@token_required
@methods("GET", "DELETE")
def backup_detail(request: HttpRequest, backup_id: str) -> JsonResponse:
    backup = _backup_visible(request, backup_id)
    if isinstance(backup, JsonResponse):
        return backup
    if request.method == "GET":
        return JsonResponse(backup_json(backup))
    try:
        backups.backup_delete(backup=backup)
    except ServiceError as exc:
        return service_error(exc)
    return JsonResponse({"deleted": backup_id})


@token_required
@methods("POST")
def backup_action(request: HttpRequest, backup_id: str, action: str) -> JsonResponse:
    backup = _backup_visible(request, backup_id)
    if isinstance(backup, JsonResponse):
        return backup
    try:
        _wait_seconds(request)
        body = _body(request)
        if action == "verify":
            return _backup_answer(request, backups.backup_verify(backup=backup, requested_by=request.user))
        confirm = body.get("confirm")
        operation = backups.project_restore_backup(
            backup=backup, confirm=confirm if isinstance(confirm, str) else None, requested_by=request.user
        )
    except ServiceError as exc:
        return service_error(exc)
    # A restore changes the project: answer with it, like the other project actions.
    operation, final = _settled(request, operation)
    project = Project.objects.select_related("owner").get(pk=operation.project_id)
    data = project_json(project, viewer=request.user, operation=operation)
    data["backup"] = backup_json(operation.backup)
    safety = operation.backups_made.select_related("project").first()
    data["safety_backup"] = backup_json(safety) if safety else None
    return JsonResponse(data, status=200 if final else 202)


@token_required
@methods("GET")
def backup_download(request: HttpRequest, backup_id: str):
    backup = _backup_visible(request, backup_id)
    if isinstance(backup, JsonResponse):
        return backup
    if backup.project.owner_id != request.user.pk:
        return error(403, "forbidden", "only the project's owner can download its backups: they hold every row")
    if backup.state not in HAS_FILE:
        return error(409, "wrong_state", f"backup {backup.public_id} is {backup.state}: it has no file")
    try:
        return backup_file_response(backup)
    except FileNotFoundError:
        return error(HTTPStatus.GONE, "gone", f"backup {backup.public_id}'s file is missing from the backup directory")


def backup_file_response(backup: Backup) -> FileResponse:
    """The backup's file, streamed as an attachment (the API's and the dashboard's); FileNotFoundError without one."""
    if backup.state not in HAS_FILE:
        raise FileNotFoundError(backup.public_id)
    handle = open(backups.backup_path(backup), "rb")
    created = backup.created_at.strftime("%Y%m%d-%H%M%S")
    response = FileResponse(
        handle, as_attachment=True, filename=f"{backup.project.public_id}-{created}-{backup.public_id}.dump", content_type="application/octet-stream"
    )
    # RFC 9530: the client can check what it got against what was dumped.
    response["Repr-Digest"] = f"sha-256=:{base64.b64encode(bytes.fromhex(backup.sha256)).decode()}:"
    return response
