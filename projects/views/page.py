"""A project's page, put together: its panels (state, connection, metrics, logs, settings), the actions its buttons queue, and a section answered alone for HTMX or in place on the whole page without JavaScript."""

import ipaddress
import shlex
from collections.abc import Callable
from datetime import timedelta
from typing import Any
from urllib.parse import quote

from django.conf import settings
from django.contrib.auth.models import User
from django.http import HttpResponse
from django.template.response import TemplateResponse
from django.utils import timezone

from projects.charts import axis_time, project_charts
from projects.forms import ProjectRetryForm
from projects.http import DashboardRequest
from projects.keys import project_keys
from projects.models import Operation, Project
from projects.pgconf import SETTINGS as PG_SETTINGS
from projects.selectors import (
    project_kept_volume,
    project_never_ran,
)
from projects.services.access import project_may_act
from projects.services.fleet.inspect import LogsReport, StackReport, project_logs_report, project_stack_report
from projects.services.fleet.metrics import RANGE_NAMES, metrics_series
from projects.services.lifecycle import requests as lifecycle
from projects.services.operations.kinds import allowed_actions
from projects.services.placement import nodes as placement
from projects.services.upgrades import requests as upgrades
from projects.stack.changes import stack_changes_between
from projects.stack.images import offer
from projects.stack.spec import postgres_settings
from projects.views.common import DETAIL, LOG_LINES, OPERATIONS_SHOWN


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
    actions = set(allowed_actions(project)) & set(ACTIONS)
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


# How long the page says what a start changed in the project's stack.
STACK_CHANGES_SAID_FOR = timedelta(days=14)


def _stack_changes(project: Project, *, purged: bool) -> dict[str, list[str]]:
    """What the project's next start will change in its stack, and what its last one did (stack/changes.py)."""
    ran = project.first_running_at is not None and not purged
    coming = stack_changes_between(project.stack_revision) if ran else []
    recent = project.stack_revised_at is not None and timezone.now() - project.stack_revised_at < STACK_CHANGES_SAID_FOR
    made = stack_changes_between(project.stack_revised_from or 0, project.stack_revision) if ran and recent else []
    return {"stack_changes_coming": coming, "stack_changes_made": made}


def panel_context(project: Project, *, user: User, action_error: str = "", failed_action: str = "") -> dict[str, Any]:
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
        # What the bootstrap's heal repaired (services/operations/tenant_safety.py): said until the project is gone.
        "security_events": project.security_events.select_related("operation")[:OPERATIONS_SHOWN],
        **_stack_changes(project, purged=purged),
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


def connection_context(request: DashboardRequest, project: Project, *, reveal: bool = False) -> dict[str, Any]:
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


def logs_context(project: Project) -> dict[str, Any]:
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


def section_answer(request: DashboardRequest, project: Project, partial: str, context: dict[str, Any], *, status: int) -> HttpResponse:
    """A project page section: its partial for HTMX; without JavaScript the whole page, the section rendered in place."""
    if request.htmx:
        return TemplateResponse(request, partial, context, status=status)
    response = project_page(request, project, status=status)
    response.context_data = {**(response.context_data or {}), **context}
    return response


def project_page(request: DashboardRequest, project: Project, *, status: int = 200, reveal: bool = False, **panel: Any) -> TemplateResponse:
    context = {
        **panel_context(project, user=request.user, **panel),
        **connection_context(request, project, reveal=reveal),
        **_metrics_context(request, project),
        **logs_context(project),
        **settings_context(request, project),
    }
    response = TemplateResponse(request, DETAIL, context, status=status)
    if reveal:
        response["Cache-Control"] = "no-store"  # a page with a password is not kept by the browser
    return response


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
# --- settings (services/settings/requests.py; the section is templates/projects/_settings.html) ---

SETTINGS_SECTION = "projects/_settings.html"


def settings_context(
    request: DashboardRequest, project: Project, *, error: str = "", notice: str = "", posted: dict[str, str] | None = None
) -> dict[str, Any]:
    """The section's form, filled with the project's values (or, after a refusal, with what was sent)."""
    allowed = allowed_actions(project)
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
