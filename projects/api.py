"""JSON API v1: token-authenticated, thin views over the services.

Every answer is JSON; every error is {"error": {"code", "message"}} with the
status the README's API table gives.
"""

import json
from collections.abc import Callable
from datetime import timedelta
from functools import wraps

from django.db.models import QuerySet
from django.http import HttpRequest, JsonResponse
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt

from .models import ApiToken, Operation, Project, is_public_id, token_hash
from .selectors import backup_for_user, project_for_user, projects_for_user
from .services import lifecycle
from .services.errors import InvalidInput, InvalidTransition, OperationInFlight, PortsExhausted, ServiceError
from .services.operations import operation_wait

WAIT_MAX_S = 120
# A list answer is bounded: a page of projects, and `next` for the following one.
LIST_LIMIT_DEFAULT = 100
LIST_LIMIT_MAX = 1000
LAST_USED_RESOLUTION = timedelta(minutes=1)


def error(status: int, code: str, message: str, **extra) -> JsonResponse:
    return JsonResponse({"error": {"code": code, "message": message, **extra}}, status=status)


def token_required(view: Callable) -> Callable:
    """Bearer-token authentication; the only way into /v1 (no sessions, so no CSRF)."""

    @csrf_exempt
    @wraps(view)
    def wrapper(request: HttpRequest, *args, **kwargs) -> JsonResponse:
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return error(401, "unauthenticated", "send an API token as 'Authorization: Bearer <token>'")
        api_token = ApiToken.objects.select_related("user").filter(key_hash=token_hash(token.strip())).first()
        if api_token is None or not api_token.user.is_active:
            return error(401, "unauthenticated", "the API token is not valid (revoked or mistyped)")
        now = timezone.now()
        if api_token.last_used_at is None or now - api_token.last_used_at > LAST_USED_RESOLUTION:
            ApiToken.objects.filter(pk=api_token.pk).update(last_used_at=now)
        request.user = api_token.user
        return view(request, *args, **kwargs)

    return wrapper


def methods(*allowed: str) -> Callable:
    def decorator(view: Callable) -> Callable:
        @wraps(view)
        def wrapper(request: HttpRequest, *args, **kwargs) -> JsonResponse:
            if request.method not in allowed:
                response = error(405, "method_not_allowed", f"{request.method} is not allowed here; use {', '.join(allowed)}")
                response["Allow"] = ", ".join(allowed)
                return response
            return view(request, *args, **kwargs)

        return wrapper

    return decorator


# --- rendering ----------------------------------------------------------------


def _time(value) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value else None


def operation_json(op: Operation) -> dict:
    return {
        "operation_id": op.public_id,
        "project_id": op.project.public_id,
        "kind": op.kind,
        "state": op.state,
        "requested_by": op.requested_by.username if op.requested_by else None,
        "created_at": _time(op.created_at),
        "started_at": _time(op.started_at),
        "finished_at": _time(op.finished_at),
        "error": op.error or None,
    }


def project_json(project: Project, *, viewer, operation: Operation | None = None) -> dict:
    data = {
        "project_id": project.public_id,
        "name": project.name,
        "owner": project.owner.username,
        "status": project.status,
        "health": project.health,
        "observed_at": _time(project.observed_at),
        "postgres_version": project.postgres_version,
        "api": project.api_flavour,
        "api_url": project.api_url,
        # The password is the owner's alone; staff see the URL with it masked.
        "db_url": project.db_url(reveal=viewer.pk == project.owner_id),
        "created_at": _time(project.created_at),
        "deleted_at": _time(project.deleted_at),
        "purge_after": _time(project.purge_after),
    }
    if operation is not None:
        data["operation"] = operation_json(operation)
    return data


# --- input ------------------------------------------------------------------------


def _body(request: HttpRequest) -> dict:
    if not request.body.strip():
        return {}
    try:
        body = json.loads(request.body)
    except (ValueError, UnicodeDecodeError):
        raise InvalidInput("body", "is not valid JSON") from None
    if not isinstance(body, dict):
        raise InvalidInput("body", "must be a JSON object")
    _refuse_nul(body, "body")
    return body


def _refuse_nul(value, where: str) -> None:
    """No NUL character anywhere: PostgreSQL cannot store one, and no field of ours needs one."""
    if isinstance(value, str) and "\x00" in value:
        raise InvalidInput(where, "must not contain NUL (\\u0000) characters")
    if isinstance(value, dict):
        for key, item in value.items():
            _refuse_nul(key, where)
            _refuse_nul(item, key if where == "body" else where)
    elif isinstance(value, list):
        for item in value:
            _refuse_nul(item, where)


def _bounded_int(request: HttpRequest, name: str, *, default: int, low: int, high: int) -> int:
    raw = request.GET.get(name)
    if raw is None:
        return default
    if not raw.isdigit() or not low <= int(raw) <= high:
        raise InvalidInput(name, f"must be a whole number from {low} to {high}")
    return int(raw)


def _wait_seconds(request: HttpRequest) -> int:
    raw = request.GET.get("wait")
    if raw is None:
        return 0
    if not raw.isdigit() or int(raw) > WAIT_MAX_S:
        raise InvalidInput("wait", f"must be a whole number of seconds from 0 to {WAIT_MAX_S}")
    return int(raw)


def _string_field(body: dict, name: str) -> str | None:
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool) and name == "postgres_version":
        return str(value)
    if not isinstance(value, str):
        raise InvalidInput(name, "must be a string")
    return value


def service_error(exc: ServiceError) -> JsonResponse:
    if isinstance(exc, InvalidInput):
        return error(400, exc.code, str(exc), field=exc.field)
    if isinstance(exc, OperationInFlight):
        return error(409, exc.code, str(exc), operation=operation_json(exc.operation))
    if isinstance(exc, InvalidTransition):
        return error(409, exc.code, str(exc))
    if isinstance(exc, PortsExhausted):
        return error(503, exc.code, str(exc))
    return error(400, exc.code, str(exc))


def _settled(request: HttpRequest, operation: Operation) -> tuple[Operation, bool]:
    """The operation after ?wait=N (fresh from the database), and whether the answer is final."""
    wait = _wait_seconds(request)
    if wait:
        operation = operation_wait(operation, timeout_s=wait)
    operation = Operation.objects.select_related("project__owner", "requested_by", "backup__project").get(pk=operation.pk)
    return operation, bool(wait) and operation.is_settled


def _answer(request: HttpRequest, operation: Operation, *, created: bool = False) -> JsonResponse:
    """202 with the transitional state, or — with ?wait=N — the settled project when it settles in time."""
    operation, final = _settled(request, operation)
    status = (201 if created else 200) if final else 202
    return JsonResponse(project_json(operation.project, viewer=request.user, operation=operation), status=status)


def _visible(request: HttpRequest, project_id: str) -> Project | JsonResponse:
    project = project_for_user(request.user, project_id)
    if project is None:
        return error(404, "not_found", f"no project {project_id!r} (or it is not yours)")
    return project


# --- views ----------------------------------------------------------------------------


@token_required
@methods("GET", "POST")
def projects_collection(request: HttpRequest) -> JsonResponse:
    if request.method == "GET":
        include_deleted = request.GET.get("include_deleted") in {"1", "true", "yes"}
        try:
            limit = _bounded_int(request, "limit", default=LIST_LIMIT_DEFAULT, low=1, high=LIST_LIMIT_MAX)
            offset = _bounded_int(request, "offset", default=0, low=0, high=10**9)
        except ServiceError as exc:
            return service_error(exc)
        projects: QuerySet[Project] = projects_for_user(request.user, include_deleted=include_deleted)
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
    try:
        _wait_seconds(request)  # refuse a bad ?wait before anything is reserved
        body = _body(request)
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
    except ServiceError as exc:
        return service_error(exc)
    return _answer(request, operation, created=True)


@token_required
@methods("GET", "DELETE")
def project_detail(request: HttpRequest, project_id: str) -> JsonResponse:
    project = _visible(request, project_id)
    if isinstance(project, JsonResponse):
        return project
    if request.method == "GET":
        return JsonResponse(project_json(project, viewer=request.user))
    try:
        _wait_seconds(request)
        operation = lifecycle.project_delete(project=project, requested_by=request.user)
    except ServiceError as exc:
        return service_error(exc)
    return _answer(request, operation)


ACTIONS = {
    "stop": lifecycle.project_stop,
    "start": lifecycle.project_start,
    "restore": lifecycle.project_restore,
}


@token_required
@methods("POST")
def project_action(request: HttpRequest, project_id: str, action: str) -> JsonResponse:
    project = _visible(request, project_id)
    if isinstance(project, JsonResponse):
        return project
    try:
        _wait_seconds(request)
        body = _body(request)
        if action == "purge":
            confirm = body.get("confirm")
            operation = lifecycle.project_purge(
                project=project, confirm=confirm if isinstance(confirm, str) else None, requested_by=request.user
            )
        else:
            operation = ACTIONS[action](project=project, requested_by=request.user)
    except ServiceError as exc:
        return service_error(exc)
    return _answer(request, operation)


@token_required
@methods("GET")
def project_operations(request: HttpRequest, project_id: str) -> JsonResponse:
    project = _visible(request, project_id)
    if isinstance(project, JsonResponse):
        return project
    operations = project.operations.select_related("requested_by")[:100]
    for op in operations:
        op.project = project
    return JsonResponse({"operations": [operation_json(op) for op in operations]})


@token_required
@methods("GET")
def operation_detail(request: HttpRequest, operation_id: str) -> JsonResponse:
    operation = None
    if is_public_id(operation_id):
        operation = Operation.objects.select_related("project", "requested_by").filter(public_id=operation_id).first()
    if operation is None or project_for_user(request.user, operation.project.public_id) is None:
        return error(404, "not_found", f"no operation {operation_id!r} (or it is not yours)")
    return JsonResponse(operation_json(operation))


@token_required
def not_found(request: HttpRequest, path: str = "") -> JsonResponse:
    return error(404, "not_found", f"no such endpoint: /v1/{path}")
