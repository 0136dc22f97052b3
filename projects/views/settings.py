"""A project's Settings section: changes after creation (settings, memory, name) and credential rotation."""

from typing import Any

from django.http import HttpResponse
from django.shortcuts import redirect
from django.urls import reverse
from django.views.decorators.http import require_http_methods, require_POST
from django.views.decorators.vary import vary_on_headers
from django_htmx.http import HttpResponseClientRedirect, trigger_client_event

from projects.http import DashboardRequest
from projects.models import Operation, Project
from projects.pgconf import SETTINGS as PG_SETTINGS
from projects.services.errors import ServiceError
from projects.services.settings import requests as reconfigure
from projects.views.common import CHANGED_EVENT, login_required, project_visible, queued, refusal_shown
from projects.views.page import SETTINGS_SECTION, section_answer, settings_context


def _settings_answer(request: DashboardRequest, project: Project, *, status: int = 200, **extra: Any) -> HttpResponse:
    return section_answer(request, project, f"{SETTINGS_SECTION}#settings", settings_context(request, project, **extra), status=status)


def _settings_done(request: DashboardRequest, project: Project, operation: Operation | None, notice: str) -> HttpResponse:
    """After a change: the page again when an operation was queued (its panel follows it), else the section with a notice."""
    if operation is not None or not request.htmx:
        url = reverse("project-detail", args=[project.public_id])
        return HttpResponseClientRedirect(url) if request.htmx else redirect(url)
    return trigger_client_event(_settings_answer(request, project, notice=notice), CHANGED_EVENT)


@login_required
@require_http_methods(["GET", "POST"])
@vary_on_headers("HX-Request")
def project_settings(request: DashboardRequest, project_id: str) -> HttpResponse:
    project = project_visible(request, project_id)
    if request.method == "GET":
        return _settings_answer(request, project)
    posted = {key: str(request.POST.get(key, "")) for key in request.POST if key != "csrfmiddlewaretoken"}
    change = {
        "name": posted.get("name"),
        # An empty field leaves the limit as it is; an empty setting goes back to Berth's default.
        "db_memory": posted.get("db_memory") or None,
        "api_memory": posted.get("api_memory") or None,
        "postgres_settings": {name: (posted.get(f"setting_{name}") or "").strip() or None for name in PG_SETTINGS},
        "restart": posted.get("restart") == "1",
    }
    try:
        project, operation = queued(lambda: reconfigure.project_change(project=project, requested_by=request.user, **change))
    except ServiceError as exc:
        status, error = refusal_shown(exc)
        project.refresh_from_db()
        return _settings_answer(request, project, status=status, error=error, posted=posted)
    notice = "Saved." + (" A change waits for a restart: it applies when the project next starts." if project.restart_pending else "")
    return _settings_done(request, project, operation, notice)


@login_required
@require_POST
def project_rotate(request: DashboardRequest, project_id: str) -> HttpResponse:
    project = project_visible(request, project_id)
    try:
        operation = queued(lambda: reconfigure.project_rotate(project=project, requested_by=request.user, what=request.POST.get("what")))
    except ServiceError as exc:
        status, error = refusal_shown(exc)
        project.refresh_from_db()
        return _settings_answer(request, project, status=status, error=error)
    return _settings_done(request, project, operation, "")
