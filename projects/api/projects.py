"""JSON API v1: projects and operations. Thin views over the services.

Every answer is JSON; every error is {"error": {"code", "message"}} with the
status the README's API table gives, rendered by api_common.token_required
from the refusal a view or a service raises.
"""

from collections.abc import Callable
from typing import Any

from django.db.models import QuerySet
from django.http import HttpResponse, JsonResponse

from projects.api.common import (
    LIST_LIMIT_DEFAULT,
    LIST_LIMIT_MAX,
    OFFSET_MAX,
    OPERATIONS_LISTED,
    error,
    json_body,
    methods,
    operation_json,
    operation_visible,
    project_json,
    project_visible,
    query_flag,
    query_int,
    settled,
    time_json,
    token_required,
    wait_seconds,
)
from projects.http import AuthedRequest
from projects.models import Operation, Project
from projects.services.settings.certificates import ca_get
from projects.selectors import backup_for_user, projects_for_user
from projects.services.lifecycle import requests as lifecycle
from projects.services.placement import nodes as placement
from projects.services.settings import requests as reconfigure
from projects.services.upgrades import requests as upgrades
from projects.services.errors import InvalidInput
from projects.services.pool.requests import pool_status_for
from projects.services.fleet.metrics import metrics_series, range_check


def _string_field(body: dict[str, Any], name: str) -> str | None:
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool) and name == "postgres_version":
        return str(value)
    if not isinstance(value, str):
        raise InvalidInput(name, "must be a string")
    return value


def _bool_field(body: dict[str, Any], name: str) -> bool | None:
    value = body.get(name)
    if value is not None and not isinstance(value, bool):
        raise InvalidInput(name, "must be true or false")
    return value


def _answer(request: AuthedRequest, operation: Operation, *, created: bool = False) -> JsonResponse:
    """202 with the transitional state, or — with ?wait=N — the settled project when it settles in time."""
    operation, final = settled(request, operation)
    status = (201 if created else 200) if final else 202
    return JsonResponse(project_json(operation.project, viewer=request.user, operation=operation), status=status)


@token_required
@methods("GET", "POST")
def projects_collection(request: AuthedRequest) -> JsonResponse:
    if request.method == "GET":
        limit = query_int(request, "limit", default=LIST_LIMIT_DEFAULT, low=1, high=LIST_LIMIT_MAX)
        offset = query_int(request, "offset", default=0, low=0, high=OFFSET_MAX)
        projects: QuerySet[Project] = projects_for_user(request.user, include_deleted=query_flag(request, "include_deleted"))
        # One row more than the page tells whether there is a next one, without a COUNT.
        page = list(projects[offset : offset + limit + 1])
        following = None
        if len(page) > limit:
            page = page[:limit]
            query = request.GET.copy()
            query["offset"], query["limit"] = str(offset + limit), str(limit)
            # Absolute, so a client follows it as it is (behind a TLS proxy too: SECURE_PROXY_SSL_HEADER).
            following = request.build_absolute_uri(f"{request.path}?{query.urlencode()}")
        return JsonResponse({"projects": [project_json(p, viewer=request.user) for p in page], "next": following})
    wait_seconds(request)  # refuse a bad ?wait before anything is reserved
    body = json_body(request)
    unknown = set(body) - {"name", "postgres_version", "api", "from_backup"}
    if unknown:
        raise InvalidInput(sorted(unknown)[0], "is not a field of a project (name, postgres_version, api, from_backup)")
    from_backup = None
    if (backup_id := _string_field(body, "from_backup")) is not None:
        # A clone copies every row: only from the requester's own projects' backups.
        from_backup = backup_for_user(request.user, backup_id)
        if from_backup is None or from_backup.project.owner_id != request.user.pk:
            raise InvalidInput("from_backup", f"no backup {backup_id!r} of a project of yours")
    operation = lifecycle.project_create(
        owner=request.user,
        name=_string_field(body, "name"),
        postgres_version=_string_field(body, "postgres_version"),
        api=_string_field(body, "api"),
        from_backup=from_backup,
    )
    return _answer(request, operation, created=True)


# What PATCH /v1/projects/{id} may change (services/settings/requests.py checks each value).
CHANGE_FIELDS = ("name", "db_memory", "api_memory", "postgres_settings", "restart")


@token_required
@methods("GET", "PATCH", "DELETE")
def project_detail(request: AuthedRequest, project_id: str) -> JsonResponse:
    project = project_visible(request, project_id)
    if request.method == "GET":
        return JsonResponse(project_json(project, viewer=request.user))
    wait_seconds(request)
    if request.method == "PATCH":
        body = json_body(request)
        if unknown := set(body) - set(CHANGE_FIELDS):
            raise InvalidInput(sorted(unknown)[0], f"is not a field a project change takes ({', '.join(CHANGE_FIELDS)})")
        restart = _bool_field(body, "restart")
        project, operation = reconfigure.project_change(
            project=project, requested_by=request.user, name=body.get("name"), db_memory=body.get("db_memory"),
            api_memory=body.get("api_memory"), postgres_settings=body.get("postgres_settings"), restart=bool(restart),
        )  # fmt: skip
        if operation is None:
            return JsonResponse(project_json(project, viewer=request.user))
        operation, final = settled(request, operation)
        return JsonResponse(project_json(operation.project, viewer=request.user, operation=operation), status=200 if final else 202)
    return _answer(request, lifecycle.project_delete(project=project, requested_by=request.user))


@token_required
@methods("POST")
def project_rotate(request: AuthedRequest, project_id: str) -> JsonResponse:
    """A new db password or new keys; the answer (the owner's) carries the new db_url or keys."""
    project = project_visible(request, project_id)
    wait_seconds(request)
    body = json_body(request)
    if unknown := set(body) - {"what"}:
        raise InvalidInput(sorted(unknown)[0], "is not a field of rotate (what)")
    return _answer(request, reconfigure.project_rotate(project=project, requested_by=request.user, what=body.get("what")))


ACTIONS: dict[str, Callable[..., Operation]] = {
    "stop": lifecycle.project_stop,
    "start": lifecycle.project_start,
    "restore": lifecycle.project_restore,
    "upgrade": upgrades.project_upgrade,
    "rollback-upgrade": upgrades.project_rollback_upgrade,
}
# The fields an action's body may carry, each with its parser; the service gets
# the ones sent as keyword arguments. Start retries a failed create with other
# choices; allow_empty_database: a project whose data volume is gone comes up
# on a new, empty one (the owner's choice).
ACTION_FIELDS: dict[str, dict[str, Callable[[dict[str, Any], str], object]]] = {
    "start": {"postgres_version": _string_field, "api": _string_field, "allow_empty_database": _bool_field},
    "restore": {"allow_empty_database": _bool_field},
    "upgrade": {"postgres_version": _string_field},
    "rollback-upgrade": {},
}


def _action_fields(action: str, body: dict[str, Any]) -> dict[str, object]:
    parsers = ACTION_FIELDS.get(action)
    if parsers is None:
        return {}  # the other actions take no fields and ignore a body, as before
    if unknown := set(body) - set(parsers):
        raise InvalidInput(sorted(unknown)[0], f"is not a field of {action} ({', '.join(parsers) or 'it takes none'})")
    fields = {name: value for name, parse in parsers.items() if (value := parse(body, name)) is not None}
    if action == "upgrade":
        fields.setdefault("postgres_version", None)  # required: the service says so
    return fields


@token_required
@methods("POST")
def project_action(request: AuthedRequest, project_id: str, action: str) -> JsonResponse:
    project = project_visible(request, project_id)
    wait_seconds(request)
    body = json_body(request)
    if action == "purge":
        confirm = body.get("confirm")
        operation = lifecycle.project_purge(project=project, confirm=confirm if isinstance(confirm, str) else None, requested_by=request.user)
    elif action == "move":
        node = _string_field(body, "node")
        if not node:
            raise InvalidInput("node", "the node to move the project to is required")
        operation = placement.project_move(project=project, node=node, requested_by=request.user)
    else:
        operation = ACTIONS[action](project=project, requested_by=request.user, **_action_fields(action, body))
    return _answer(request, operation)


@token_required
@methods("DELETE")
def project_kept_volume(request: AuthedRequest, project_id: str) -> JsonResponse:
    """Drop the volume an upgrade kept for a rollback."""
    project = project_visible(request, project_id)
    wait_seconds(request)
    return _answer(request, upgrades.project_kept_volume_drop(project=project, requested_by=request.user))


@token_required
@methods("GET")
def project_operations(request: AuthedRequest, project_id: str) -> JsonResponse:
    project = project_visible(request, project_id)
    operations = project.operations.select_related("requested_by")[:OPERATIONS_LISTED]
    for op in operations:
        op.project = project
    return JsonResponse({"operations": [operation_json(op) for op in operations]})


@token_required
@methods("GET")
def project_metrics(request: AuthedRequest, project_id: str) -> JsonResponse:
    project = project_visible(request, project_id)
    found = metrics_series(project=project, range_name=range_check(request.GET.get("range")))
    return JsonResponse({"range": found.range, "step_seconds": found.step_seconds, "series": found.series})


@token_required
@methods("GET")
def operation_detail(request: AuthedRequest, operation_id: str) -> JsonResponse:
    return JsonResponse(operation_json(operation_visible(request, operation_id)))


@token_required
@methods("GET")
def pool(request: AuthedRequest) -> JsonResponse:
    """The warm pool, for staff: each version and flavour's target, ready stacks and stacks being filled."""
    pools = pool_status_for(user=request.user)
    return JsonResponse({"pools": [{"postgres_version": p.postgres_version, "api": p.api, "target": p.target, "ready": p.ready, "filling": p.filling} for p in pools]})


@token_required
@methods("POST")
def node_forget(request: AuthedRequest, name: str) -> JsonResponse:
    """Staff, on a Swarm: give up on a down node (`confirm` repeats its name), so its projects can be purged without it."""
    confirm = json_body(request).get("confirm")
    forgotten = placement.node_forget(name=name, confirm=confirm if isinstance(confirm, str) else None, requested_by=request.user)
    return JsonResponse({"node": forgotten.node, "forgotten_at": time_json(forgotten.forgotten_at), "projects": forgotten.projects})


@token_required
def not_found(request: AuthedRequest, path: str = "") -> JsonResponse:
    return error(404, "not_found", f"no such endpoint: /v1/{path}")


@methods("GET")
def ca_pem(request: AuthedRequest) -> HttpResponse:
    """Berth's CA certificate, for clients' sslmode=verify-full (made on first use)."""
    return HttpResponse(ca_get().cert_pem, content_type="application/x-pem-file")
