"""What every /v1 view shares: the token wrapper, input parsing, look-ups, and JSON answers.

A view raises a ServiceError (services/errors.py) to refuse; `token_required`
renders it once, with the status and code the error class carries, as
{"error": {"code", "message", "field"?, "operation"?}}. No view builds an
error answer itself, and none checks whether a helper returned a response.
"""

import json
from collections.abc import Callable
from datetime import datetime, timedelta
from functools import wraps
from typing import Any, Concatenate, cast

from django.conf import settings
from django.core.exceptions import RequestDataTooBig, TooManyFieldsSent
from django.http import HttpRequest, JsonResponse
from django.http.response import HttpResponseBase
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt

from projects.crypto import token_hash
from projects.http import ApiRequest, AuthedRequest
from projects.keys import project_keys
from projects.models import ApiToken, Backup, Operation, Project, is_public_id
from projects.selectors import backup_for_user, project_for_user, project_kept_volume
from projects.services.accounts.tokens import READ_METHODS
from projects.services.errors import BodyTooLarge, InvalidInput, NotFound, ServiceError
from projects.services.operations.queue import operation_wait
from projects.services.waiting import wait_slot

WAIT_MAX_S = 120
# A list answer is bounded: a page of projects, and `next` for the following one.
LIST_LIMIT_DEFAULT = 100
LIST_LIMIT_MAX = 1000
OFFSET_MAX = 10**9
OPERATIONS_LISTED = 100
# No field of ours nests: a deeper body is refused before anything walks it.
BODY_DEPTH_MAX = 32
LAST_USED_RESOLUTION = timedelta(minutes=1)

# A /v1 view, as token_required calls it: the signed-in request, then the URL's arguments.
type ApiView[**P] = Callable[Concatenate[ApiRequest, P], HttpResponseBase]


# --- answers ---------------------------------------------------------------------


def error(status: int, code: str, message: str, **extra: Any) -> JsonResponse:
    return JsonResponse({"error": {"code": code, "message": message, **extra}}, status=status)


def refusal(exc: ServiceError) -> JsonResponse:
    """The one rendering of a service's refusal: its class says the status and the code."""
    extra: dict[str, Any] = exc.details()
    if exc.field is not None:
        extra["field"] = exc.field
    if exc.operation is not None:
        extra["operation"] = operation_json(exc.operation)
    return error(exc.status, exc.code, str(exc), **extra)


def time_json(value: datetime | None) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value else None


def operation_json(op: Operation) -> dict[str, Any]:
    return {
        "operation_id": op.public_id,
        "project_id": op.project.public_id,
        "kind": op.kind,
        "state": op.state,
        "requested_by": op.requested_by.username if op.requested_by else None,
        "created_at": time_json(op.created_at),
        "started_at": time_json(op.started_at),
        "finished_at": time_json(op.finished_at),
        "error": op.error or None,
    }


def kept_volume_json(project: Project) -> dict[str, Any] | None:
    """The volume an upgrade kept for a rollback, or None."""
    name = project_kept_volume(project)
    if name is None:
        return None
    return {"name": name, "postgres_version": project.kept_postgres_version, "kept_at": time_json(project.kept_at)}


def secrets_shown(request: ApiRequest, project: Project) -> bool:
    """The project's password and keys: its owner's alone, and only over a full token.

    A read-only token (a CI job's, a dashboard's scraper) reads everything else:
    if it leaks, it must not hand out the database. Revealing them needs a full
    token, or the dashboard's session (its Reveal button).
    """
    return request.user.pk == project.owner_id and not request.api_token.read_only


def project_json(project: Project, *, request: ApiRequest, operation: Operation | None = None) -> dict[str, Any]:
    reveal = secrets_shown(request, project)
    data: dict[str, Any] = {
        "project_id": project.public_id,
        "name": project.name,
        "owner": project.owner.username if project.owner else "",  # "": a pool stack, never shown to a user
        "status": project.status,
        "health": project.health,
        "observed_at": time_json(project.observed_at),
        "postgres_version": project.postgres_version,
        "api": project.api_flavour,
        "node": project.node or None,
        "api_url": project.api_url,
        # Masked (and no keys) for staff looking at another's project, and for a read-only token.
        "db_url": project.db_url(reveal=reveal),
        **(project_keys(project) if reveal else {"anon_key": None, "service_key": None}),
        "owner_superuser": project.owner_is_superuser,
        "kept_volume": kept_volume_json(project),
        "db_memory": project.db_memory,
        "api_memory": project.api_memory,
        # The project's own settings (pgconf's allowlist) over Berth's defaults.
        "postgres_settings": dict(project.postgres_settings),
        "pending_restart": project.restart_pending,
        # Every database on its server the tenant may use, as the last metrics pass saw them.
        "databases": [{"name": str(d["name"]), "size_bytes": int(d["size_bytes"])} for d in project.databases],
        "created_at": time_json(project.created_at),
        "deleted_at": time_json(project.deleted_at),
        "purge_after": time_json(project.purge_after),
    }
    if operation is not None:
        data["operation"] = operation_json(operation)
    return data


# --- wrappers --------------------------------------------------------------------


def token_required[**P](view: ApiView[P]) -> Callable[Concatenate[HttpRequest, P], HttpResponseBase]:
    """Bearer-token authentication, the only way into /v1 (no sessions, so no CSRF); renders raised refusals."""

    @csrf_exempt
    @wraps(view)
    def wrapper(request: HttpRequest, /, *args: P.args, **kwargs: P.kwargs) -> HttpResponseBase:
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return error(401, "unauthenticated", "send an API token as 'Authorization: Bearer <token>'")
        api_token = ApiToken.objects.select_related("user").filter(key_hash=token_hash(token.strip())).first()
        if api_token is None or not api_token.user.is_active:
            return error(401, "unauthenticated", "the API token is not valid (revoked or mistyped)")
        now = timezone.now()
        if api_token.is_expired(now):
            return error(401, "unauthenticated", f"the API token expired at {time_json(api_token.expires_at)}: create a new one")
        if api_token.read_only and request.method not in READ_METHODS:
            return error(403, "read_only_token", f"this API token is read-only: {request.method} changes things; use a token without --read-only")
        if api_token.last_used_at is None or now - api_token.last_used_at > LAST_USED_RESOLUTION:
            ApiToken.objects.filter(pk=api_token.pk).update(last_used_at=now)
        authed = cast(ApiRequest, request)  # the type only: its user and token are set next
        authed.user, authed.api_token = api_token.user, api_token
        try:
            _query_parsed(authed)
            return view(authed, *args, **kwargs)
        except ServiceError as exc:
            return refusal(exc)

    return wrapper


def methods[**P](*allowed: str) -> Callable[[ApiView[P]], ApiView[P]]:
    def decorator(view: ApiView[P]) -> ApiView[P]:
        @wraps(view)
        def wrapper(request: ApiRequest, /, *args: P.args, **kwargs: P.kwargs) -> HttpResponseBase:
            if request.method == "HEAD" and "GET" in allowed:
                # GET without the body: the view answers it as GET (views branch on
                # the method), controlplane.head drops the body on the way out.
                request.method = "GET"
                try:
                    return view(request, *args, **kwargs)
                finally:
                    request.method = "HEAD"
            if request.method not in allowed:
                accepted = [*allowed, "HEAD"] if "GET" in allowed else list(allowed)
                response = error(405, "method_not_allowed", f"{request.method} is not allowed here; use {', '.join(accepted)}")
                response["Allow"] = ", ".join(accepted)
                return response
            return view(request, *args, **kwargs)

        return wrapper

    return decorator


# --- input -----------------------------------------------------------------------


def _query_parsed(request: HttpRequest) -> None:
    # Parsed here, once, so that a query Django refuses is our JSON 400, not its HTML page.
    try:
        request.GET
    except TooManyFieldsSent:
        raise InvalidInput("query", f"has more than {settings.DATA_UPLOAD_MAX_NUMBER_FIELDS} parameters") from None


def json_body(request: HttpRequest) -> dict[str, Any]:
    """The request's JSON object ({} for an empty body); InvalidInput naming what is wrong with it."""
    try:
        raw = request.body
    except RequestDataTooBig:
        raise BodyTooLarge("body", f"is larger than {settings.DATA_UPLOAD_MAX_MEMORY_SIZE} bytes") from None
    return body_parse(raw)


def body_parse(raw: bytes) -> dict[str, Any]:
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw)
    except RecursionError:
        # The decoder recurses per level: 100,000 brackets exhaust the stack before they are JSON.
        raise InvalidInput("body", f"is nested deeper than {BODY_DEPTH_MAX} levels") from None
    except (ValueError, UnicodeDecodeError):
        raise InvalidInput("body", "is not valid JSON") from None
    if not isinstance(body, dict):
        raise InvalidInput("body", "must be a JSON object")
    _refuse_unstorable(body)
    return body


def _refuse_unstorable(body: dict[str, Any]) -> None:
    """Every string (keys too) storable as UTF-8 without NUL, and no deep nesting; walked without recursion."""
    pending: list[tuple[object, str, int]] = [(body, "body", 1)]
    while pending:
        value, where, depth = pending.pop()
        if depth > BODY_DEPTH_MAX:
            raise InvalidInput("body", f"is nested deeper than {BODY_DEPTH_MAX} levels")
        if isinstance(value, str):
            _refuse_text(value, where)
        elif isinstance(value, dict):
            for key, item in value.items():
                _refuse_text(key, where)
                pending.append((item, key if where == "body" else where, depth + 1))
        elif isinstance(value, list):
            pending.extend((item, where, depth + 1) for item in value)


def _refuse_text(value: str, where: str) -> None:
    # PostgreSQL cannot store NUL, and no field of ours needs one.
    if "\x00" in value:
        raise InvalidInput(where, "must not contain NUL (\\u0000) characters")
    # JSON may escape a lone UTF-16 surrogate ("\ud800"), which no database encoding can store.
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidInput(where, "must be valid Unicode (a lone surrogate such as \\ud800 is not)") from None


def query_int(request: HttpRequest, name: str, *, default: int, low: int, high: int, unit: str = "") -> int:
    """?name=N as an int in [low, high]; only ASCII digits are a number (not '²', '１' or '٣')."""
    raw = request.GET.get(name)
    if raw is None:
        return default
    digits = raw.lstrip("0") or "0"
    # Length first: int() refuses strings over 4,300 digits with a ValueError of its own.
    if not (raw.isascii() and raw.isdigit()) or len(digits) > len(str(high)) or not low <= int(digits) <= high:
        raise InvalidInput(name, f"must be a whole number{unit} from {low} to {high}")
    return int(digits)


def query_flag(request: HttpRequest, name: str) -> bool:
    return request.GET.get(name) in {"1", "true", "yes"}


def wait_seconds(request: HttpRequest) -> int:
    return query_int(request, "wait", default=0, low=0, high=WAIT_MAX_S, unit=" of seconds")


def settled(request: HttpRequest, operation: Operation) -> tuple[Operation, bool]:
    """The operation after ?wait=N (fresh from the database), and whether the answer is final."""
    wait = wait_seconds(request)
    if wait:
        with wait_slot() as may_wait:
            if may_wait:
                operation = operation_wait(operation, timeout_s=wait)
            else:
                wait = 0  # too many waiting already: 202 at once, as without ?wait
    operation = Operation.objects.select_related("project__owner", "requested_by", "backup__project").get(pk=operation.pk)
    return operation, bool(wait) and operation.is_settled


# --- look-ups: the thing, or NotFound (the same for a typo and for someone else's) ---


def project_visible(request: AuthedRequest, project_id: str) -> Project:
    project = project_for_user(request.user, project_id)
    if project is None:
        raise NotFound(f"no project {project_id!r} (or it is not yours)")
    return project


def backup_visible(request: AuthedRequest, backup_id: str) -> Backup:
    backup = backup_for_user(request.user, backup_id)
    if backup is None:
        raise NotFound(f"no backup {backup_id!r} (or it is not yours)")
    return backup


def operation_visible(request: AuthedRequest, operation_id: str) -> Operation:
    operation = None
    if is_public_id(operation_id):
        operation = Operation.objects.select_related("project", "requested_by").filter(public_id=operation_id).first()
    if operation is None or project_for_user(request.user, operation.project.public_id) is None:
        raise NotFound(f"no operation {operation_id!r} (or it is not yours)")
    return operation
