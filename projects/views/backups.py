"""A project's Backups section: take, verify, restore, download, the schedule."""

from http import HTTPStatus
from typing import Any

from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpResponse
from django.http.response import HttpResponseBase
from django.shortcuts import redirect
from django.urls import reverse
from django.views.decorators.http import require_POST, require_safe
from django.views.decorators.vary import vary_on_headers

from projects.downloads import BackupUnverified
from projects.downloads import backup_download as backup_file_download
from projects.http import DashboardRequest
from projects.models import Backup, Operation, Project
from projects.selectors import backup_for_user, backup_schedule_for
from projects.services.access import project_may_act
from projects.services.backups import requests as backups
from projects.services.errors import Forbidden, ServiceError
from projects.services.operations.kinds import allowed_actions
from projects.views.common import attempted, confirm_error, login_required, project_visible, refusal_shown
from projects.views.page import section_answer

# --- backups (services/backups/requests.py; the section is templates/projects/_backups.html) ---

BACKUPS = "projects/_backups.html"
BACKUPS_SHOWN = 50
BACKUP_KINDS = frozenset({"backup", "verify_backup", "restore_backup"})


def _backups_context(request: DashboardRequest, project: Project, *, error: str = "", failed: str = "", notice: str = "") -> dict[str, Any]:
    in_flight = project.operations.filter(state__in=Operation.IN_FLIGHT).select_related("backup").first()
    backup_operation = in_flight if in_flight is not None and in_flight.kind in BACKUP_KINDS else None
    listed = list(project.backups.all()[:BACKUPS_SHOWN])
    # Staff see other users' backups; acting on them needs the permission.
    may_act = project_may_act(user=request.user, project=project)
    allowed = allowed_actions(project) if may_act else frozenset()
    return {
        "may_act": may_act,
        "project": project,
        "backups_section": True,
        "backups": listed,
        "schedule": backup_schedule_for(project),
        "hours": range(24),
        "is_owner": project.owner_id == request.user.pk,
        "can_backup": "backup" in allowed,
        "can_verify": "verify_backup" in allowed,
        "can_restore": "restore_backup" in allowed,
        "backup_operation": backup_operation,
        "polling": backup_operation is not None or any(b.state == Backup.State.RUNNING for b in listed),
        "backup_error": error,
        "failed_backup": failed,  # the backup whose restore form stays open, with its error
        "backup_notice": notice,
    }


def _backups_response(request: DashboardRequest, project: Project, *, status: int = 200, **extra: Any) -> HttpResponse:
    return section_answer(request, project, f"{BACKUPS}#backups", _backups_context(request, project, **extra), status=status)


def _backup_visible(request: DashboardRequest, backup_id: str) -> Backup:
    backup = backup_for_user(request.user, backup_id)
    if backup is None:
        raise Http404("No such backup, or it is not yours.")
    return backup


def _backup_answer(request: DashboardRequest, project: Project, status: int, error: str, *, failed: str = "", notice: str = "") -> HttpResponse:
    if not error and not request.htmx:
        return redirect(reverse("project-backups", args=[project.public_id]) + "#backups")
    return _backups_response(request, project, status=status, error=error, failed=failed, notice="" if error else notice)


@login_required
@require_safe
@vary_on_headers("HX-Request")
def project_backups(request: DashboardRequest, project_id: str) -> HttpResponse:
    """The backups section: swapped into the project page by HTMX (and polled while one runs), else the whole page."""
    return _backups_response(request, project_visible(request, project_id))


@login_required
@require_POST
def project_backup_create(request: DashboardRequest, project_id: str) -> HttpResponse:
    project = project_visible(request, project_id)
    status, error = attempted(lambda: backups.project_backup(project=project, requested_by=request.user))
    notice = "Backup queued: it is dumped, then restored into a throwaway database and checked."
    return _backup_answer(request, project, status, error, notice=notice)


@login_required
@require_POST
def backup_verify(request: DashboardRequest, backup_id: str) -> HttpResponse:
    backup = _backup_visible(request, backup_id)
    status, error = attempted(lambda: backups.backup_verify(backup=backup, requested_by=request.user))
    return _backup_answer(request, backup.project, status, error, notice=f"Verification of backup {backup.public_id} queued.")


@login_required
@require_POST
def backup_restore(request: DashboardRequest, backup_id: str) -> HttpResponse:
    backup = _backup_visible(request, backup_id)
    project = backup.project
    if error := confirm_error(request, project):
        status = HTTPStatus.UNPROCESSABLE_CONTENT
    else:
        # The person typed the name; the service's own guard wants the id.
        restore = lambda: backups.project_restore_backup(backup=backup, confirm=project.public_id, requested_by=request.user)  # noqa: E731
        status, error = attempted(restore)
    notice = f"Restore of backup {backup.public_id} queued: a safety backup first, then the database is replaced."
    return _backup_answer(request, project, status, error, failed=backup.public_id if error else "", notice=notice)


@login_required
@require_safe
def backup_download(request: DashboardRequest, backup_id: str) -> HttpResponseBase:
    """The file, the owner's alone; a backup that failed verification only with ?force=1."""
    backup = _backup_visible(request, backup_id)
    try:
        return backup_file_download(backup=backup, user=request.user, force=request.GET.get("force") == "1")
    except Forbidden:
        raise PermissionDenied("Only the project's owner can download its backups: they hold every row.") from None
    except BackupUnverified as exc:
        # Shown where the Download link was, with the way to insist.
        return _backups_response(request, backup.project, status=HTTPStatus.CONFLICT, error=f"Not downloaded: {exc}.")
    except ServiceError:  # no file (a failed backup), or a lost one
        raise Http404("This backup has no file (it failed, or its file is gone from the backup directory).") from None


@login_required
@require_POST
def project_backup_schedule(request: DashboardRequest, project_id: str) -> HttpResponse:
    project = project_visible(request, project_id)
    try:
        hour, keep = int(request.POST.get("hour", "")), int(request.POST.get("keep", ""))
        backups.backup_schedule_set(project=project, hour=hour, keep=keep, enabled=request.POST.get("enabled") == "on", requested_by=request.user)
    except ValueError:
        status, error = HTTPStatus.UNPROCESSABLE_CONTENT, "The hour and the number of backups to keep must be whole numbers."
    except ServiceError as exc:
        status, error = refusal_shown(exc)
    else:
        status, error = HTTPStatus.OK, ""
    return _backup_answer(request, project, status, error, notice="Schedule saved.")
