"""The project pages: the list, a row, the create form, a project's page, its actions, the password revealed, its logs."""

from collections.abc import Callable
from http import HTTPStatus

from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import HttpResponse
from django.shortcuts import redirect
from django.template.loader import render_to_string
from django.template.response import TemplateResponse
from django.urls import reverse
from django.views.decorators.http import require_http_methods, require_POST, require_safe
from django.views.decorators.vary import vary_on_headers
from django_htmx.http import HttpResponseClientRedirect, HttpResponseStopPolling, trigger_client_event

from projects.charts import sparkline
from projects.forms import ProjectCreateForm, ProjectRetryForm
from projects.http import DashboardRequest
from projects.models import Project
from projects.selectors import (
    projects_for_user,
)
from projects.services.errors import InvalidInput, ServiceError
from projects.services.fleet.metrics import activity_sparklines
from projects.services.lifecycle import requests as lifecycle
from projects.services.pool.requests import pool_status_for
from projects.views.common import (
    CREATE,
    DETAIL,
    LIST,
    PAGE_SIZE,
    SETTLED_EVENT,
    attempted,
    confirm_error,
    login_required,
    project_visible,
    queued,
    refusal_shown,
    template_part,
)
from projects.views.page import ACTIONS, connection_context, logs_context, panel_context, project_page

# --- projects list -------------------------------------------------------------


@login_required
@require_safe
@vary_on_headers("HX-Request")
def project_list(request: DashboardRequest) -> HttpResponse:
    show_deleted = request.GET.get("deleted") == "1"
    # A constant number of queries whatever the number of projects (count +
    # one page, owners joined), and no engine call: rows show what the
    # database knows, and transitional rows poll for the rest.
    page = Paginator(projects_for_user(request.user, include_deleted=show_deleted), PAGE_SIZE).get_page(request.GET.get("page"))
    # One query more for the page's activity lines (commits per second, last hour).
    lines = activity_sparklines(projects=page.object_list)
    sparklines = {pk: sparkline(values) for pk, values in lines.items()}
    context = {"page": page, "show_deleted": show_deleted, "sparklines": sparklines}
    if request.user.is_staff and not request.htmx:
        # Operators see the warm pool above the list (its stacks are in no list).
        context["pools"] = pool_status_for(user=request.user)
    return TemplateResponse(request, template_part(request, LIST, "projects"), context)


@login_required
@require_safe
def project_row(request: DashboardRequest, project_id: str) -> HttpResponse:
    """One row of the list, polled every 2 s while its project is changing."""
    project = project_visible(request, project_id)
    if not request.htmx:
        return redirect("project-detail", project_id=project.public_id)
    html = render_to_string(f"{LIST}#row", {"project": project}, request=request)
    # A settled row is swapped in one last time and the polling ends.
    return HttpResponseStopPolling(html) if project.is_settled else HttpResponse(html)


# --- create --------------------------------------------------------------------------


@login_required
@require_http_methods(["GET", "POST"])
@vary_on_headers("HX-Request")
def project_create(request: DashboardRequest) -> HttpResponse:
    form = ProjectCreateForm(request.POST if request.method == "POST" else None)
    status = HTTPStatus.OK
    if form.is_bound and form.is_valid():
        try:
            operation = queued(lambda: lifecycle.project_create(owner=request.user, **form.cleaned_data))
        except ServiceError as refused:
            status, message = refusal_shown(refused)
            form.add_error(refused.field if refused.field in form.fields else None, message)
        else:
            # The project page polls while the project comes up.
            url = reverse("project-detail", args=[operation.project.public_id])
            return HttpResponseClientRedirect(url) if request.htmx else redirect(url)
    elif form.errors:
        status = HTTPStatus.UNPROCESSABLE_CONTENT
    return TemplateResponse(request, template_part(request, CREATE, "form"), {"form": form}, status=status)


# --- one project -------------------------------------------------------------------


@login_required
@require_safe
@vary_on_headers("HX-Request")
def project_detail(request: DashboardRequest, project_id: str) -> HttpResponse:
    project = project_visible(request, project_id)
    if not request.htmx:
        return project_page(request, project)
    if request.htmx.target == "connection":  # the connection section, asking again on the settled event
        return TemplateResponse(request, f"{DETAIL}#connection", connection_context(request, project))
    if request.htmx.target == "head":  # the head, asking again on the settled or changed event
        return TemplateResponse(request, f"{DETAIL}#head", {"project": project, "is_owner": project.owner_id == request.user.pk})
    # HTMX asks for the panel only while the project is changing (it polls);
    # once settled it gets the final panel, the polling stops and the other
    # sections hear that they are out of date.
    html = render_to_string(f"{DETAIL}#panel", panel_context(project, user=request.user), request=request)
    if not project.is_settled:
        return HttpResponse(html)
    return trigger_client_event(HttpResponseStopPolling(html), SETTLED_EVENT)


CONFIRMED_BY_NAME = {"delete", "purge", "upgrade", "rollback_upgrade", "drop_kept_volume"}
EMPTY_DATABASE_ACTIONS = {"start", "restore"}


def _retry_choices(request: DashboardRequest, project: Project) -> dict[str, str]:
    """The other version or flavour a retried create asked for ("Retry with…"); InvalidInput when not offered."""
    if not {"postgres_version", "api"} & set(request.POST):
        return {}
    retry = ProjectRetryForm(request.POST, project=project)
    if not retry.is_valid():
        field, errors = next(iter(retry.errors.items()))
        raise InvalidInput(field, " ".join(str(message) for message in errors))
    return retry.cleaned_data


@login_required
@require_POST
def project_action(request: DashboardRequest, project_id: str, action: str) -> HttpResponse:
    project = project_visible(request, project_id)
    fields: dict[str, object] = {}
    if action in EMPTY_DATABASE_ACTIONS and request.POST.get("allow_empty_database"):
        # An empty database for a project that had data: confirmed by name, like delete.
        fields["allow_empty_database"] = True
    if (action in CONFIRMED_BY_NAME or fields) and (error := confirm_error(request, project)):
        status = HTTPStatus.UNPROCESSABLE_CONTENT
    else:
        if action == "upgrade":
            fields["postgres_version"] = request.POST.get("postgres_version") or None
        choices: Callable[[], dict[str, str]] = lambda: _retry_choices(request, project) if action == "start" else {}  # noqa: E731
        status, error = attempted(lambda: ACTIONS[action](project=project, requested_by=request.user, **choices(), **fields))
    project.refresh_from_db()
    if request.htmx:
        context = panel_context(project, user=request.user, action_error=error, failed_action=action if error else "")
        response = TemplateResponse(request, f"{DETAIL}#panel", context, status=status)
        # An operation that finished before this answer (a fast engine) leaves no poll to say so.
        return trigger_client_event(response, SETTLED_EVENT) if not error and project.is_settled else response
    if error:
        return project_page(request, project, status=status, action_error=error, failed_action=action)
    return redirect("project-detail", project_id=project.public_id)


@login_required
@require_POST
def project_reveal(request: DashboardRequest, project_id: str) -> HttpResponse:
    """Show the password: a POST, so it is never in a link, a prefetch or a history entry."""
    project = project_visible(request, project_id)
    if project.owner_id != request.user.pk:
        raise PermissionDenied("Only the project's owner can see its password.")
    if not request.htmx:
        return project_page(request, project, reveal=True)
    response = TemplateResponse(request, f"{DETAIL}#connection", connection_context(request, project, reveal=True))
    response["Cache-Control"] = "no-store"
    return response


@login_required
@require_safe
@vary_on_headers("HX-Request")
def project_logs(request: DashboardRequest, project_id: str) -> HttpResponse:
    """The last 200 lines of each container, read when asked for."""
    project = project_visible(request, project_id)
    if not request.htmx:
        return project_page(request, project)
    return TemplateResponse(request, f"{DETAIL}#logs", logs_context(project))
