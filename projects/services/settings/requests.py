"""Changing a project after creation: its name, memory limits and Postgres settings; rotating its credentials.

A change is checked whole before anything is kept: Berth's rules (pgconf.py),
then, on a running project, the server's own judgement of each new setting
(ALTER SYSTEM of the new value, then the project's current values written
back, with no reload in between: a value the server refuses is a 400 with its
words, and the project is as it was). Then, in one transaction, the fields are
saved and the operation that applies them is queued:

- reloadable settings on a running project: `reconfigure` (the bootstrap's
  ALTER SYSTEM and pg_reload_conf, no restart);
- restart-only settings (postmaster context) and memory limits: kept, and
  `pending_restart` until the stack is next brought up (a start, or at once
  with "restart": true, the `restart` operation);
- a stopped or failed project: kept; its next start applies everything.

A rotation stores the new secret and queues `rotate_password`/`rotate_keys`,
which brings the stack up with it: the api container is recreated (its
environment changed) and the bootstrap sets the new passwords.
"""

import secrets
from typing import Any

from django.contrib.auth.models import User
from django.db import transaction

from projects.models import Operation, Project
from projects.pgconf import RESTART_SETTINGS, SETTINGS, BadSetting, memory_bytes, memory_clean, setting_amount, setting_clean
from projects.runtime import RuntimeFailure, RuntimeUnavailable, get_runtime
from projects.runtime.base import SERVER_SQL_ARGV
from projects.stack.spec import bootstrap, project_postgres_settings, settings_sql, stack_spec

from projects.services.access import project_check_actor
from projects.services.errors import EngineUnreachable, InvalidInput, InvalidTransition, OperationInFlight
from projects.services.names import project_name_check_free, project_name_clean
from projects.services.operations.queue import operation_enqueue
from projects.services.placement.nodes import node_assert_room
from projects.services.redact import secrets_redact

S = Project.Status
ROTATIONS = {"password": Operation.Kind.ROTATE_PASSWORD, "keys": Operation.Kind.ROTATE_KEYS}


def project_settings_clean(*, project: Project, postgres_settings: object, db_memory: str) -> dict[str, str]:
    """The project's settings after merging `postgres_settings` ({name: value, or None to drop it}) over its own."""
    if not isinstance(postgres_settings, dict):
        raise InvalidInput("postgres_settings", 'must be an object of setting names to values, e.g. {"work_mem": "8MB"}')
    merged = dict(project.postgres_settings)
    for name, value in postgres_settings.items():
        try:
            if value is None:
                if name not in SETTINGS:
                    setting_clean(name, "")  # the same "not a setting" refusal
                merged.pop(name, None)
            else:
                merged[name] = setting_clean(name, value)
        except BadSetting as exc:
            raise InvalidInput("postgres_settings", str(exc)) from None
    _check_shared_buffers(merged, db_memory)
    return merged


def _check_shared_buffers(values: dict[str, str], db_memory: str) -> None:
    if "shared_buffers" not in values:
        return
    buffers = setting_amount("shared_buffers", values["shared_buffers"]) * 1024
    if buffers * 2 > memory_bytes(db_memory):
        raise InvalidInput(
            "postgres_settings", f"shared_buffers ({values['shared_buffers']}) must be at most half of db_memory ({db_memory})"
        )


def project_change(
    *, project: Project, requested_by: User | None, name: object = None, db_memory: object = None, api_memory: object = None,
    postgres_settings: object = None, restart: object = False,
) -> tuple[Project, Operation | None]:  # fmt: skip
    """Change what the request names (None: leave it); the project fresh, and the operation that applies it, if any."""
    project_check_actor(user=requested_by, project=project)
    if not isinstance(restart, bool):
        raise InvalidInput("restart", "must be true or false")
    fields: dict[str, Any] = {}
    if name is not None:
        if not isinstance(name, str):
            raise InvalidInput("name", "must be a string")
        fields["name"] = project_name_clean(name=name)
    for field, value in (("db_memory", db_memory), ("api_memory", api_memory)):
        if value is not None:
            try:
                fields[field] = memory_clean(field, value)
            except BadSetting as exc:
                raise InvalidInput(field, str(exc)) from None
    new_db_memory = fields.get("db_memory", project.db_memory)
    if postgres_settings is not None:
        fields["postgres_settings"] = project_settings_clean(project=project, postgres_settings=postgres_settings, db_memory=new_db_memory)
    elif "db_memory" in fields:
        try:
            _check_shared_buffers(project.postgres_settings, new_db_memory)
        except InvalidInput as exc:
            raise InvalidInput("db_memory", str(exc).removeprefix("postgres_settings: ")) from None
    changed = {k: v for k, v in fields.items() if getattr(project, k) != v}
    old_settings, new_settings = dict(project.postgres_settings), changed.get("postgres_settings", project.postgres_settings)
    changed_settings = {k for k in old_settings.keys() | new_settings.keys() if old_settings.get(k) != new_settings.get(k)}
    needs_restart = bool(changed_settings & RESTART_SETTINGS) or "db_memory" in changed or "api_memory" in changed
    needs_reload = bool(changed_settings - RESTART_SETTINGS)
    if not changed and not restart:
        return project, None
    touches_stack = restart or bool(set(changed) - {"name"})
    if project.status == S.PURGED:
        raise InvalidTransition("a purged project cannot be changed")
    if touches_stack:
        _check_changeable(project, restart=restart)
    if "db_memory" in changed or "api_memory" in changed:
        node_assert_room(project=project, db_memory=changed.get("db_memory", project.db_memory), api_memory=changed.get("api_memory", project.api_memory))
    if changed_settings and project.status == S.RUNNING:
        _server_check(project, {k: v for k, v in new_settings.items() if k in changed_settings})
    elif judged := sorted(k for k in changed_settings if k in new_settings and SETTINGS[k].kind == "name"):
        # Berth's bounds are the server's for every other setting; these names
        # only the server knows (its tzdata), and a start is no place to learn
        # that one is wrong.
        raise InvalidTransition(
            f"{', '.join(judged)} can be set only while the project runs, so that its server can check the name "
            f"(it is {project.status}); start it first, or leave {', '.join(judged)} out"
        )
    with transaction.atomic():
        locked = Project.objects.select_for_update().get(pk=project.pk)
        if touches_stack:
            # Again under the lock: the state may have moved since the server was asked.
            _check_changeable(locked, restart=restart)
        if "name" in changed and locked.owner is not None:  # a pooled stack has no owner yet, nor names to collide with
            project_name_check_free(owner=locked.owner, name=changed["name"])
        for field, value in changed.items():
            setattr(locked, field, value)
        running = locked.status == S.RUNNING
        # Cleared by the step that next brings the stack up with it (a start, the restart queued below).
        locked.restart_pending = locked.restart_pending or needs_restart
        locked.save(update_fields=[*changed, "restart_pending", "updated_at"])
        operation = None
        if running and restart:
            operation = operation_enqueue(
                project=locked, kind=Operation.Kind.RESTART, action="restart", transitional=S.STARTING, requested_by=requested_by
            )
        elif running and needs_reload:
            operation = operation_enqueue(
                project=locked, kind=Operation.Kind.RECONFIGURE, action="reconfigure", transitional=None, requested_by=requested_by
            )
    project.refresh_from_db()
    return project, operation


def _check_changeable(project: Project, *, restart: bool) -> None:
    """InvalidTransition or OperationInFlight unless the project's settings may change now (restart: and it restarts)."""
    in_flight = project.operations.filter(state__in=Operation.IN_FLIGHT).first()
    if in_flight is not None:
        raise OperationInFlight(in_flight)
    allowed = project.allowed_actions()
    if "reconfigure" not in allowed:
        raise InvalidTransition(f"cannot change the settings of a project that is {project.status}")
    if restart and "restart" not in allowed:
        raise InvalidTransition(
            f"cannot restart a project that is {project.status}; leave out restart: the change applies when it next starts"
        )


def _server_check(project: Project, values: dict[str, str]) -> None:
    """Ask the running server to take each new value (ALTER SYSTEM), then write the current ones back, unreloaded.

    InvalidInput with the server's words when it refuses one; nothing is applied either way.
    """
    runtime = get_runtime()
    container = stack_spec(project).db.name
    _, env = bootstrap(project)
    trial = "".join(f"ALTER SYSTEM SET {name} = '{value.replace(chr(39), chr(39) * 2)}';\n" for name, value in sorted(values.items()))
    try:
        _, result = runtime.exec_stream(container, SERVER_SQL_ARGV, environment={**env, "BERTH_SQL": trial}, idle_timeout_s=30).read_all()
        # Whatever it said, the file holds the project's current values again.
        _, restored = runtime.exec_stream(
            container, SERVER_SQL_ARGV, environment={**env, "BERTH_SQL": settings_sql(project_postgres_settings(project))}, idle_timeout_s=30
        ).read_all()
    except RuntimeUnavailable as exc:
        raise EngineUnreachable(f"the settings could not be checked with the server: {exc}") from None
    except RuntimeFailure as exc:
        raise InvalidTransition(
            f"its database does not answer, so the server cannot check the settings ({secrets_redact(str(exc), project)}); "
            "start it, or stop it and change them then"
        ) from None
    if result.exit_code != 0:
        words = [line.split("ERROR:", 1)[1].strip() for line in result.stderr.splitlines() if "ERROR:" in line]
        said = words[-1] if words else (result.stderr.strip().splitlines() or ["no message"])[-1]
        raise InvalidInput("postgres_settings", f"the server refused it: {secrets_redact(said, project)}")
    if restored.exit_code != 0:
        raise InvalidTransition("the server took the settings but would not take its current ones back; try again")


def project_rotate(*, project: Project, requested_by: User | None, what: object) -> Operation:
    """A new db password (the owner's and the api's login) or a new JWT secret (new keys), applied by an operation."""
    if not isinstance(what, str) or what not in ROTATIONS:
        raise InvalidInput("what", "must be password or keys")
    project_check_actor(user=requested_by, project=project)
    if what == "password" and project.owner_is_superuser:
        raise InvalidTransition(
            "this project is of the old kind (its db user is the server's superuser, with whose password Berth bootstraps it): "
            "its password cannot be rotated by Berth"
        )
    with transaction.atomic():
        locked = Project.objects.select_for_update().get(pk=project.pk)
        if what == "password":
            locked.db_password = secrets.token_urlsafe(24)
            locked.authenticator_password = secrets.token_urlsafe(24)
            changed = ["db_password_encrypted", "authenticator_password_encrypted"]
        else:
            locked.jwt_secret = secrets.token_urlsafe(48)  # PostgREST wants at least 32 characters
            changed = ["jwt_secret_encrypted"]
        locked.save(update_fields=[*changed, "updated_at"])
        # Refused (wrong state, one in flight): the exception rolls the new secret back with it.
        operation = operation_enqueue(project=locked, kind=ROTATIONS[what], action="rotate", transitional=None, requested_by=requested_by)
    project.refresh_from_db()
    return operation
