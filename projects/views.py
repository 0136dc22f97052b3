"""The dashboard (HTML + HTMX): thin views over the same services as the JSON API.

Each view renders one template; an HTMX request gets one of its partials
(`"template.html#partial"`, django-htmx's example pattern). Every form also
works as a plain POST without JavaScript, so each view answers both.

Views parse input, check who may see the project, call one service and render.
They never call the runtime: what the engine says comes through
projects/services/fleet/inspect.py, and never while rendering a list.
"""

import ipaddress
import shlex
from collections.abc import Callable
from functools import wraps
from typing import Any, Concatenate, cast
from http import HTTPStatus
from urllib.parse import quote

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required as django_login_required
from django.contrib.auth.models import User
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse
from django.http.response import HttpResponseBase
from django.shortcuts import redirect
from django.template.loader import render_to_string
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django.views.decorators.vary import vary_on_headers
from django_htmx.http import HttpResponseClientRedirect, HttpResponseStopPolling, trigger_client_event

from .charts import axis_time, project_charts, sparkline
from .downloads import BackupUnverified
from .downloads import backup_download as backup_file_download
from .forms import ApiTokenCreateForm, ConfirmNameForm, ProjectCreateForm, ProjectRetryForm
from .keys import project_keys
from .http import DashboardRequest
from .models import ApiToken, Backup, Operation, Project
from .pgconf import SETTINGS as PG_SETTINGS
from projects.stack.images import offer
from projects.stack.spec import postgres_settings
from .selectors import backup_for_user, backup_schedule_for, project_for_user, project_kept_volume, project_never_ran, projects_for_user
from projects.services.backups import requests as backups
from projects.services.lifecycle import requests as lifecycle
from projects.services.placement import nodes as placement
from projects.services.settings import requests as reconfigure
from projects.services.upgrades import requests as upgrades
from .services.access import project_may_act
from projects.services.fleet.inspect import LogsReport, StackReport, engine_error, project_logs_report, project_stack_report
from .services.errors import EngineUnreachable, Forbidden, InvalidInput, ServiceError
from projects.services.fleet.metrics import RANGE_NAMES, activity_sparklines, metrics_series
from projects.services.accounts.tokens import api_token_create, api_token_revoke, token_lifetime_parse
from projects.services.pool.requests import pool_status_for

PAGE_SIZE = 50
OPERATIONS_SHOWN = 20
LOG_LINES = 200

LIST = "projects/project_list.html"
CREATE = "projects/project_create.html"
DETAIL = "projects/project_detail.html"
TOKENS = "projects/token_list.html"
# The HTMX event a panel answer sends when it shows the project settled: the
# project page's other sections (head, backups, logs, connection) listen for it
# with hx-trigger="settled from:body" and ask for themselves again.
SETTLED_EVENT = "settled"
# The event a settings answer sends when a change took effect without an
# operation (a rename): the head, which shows the name, asks again. The
# settings section does not listen, so its notice stays.
CHANGED_EVENT = "changed"


def login_required[**P](
    view: Callable[Concatenate[DashboardRequest, P], HttpResponseBase],
) -> Callable[Concatenate[HttpRequest, P], HttpResponseBase]:
    """Django's login_required, except that an HTMX request (a poll after the session
    expired) sends the whole page to the login form instead of swapping it into a row."""
    guarded = django_login_required(view)

    @wraps(view)
    def wrapper(request: HttpRequest, /, *args: P.args, **kwargs: P.kwargs) -> HttpResponseBase:
        # The type only: HtmxMiddleware sets htmx on every request, and Django's
        # login_required (guarded) lets only a signed-in user through to the view.
        dashboard = cast(DashboardRequest, request)
        if dashboard.htmx and not request.user.is_authenticated:
            login = redirect_to_login(dashboard.htmx.current_url_abs_path or request.get_full_path())
            return HttpResponseClientRedirect(login["Location"])
        return guarded(dashboard, *args, **kwargs)

    return wrapper


def _partial(request: DashboardRequest, template: str, partial: str) -> str:
    return f"{template}#{partial}" if request.htmx else template


def _queue[T](run: Callable[[], T]) -> T:
    """Run one service that queues engine work, once the engine answers; a refusal is raised (nothing changed)."""
    # Asked fresh (not the banner's cache): queueing work for an engine that
    # is gone would only turn the project to failed.
    if error := engine_error(max_age_s=0):
        raise EngineUnreachable(f"the Docker Engine cannot be reached. {error}")
    return run()


def _shown(refusal: ServiceError) -> tuple[HTTPStatus, str]:
    """The status and the sentence the dashboard answers a refusal with.

    The status is the error class's, as in the API, except that input the
    server will not take is 422 on every form (the API says 400).
    """
    status = HTTPStatus.UNPROCESSABLE_CONTENT if refusal.status == HTTPStatus.BAD_REQUEST else refusal.status
    return status, f"Nothing was changed: {str(refusal).rstrip('.')}."


def _attempt(run: Callable[[], object]) -> tuple[HTTPStatus, str]:
    """Run one service; (200, "") when it was queued, else the status and the sentence to show."""
    try:
        _queue(run)
    except ServiceError as refused:
        return _shown(refused)
    return HTTPStatus.OK, ""


def _visible(request: DashboardRequest, project_id: str) -> Project:
    """The project if this user may see it: their own, or any for staff. Others get the same 404 as a typo."""
    project = project_for_user(request.user, project_id)
    if project is None:
        raise Http404("No such project, or it is not yours.")
    return project


# --- projects list -------------------------------------------------------------


@login_required
@require_GET
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
    return TemplateResponse(request, _partial(request, LIST, "projects"), context)


@login_required
@require_GET
def project_row(request: DashboardRequest, project_id: str) -> HttpResponse:
    """One row of the list, polled every 2 s while its project is changing."""
    project = _visible(request, project_id)
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
            operation = _queue(lambda: lifecycle.project_create(owner=request.user, **form.cleaned_data))
        except ServiceError as refused:
            status, message = _shown(refused)
            form.add_error(refused.field if refused.field in form.fields else None, message)
        else:
            # The project page polls while the project comes up.
            url = reverse("project-detail", args=[operation.project.public_id])
            return HttpResponseClientRedirect(url) if request.htmx else redirect(url)
    elif form.errors:
        status = HTTPStatus.UNPROCESSABLE_CONTENT
    return TemplateResponse(request, _partial(request, CREATE, "form"), {"form": form}, status=status)


# --- one project -------------------------------------------------------------------


def _network_exposed() -> bool:
    """True when the published ports listen beyond this machine (BERTH_PUBLISH_HOST is not loopback)."""
    host = settings.BERTH_PUBLISH_HOST.strip("[]")
    if host == "localhost":
        return False
    try:
        return not ipaddress.ip_address(host).is_loopback
    except ValueError:
        return True  # a host name: assume it resolves to something reachable


def _psql_command(project: Project, *, reveal: bool) -> str | None:
    if project.db_port is None:
        return None
    # Without the password in the URL psql asks for it: paste-ready either way.
    url = (project.db_url(reveal=True) or "") if reveal else (
        f"postgresql://{quote(project.db_user, safe='')}@{project.public_host}:{project.db_port}"
        f"/{quote(project.db_name, safe='')}"
    )  # fmt: skip
    # TLS checked against Berth's CA (the page links /v1/ca.pem, saved as berth-ca.pem).
    return f"psql {shlex.quote(url + '?sslmode=verify-full&sslrootcert=berth-ca.pem')}"


def _curl_command(project: Project, *, anon_key: str | None) -> str | None:
    if project.api_url is None:
        return None
    # With the anon key once revealed; until then a variable the reader fills in.
    auth = f"-H {shlex.quote(f'Authorization: Bearer {anon_key}')}" if anon_key else '-H "Authorization: Bearer $ANON_KEY"'
    if project.api_flavour == Project.Api.POSTGRAPHILE:
        body = shlex.quote('{"query": "{ __typename }"}')
        return f"curl -s {auth} -H 'Content-Type: application/json' -d {body} {project.api_url}/graphql"
    return f"curl -s {auth} {project.api_url}/"


def _buttons(project: Project, *, user: User) -> frozenset[str]:
    """The actions to offer: those the status accepts and the user may take, less the ones that would change nothing."""
    if not project_may_act(user=user, project=project):
        return frozenset()  # staff see other users' projects; acting needs the permission
    actions = set(project.allowed_actions()) & set(ACTIONS)
    S, H = Project.Status, Project.Health
    # The services accept these (they converge, and start repairs a running
    # project whose containers went), but as buttons on a healthy project they
    # would only confuse.
    if project.status == S.RUNNING and project.health == H.HEALTHY:
        actions.discard("start")
    if project.status == S.STOPPED and project.health == H.DOWN:
        actions.discard("stop")
    # An upgrade needs a higher major on offer and no volume kept from the last one; the other two need that volume.
    if not _upgrade_versions(project) or project.has_kept_volume:
        actions.discard("upgrade")
    if not project.has_kept_volume:
        actions -= {"rollback_upgrade", "drop_kept_volume"}
    return frozenset(actions)


def _upgrade_versions(project: Project) -> list[str]:
    """The majors this installation offers above the project's, lowest first."""
    return sorted((v for v in offer().postgres if v.isdigit() and int(v) > int(project.postgres_version)), key=int)


def _panel_context(project: Project, *, user: User, action_error: str = "", failed_action: str = "") -> dict[str, Any]:
    """Status, actions, containers and operations: the part of the page that changes."""
    purged = project.status == Project.Status.PURGED
    # A purged project has nothing on the engine left to ask about.
    stack = StackReport() if purged else project_stack_report(project)
    # On a Swarm a volume on a node that is down cannot be seen: it waits, it is not
    # gone. The node is asked about only then, not on every render of a healthy panel.
    node_down = not purged and not stack.error and not stack.volume and placement.project_node_down(project)
    return {
        "project": project,
        "actions": _buttons(project, user=user),
        "operations": project.operations.select_related("requested_by")[:OPERATIONS_SHOWN],
        "stack": stack,
        # It ran, and its data volume is gone: start and restore refuse to make
        # an empty one unless the owner says so (the confirm below the buttons).
        "volume_gone": project.first_running_at is not None and project.is_settled and not purged and not stack.error and not stack.volume and not node_down,
        "node_down": node_down,
        "action_error": action_error,
        "failed_action": failed_action,
        "retention_days": settings.BERTH_DELETE_RETENTION_DAYS,
        # A create that failed can be retried with another version or flavour.
        "retry_form": ProjectRetryForm(project=project) if project_never_ran(project) else None,
        "upgrade_versions": _upgrade_versions(project),
        "kept_volume": project_kept_volume(project),
    }


def _connection_context(request: DashboardRequest, project: Project, *, reveal: bool = False) -> dict[str, Any]:
    is_owner = project.owner_id == request.user.pk
    reveal = reveal and is_owner  # the password and keys are the owner's alone, staff included
    keys = project_keys(project) if reveal else {"anon_key": None, "service_key": None}
    return {
        "project": project,
        "is_owner": is_owner,
        "revealed": reveal,
        "db_url": project.db_url(reveal=reveal),
        "db_password": project.db_password if reveal else None,
        **keys,
        "psql_command": _psql_command(project, reveal=reveal),
        "curl_command": _curl_command(project, anon_key=keys["anon_key"]),
        "network_exposed": _network_exposed(),
        "publish_host": settings.BERTH_PUBLISH_HOST,
    }


def _logs_context(project: Project) -> dict[str, Any]:
    if project.status == Project.Status.PURGED:
        return {"project": project, "logs": LogsReport()}
    return {"project": project, "logs": project_logs_report(project.public_id, tail=LOG_LINES)}


def _metrics_context(request: DashboardRequest, project: Project) -> dict[str, Any]:
    # A range the page does not offer shows the default: a link, not a form, brought it here.
    asked = request.GET.get("range", "")
    metrics = metrics_series(project=project, range_name=asked if asked in RANGE_NAMES else "1h")
    charts = project_charts(metrics)
    return {
        "metrics": metrics,
        "metrics_ranges": RANGE_NAMES,
        "charts": charts,
        "metrics_empty": all(chart.empty for chart in charts),
        "metrics_from": axis_time(metrics.start),
        "metrics_to": axis_time(metrics.end),
    }


def _section_answer(request: DashboardRequest, project: Project, partial: str, context: dict[str, Any], *, status: int) -> HttpResponse:
    """A project page section: its partial for HTMX; without JavaScript the whole page, the section rendered in place."""
    if request.htmx:
        return TemplateResponse(request, partial, context, status=status)
    response = _page(request, project, status=status)
    response.context_data = {**(response.context_data or {}), **context}
    return response


def _page(request: DashboardRequest, project: Project, *, status: int = 200, reveal: bool = False, **panel: Any) -> TemplateResponse:
    context = {
        **_panel_context(project, user=request.user, **panel),
        **_connection_context(request, project, reveal=reveal),
        **_metrics_context(request, project),
        **_logs_context(project),
        **_settings_context(request, project),
    }
    response = TemplateResponse(request, DETAIL, context, status=status)
    if reveal:
        response["Cache-Control"] = "no-store"  # a page with a password is not kept by the browser
    return response


@login_required
@require_GET
@vary_on_headers("HX-Request")
def project_detail(request: DashboardRequest, project_id: str) -> HttpResponse:
    project = _visible(request, project_id)
    if not request.htmx:
        return _page(request, project)
    if request.htmx.target == "connection":  # the connection section, asking again on the settled event
        return TemplateResponse(request, f"{DETAIL}#connection", _connection_context(request, project))
    if request.htmx.target == "head":  # the head, asking again on the settled or changed event
        return TemplateResponse(request, f"{DETAIL}#head", {"project": project, "is_owner": project.owner_id == request.user.pk})
    # HTMX asks for the panel only while the project is changing (it polls);
    # once settled it gets the final panel, the polling stops and the other
    # sections hear that they are out of date.
    html = render_to_string(f"{DETAIL}#panel", _panel_context(project, user=request.user), request=request)
    if not project.is_settled:
        return HttpResponse(html)
    return trigger_client_event(HttpResponseStopPolling(html), SETTLED_EVENT)


def _purge(*, project: Project, requested_by: User | None) -> Operation:
    # The person confirmed by typing the name (ConfirmNameForm); the service's
    # own guard wants the id, which the dashboard supplies once that check passed.
    return lifecycle.project_purge(project=project, confirm=project.public_id, requested_by=requested_by)


ACTIONS: dict[str, Callable[..., Operation]] = {
    "stop": lifecycle.project_stop,
    "start": lifecycle.project_start,
    "delete": lifecycle.project_delete,
    "restore": lifecycle.project_restore,
    "purge": _purge,
    "upgrade": upgrades.project_upgrade,
    "rollback_upgrade": upgrades.project_rollback_upgrade,
    "drop_kept_volume": upgrades.project_kept_volume_drop,
}
CONFIRMED_BY_NAME = {"delete", "purge", "upgrade", "rollback_upgrade", "drop_kept_volume"}
EMPTY_DATABASE_ACTIONS = {"start", "restore"}


def _confirm_error(request: DashboardRequest, project: Project) -> str:
    """Why the typed name does not confirm a delete, purge or restore; "" when it does."""
    confirm = ConfirmNameForm(request.POST, project=project)
    return "" if confirm.is_valid() else " ".join(str(message) for message in confirm.errors["confirm"])


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
    project = _visible(request, project_id)
    fields: dict[str, object] = {}
    if action in EMPTY_DATABASE_ACTIONS and request.POST.get("allow_empty_database"):
        # An empty database for a project that had data: confirmed by name, like delete.
        fields["allow_empty_database"] = True
    if (action in CONFIRMED_BY_NAME or fields) and (error := _confirm_error(request, project)):
        status = HTTPStatus.UNPROCESSABLE_CONTENT
    else:
        if action == "upgrade":
            fields["postgres_version"] = request.POST.get("postgres_version") or None
        choices: Callable[[], dict[str, str]] = lambda: _retry_choices(request, project) if action == "start" else {}  # noqa: E731
        status, error = _attempt(lambda: ACTIONS[action](project=project, requested_by=request.user, **choices(), **fields))
    project.refresh_from_db()
    if request.htmx:
        context = _panel_context(project, user=request.user, action_error=error, failed_action=action if error else "")
        response = TemplateResponse(request, f"{DETAIL}#panel", context, status=status)
        # An operation that finished before this answer (a fast engine) leaves no poll to say so.
        return trigger_client_event(response, SETTLED_EVENT) if not error and project.is_settled else response
    if error:
        return _page(request, project, status=status, action_error=error, failed_action=action)
    return redirect("project-detail", project_id=project.public_id)


@login_required
@require_POST
def project_reveal(request: DashboardRequest, project_id: str) -> HttpResponse:
    """Show the password: a POST, so it is never in a link, a prefetch or a history entry."""
    project = _visible(request, project_id)
    if project.owner_id != request.user.pk:
        raise PermissionDenied("Only the project's owner can see its password.")
    if not request.htmx:
        return _page(request, project, reveal=True)
    response = TemplateResponse(request, f"{DETAIL}#connection", _connection_context(request, project, reveal=True))
    response["Cache-Control"] = "no-store"
    return response


@login_required
@require_GET
@vary_on_headers("HX-Request")
def project_logs(request: DashboardRequest, project_id: str) -> HttpResponse:
    """The last 200 lines of each container, read when asked for."""
    project = _visible(request, project_id)
    if not request.htmx:
        return _page(request, project)
    return TemplateResponse(request, f"{DETAIL}#logs", _logs_context(project))


# --- settings (services/settings/requests.py; the section is templates/projects/_settings.html) ---

SETTINGS_SECTION = "projects/_settings.html"


def _settings_context(
    request: DashboardRequest, project: Project, *, error: str = "", notice: str = "", posted: dict[str, str] | None = None
) -> dict[str, Any]:
    """The section's form, filled with the project's values (or, after a refusal, with what was sent)."""
    allowed = project.allowed_actions()
    defaults = postgres_settings()
    values = posted or {}
    rows = [
        {
            "name": name,
            "value": values.get(f"setting_{name}", project.postgres_settings.get(name, "")),
            "default": defaults.get(name, "the server's"),
            "restart": s.restart,
            "help": s.help,
        }
        for name, s in PG_SETTINGS.items()
    ]
    return {
        "project": project,
        "may_change": project_may_act(user=request.user, project=project),
        "can_change": "reconfigure" in allowed,
        "can_restart": "restart" in allowed,
        "can_rotate": "rotate" in allowed,
        "form_values": {field: values.get(field, getattr(project, field)) for field in ("name", "db_memory", "api_memory")},
        "setting_rows": rows,
        "settings_error": error,
        "settings_notice": notice,
    }


def _settings_answer(request: DashboardRequest, project: Project, *, status: int = 200, **extra: Any) -> HttpResponse:
    return _section_answer(request, project, f"{SETTINGS_SECTION}#settings", _settings_context(request, project, **extra), status=status)


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
    project = _visible(request, project_id)
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
        project, operation = _queue(lambda: reconfigure.project_change(project=project, requested_by=request.user, **change))
    except ServiceError as exc:
        status, error = _shown(exc)
        project.refresh_from_db()
        return _settings_answer(request, project, status=status, error=error, posted=posted)
    notice = "Saved." + (" A change waits for a restart: it applies when the project next starts." if project.restart_pending else "")
    return _settings_done(request, project, operation, notice)


@login_required
@require_POST
def project_rotate(request: DashboardRequest, project_id: str) -> HttpResponse:
    project = _visible(request, project_id)
    try:
        operation = _queue(lambda: reconfigure.project_rotate(project=project, requested_by=request.user, what=request.POST.get("what")))
    except ServiceError as exc:
        status, error = _shown(exc)
        project.refresh_from_db()
        return _settings_answer(request, project, status=status, error=error)
    return _settings_done(request, project, operation, "")


# --- API tokens ----------------------------------------------------------------------


def _tokens_context(request: DashboardRequest, form: ApiTokenCreateForm, created: tuple[ApiToken, str] | None = None) -> dict[str, Any]:
    return {"form": form, "tokens": request.user.api_tokens.all(), "created": created, "now": timezone.now()}


@login_required
@require_http_methods(["GET", "POST"])
@vary_on_headers("HX-Request")
def token_list(request: DashboardRequest) -> HttpResponse:
    form = ApiTokenCreateForm(request.POST if request.method == "POST" else None)
    created = None
    if form.is_bound and form.is_valid():
        expires = form.cleaned_data["expires"]
        token, raw = api_token_create(
            user=request.user, name=form.cleaned_data["name"], read_only=form.cleaned_data["read_only"],
            lifetime=token_lifetime_parse(expires) if expires else None,
        )  # fmt: skip
        # Shown in this response only: it is stored as a hash and never again readable.
        created = (token, raw)
        form = ApiTokenCreateForm()
    status = 422 if form.errors else 200
    response = TemplateResponse(
        request, _partial(request, TOKENS, "tokens"), _tokens_context(request, form, created), status=status
    )
    if created:
        response["Cache-Control"] = "no-store"
    return response


@login_required
@require_POST
def token_revoke(request: DashboardRequest, token_id: int) -> HttpResponse:
    if not api_token_revoke(user=request.user, token_id=token_id):
        raise Http404("No such token, or it is not yours.")
    if request.htmx:
        return TemplateResponse(request, f"{TOKENS}#tokens", _tokens_context(request, ApiTokenCreateForm()))
    return redirect("token-list")


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
    allowed = project.allowed_actions() if may_act else frozenset()
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
    return _section_answer(request, project, f"{BACKUPS}#backups", _backups_context(request, project, **extra), status=status)


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
@require_GET
@vary_on_headers("HX-Request")
def project_backups(request: DashboardRequest, project_id: str) -> HttpResponse:
    """The backups section: swapped into the project page by HTMX (and polled while one runs), else the whole page."""
    return _backups_response(request, _visible(request, project_id))


@login_required
@require_POST
def project_backup_create(request: DashboardRequest, project_id: str) -> HttpResponse:
    project = _visible(request, project_id)
    status, error = _attempt(lambda: backups.project_backup(project=project, requested_by=request.user))
    notice = "Backup queued: it is dumped, then restored into a throwaway database and checked."
    return _backup_answer(request, project, status, error, notice=notice)


@login_required
@require_POST
def backup_verify(request: DashboardRequest, backup_id: str) -> HttpResponse:
    backup = _backup_visible(request, backup_id)
    status, error = _attempt(lambda: backups.backup_verify(backup=backup, requested_by=request.user))
    return _backup_answer(request, backup.project, status, error, notice=f"Verification of backup {backup.public_id} queued.")


@login_required
@require_POST
def backup_restore(request: DashboardRequest, backup_id: str) -> HttpResponse:
    backup = _backup_visible(request, backup_id)
    project = backup.project
    if error := _confirm_error(request, project):
        status = HTTPStatus.UNPROCESSABLE_CONTENT
    else:
        # The person typed the name; the service's own guard wants the id.
        restore = lambda: backups.project_restore_backup(backup=backup, confirm=project.public_id, requested_by=request.user)  # noqa: E731
        status, error = _attempt(restore)
    notice = f"Restore of backup {backup.public_id} queued: a safety backup first, then the database is replaced."
    return _backup_answer(request, project, status, error, failed=backup.public_id if error else "", notice=notice)


@login_required
@require_GET
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
    project = _visible(request, project_id)
    try:
        hour, keep = int(request.POST.get("hour", "")), int(request.POST.get("keep", ""))
        backups.backup_schedule_set(project=project, hour=hour, keep=keep, enabled=request.POST.get("enabled") == "on", requested_by=request.user)
    except ValueError:
        status, error = HTTPStatus.UNPROCESSABLE_CONTENT, "The hour and the number of backups to keep must be whole numbers."
    except ServiceError as exc:
        status, error = _shown(exc)
    else:
        status, error = HTTPStatus.OK, ""
    return _backup_answer(request, project, status, error, notice="Schedule saved.")


# --- nodes and drift (staff) ---------------------------------------------------------


@login_required
@require_GET
def nodes(request: DashboardRequest) -> HttpResponse:
    """On a Swarm: each node's state, projects and free memory (what placement reads)."""
    if not request.user.is_staff:
        raise PermissionDenied("The nodes are for operators.")
    return TemplateResponse(request, "projects/nodes.html", {"overview": placement.nodes_overview()})


@login_required
@require_POST
def node_forget(request: DashboardRequest, name: str) -> HttpResponse:
    """Give up on a down node, confirmed by its name: its projects can then be purged without it."""
    if not request.user.is_staff:
        raise PermissionDenied("The nodes are for operators.")
    try:
        forgotten = placement.node_forget(name=name, confirm=request.POST.get("confirm"), requested_by=request.user)
    except ServiceError as refused:
        status, error = _shown(refused)
        context = {"overview": placement.nodes_overview(), "forget_error": error, "forget_node": name}
        return TemplateResponse(request, "projects/nodes.html", context, status=status)
    messages.success(
        request,
        f"Node {forgotten.node} is forgotten: its {len(forgotten.projects)} project(s) can be purged without it "
        f"(their volumes stay on the node). Seen ready again, it is no longer forgotten.",
    )
    return redirect("nodes")


@login_required
@require_GET
def drift(request: DashboardRequest) -> HttpResponse:
    """What the engine runs against what Berth recorded, each mismatch with its fix; changes nothing."""
    from projects.services.fleet.drift import drift_report

    if not request.user.is_staff:
        raise PermissionDenied("The drift report is for operators.")
    return TemplateResponse(request, "projects/drift.html", {"report": drift_report()})
