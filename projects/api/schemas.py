"""The OpenAPI document's building blocks: field shapes, the component schemas, errors, and the helpers that make an operation's entry."""

from typing import Any

from projects.api.common import WAIT_MAX_S
from projects.models import NAME_MAX, Backup, BackupSchedule, Operation, Project
from projects.pgconf import MEMORY_LIMIT, SETTINGS
from projects.stack.images import offer

JSON = "application/json"
ID = {"type": "string", "pattern": "^[0-9a-f]{12}$"}
TIME = {"type": "string", "format": "date-time"}
TIME_OR_NULL = {"type": ["string", "null"], "format": "date-time"}
STRING_OR_NULL = {"type": ["string", "null"]}


def obj(properties: dict[str, Any], *, optional: tuple[str, ...] = (), description: str = "") -> dict[str, Any]:
    """A closed object: every listed property required unless optional, nothing unlisted allowed."""
    schema = {
        "type": "object",
        "properties": properties,
        "required": [name for name in properties if name not in optional],
        "additionalProperties": False,
    }
    if description:
        schema["description"] = description
    return schema


def ref(name: str) -> dict[str, Any]:
    return {"$ref": f"#/components/schemas/{name}"}


METRIC_POINT = {
    "type": "array",
    "prefixItems": [{"type": "integer", "description": "unix seconds"}, {"type": "number"}],
    "minItems": 2,
    "maxItems": 2,
}

OPERATION = obj(
    {
        "operation_id": ID,
        "project_id": ID,
        "kind": {"enum": Operation.Kind.values},
        "state": {"enum": Operation.State.values},
        "requested_by": STRING_OR_NULL,
        "created_at": TIME,
        "started_at": TIME_OR_NULL,
        "finished_at": TIME_OR_NULL,
        "error": {**STRING_OR_NULL, "description": "why it failed, in a sentence a person can act on"},
    }
)

PROJECT_FIELDS = {
    "project_id": ID,
    "name": {"type": "string"},
    "owner": {"type": "string"},
    "status": {"enum": Project.Status.values},
    "health": {"enum": Project.Health.values, "description": "what sync last observed on the engine"},
    "observed_at": TIME_OR_NULL,
    "postgres_version": {"type": "string"},
    "api": {"enum": Project.Api.values},
    "node": {**STRING_OR_NULL, "description": "the Swarm node the project and its data are on (its name in BERTH_SWARM_NODES); null on a single engine"},
    "api_url": {**STRING_OR_NULL, "description": "null once purged"},
    "db_url": {
        **STRING_OR_NULL,
        "description": "with the password for the owner over a full token; masked for anyone else and for a read-only token; null once purged",
    },
    "anon_key": {
        **STRING_OR_NULL,
        "description": (
            "HS256 JWT for the api's `anon` role (what a request without a key gets); the owner's only, over a full token: "
            "null for anyone else and for a read-only token"
        ),
    },
    "service_key": {
        **STRING_OR_NULL,
        "description": (
            "HS256 JWT for the api's `service` role (full DML, bypasses RLS): keep it server-side; the owner's only, over a "
            "full token: null for anyone else and for a read-only token"
        ),
    },
    "owner_superuser": {
        "type": "boolean",
        "description": "true for a project of the old kind, whose db_url user is the server's superuser (recreate it to change that)",
    },
    "kept_volume": {
        "oneOf": [
            obj({"name": {"type": "string"}, "postgres_version": {"type": "string"}, "kept_at": TIME_OR_NULL}),
            {"type": "null"},
        ],
        "description": (
            "the data volume of the major an upgrade left, kept (labelled with the project) so rollback-upgrade can return to it; "
            "removed by DELETE …/kept-volume or the purge; null when none is kept"
        ),
    },
    "db_memory": {"type": "string", "description": "the db container's memory limit, e.g. 512m"},
    "api_memory": {"type": "string", "description": "the api container's memory limit, e.g. 256m"},
    "postgres_settings": {
        "type": "object",
        "additionalProperties": {"type": "string"},
        "description": "the project's own Postgres settings, over Berth's defaults",
    },
    "pending_restart": {
        "type": "boolean",
        "description": "a change (max_connections, shared_buffers, a memory limit) waits for the next start, or PATCH with restart: true",
    },
    "databases": {
        "type": "array",
        "items": obj({"name": {"type": "string"}, "size_bytes": {"type": "integer", "minimum": 0}}),
        "description": (
            "every database on the project's server its owner may use (it may create more: CREATEDB), with its size, as the "
            "last metrics pass saw them; the api serves the first one, the project's own. Empty until sampled"
        ),
    },
    "created_at": TIME,
    "deleted_at": TIME_OR_NULL,
    "purge_after": TIME_OR_NULL,
    "operation": ref("Operation"),
}

MEMORY_FIELD = {
    "type": "string",
    "pattern": f"^{MEMORY_LIMIT.pattern}$",
    "description": "a memory limit in the engine's format (512m, 1g); applied when the container is next recreated",
}
CHANGE = obj(
    {
        "name": {"type": "string", "maxLength": NAME_MAX, "description": "as at create"},
        "db_memory": MEMORY_FIELD,
        "api_memory": MEMORY_FIELD,
        "postgres_settings": {
            "type": "object",
            "properties": {
                name: {
                    "type": ["string", "null"],
                    "description": f"{s.help}; {'needs a restart' if s.restart else 'reloaded at once'}; null: back to Berth's default",
                }
                for name, s in SETTINGS.items()
            },
            "additionalProperties": False,
            "description": "Postgres settings from the allowlist, merged over the project's; a running server judges each value first",
        },
        "restart": {"type": "boolean", "description": "restart the running project now so every change applies (default false)"},
    },
    optional=("name", "db_memory", "api_memory", "postgres_settings", "restart"),
)

BACKUP_FIELDS = {
    "backup_id": ID,
    "project_id": ID,
    "state": {"enum": Backup.State.values},
    "trigger": {"enum": Backup.Trigger.values},
    "created_at": TIME,
    "finished_at": TIME_OR_NULL,
    "verified_at": TIME_OR_NULL,
    "size": {"type": ["integer", "null"], "minimum": 0},
    "sha256": {"type": ["string", "null"], "pattern": "^[0-9a-f]{64}$"},
    "postgres_version": {"type": "string"},
    "tables": {
        "type": "object", "additionalProperties": {"type": "integer", "minimum": 0},
        "description": "every table's rows at dump time; another database's than the project's own is named <database>/<schema>.<table>",
    },
    "databases": {
        "type": "array", "items": {"type": "string"},
        "description": "the databases the backup holds, the project's own first (a restore replaces these and keeps any other)",
    },
    "rows": {"type": "integer", "minimum": 0},
    "error": STRING_OR_NULL,
    "keep_until": TIME_OR_NULL,
    "download_url": STRING_OR_NULL,
    "operation": ref("Operation"),
}

POOL = obj(
    {
        "postgres_version": {"type": "string"},
        "api": {"enum": Project.Api.values},
        "target": {"type": "integer", "minimum": 0, "description": "stacks BERTH_WARM_POOL asks for (0: no longer wanted, being drained)"},
        "ready": {"type": "integer", "minimum": 0, "description": "stacks a create can claim now"},
        "filling": {"type": "integer", "minimum": 0, "description": "stacks being made"},
    }
)

SCHEDULE = obj(
    {
        "enabled": {"type": "boolean"},
        "hour": {"type": "integer", "minimum": 0, "maximum": BackupSchedule.HOUR_MAX},
        "keep": {"type": "integer", "minimum": 1},
    }
)

ERROR = obj(
    {
        "error": obj(
            {
                "code": {
                    "type": "string",
                    "description": (
                        "a stable word: invalid, name_taken, unauthenticated, not_found, wrong_state, forbidden, quota_exceeded, "
                        "read_only_token, backup_protected, …"
                    ),
                },
                "message": {"type": "string"},
                "field": {"type": "string", "description": "the input at fault, with code invalid or name_taken"},
                "operation": ref("Operation"),
                "limit": {"enum": ["projects", "backups", "backup_bytes"], "description": "the quota reached, with code quota_exceeded"},
                "node": {"type": "string", "description": "the Swarm node at issue, with code node_down, node_full or node_up"},
            },
            optional=("field", "operation", "limit", "node"),
        )
    }
)

ERRORS = {
    "400": "bad JSON, a bad field (named in `field`; `name_taken` for a name the owner already uses) or a bad ?wait",
    "401": "no token, or not a valid one",
    "403": (
        "not allowed: another user's project without the projects.change_project permission (forbidden), a quota "
        "reached (quota_exceeded, naming it in `limit`), or a write with a read-only token (read_only_token)"
    ),
    "404": "no such thing, or it is not yours",
    "409": (
        "the project's status refuses this, an operation is already in flight (named), the backup failed "
        "verification (its download needs ?force=1), or it is a purge's final one within its grace period (backup_protected)"
    ),
    "410": "the backup's file is gone",
    "413": "the body is larger than the server accepts",
    "503": "no free port left to reserve, or the engine cannot be reached",
}


def error_responses(*codes: int) -> dict[str, Any]:
    return {str(c): {"description": ERRORS[str(c)], "content": {JSON: {"schema": ref("Error")}}} for c in (401, *codes)}


def answer(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {JSON: {"schema": schema}}}


WAIT = {
    "name": "wait",
    "in": "query",
    "required": False,
    "description": (
        f"seconds to wait for the operation to settle (0-{WAIT_MAX_S}); the answer is then 200 (201 for a create) with the "
        "settled state. When too many requests are waiting already (BERTH_MAX_WAITING), it answers 202 at once, as without ?wait"
    ),
    "schema": {"type": "integer", "minimum": 0, "maximum": WAIT_MAX_S},
}


def path_id(name: str) -> dict[str, Any]:
    # Any string is accepted and answered 404 when unknown; real ids are 12 hex characters.
    return {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}


def any_body(description: str = "ignored; when sent it must be a JSON object") -> dict[str, Any]:
    return {"required": False, "description": description, "content": {JSON: {"schema": {"type": "object"}}}}


def empty_database_body(verb: str, fields: dict[str, Any] | None = None) -> dict[str, Any]:
    """An optional body of `fields` (a failed create's retry choices, for start) and allow_empty_database."""
    allow = {
        "type": ["boolean", "null"],
        "description": f"the owner's consent to {verb} on a new, empty database when the project's data volume is gone (default false)",
    }
    properties = {**(fields or {}), "allow_empty_database": allow}
    return {"required": False, "content": {JSON: {"schema": obj(properties, optional=tuple(properties))}}}


def action(operation_id: str, summary: str, *, body: dict[str, Any] | None = None, response: str = "Project", codes: tuple[int, ...] = (400, 403, 404, 409, 413)) -> dict[str, Any]:
    return {
        "operationId": operation_id,
        "summary": summary,
        "parameters": [WAIT],
        "requestBody": body or any_body(),
        "responses": {
            "200": answer(ref(response), "settled within ?wait"),
            "202": answer(ref(response), "queued or running: follow the operation"),
            **error_responses(*codes),
        },
    }


def offered_fields() -> dict[str, dict[str, Any]]:
    """postgres_version and api as this installation offers them (a create's and a retry's body)."""
    offered = offer()
    versions = sorted(offered.postgres, key=int)
    return {
        "postgres_version": {
            "oneOf": [
                {"type": "string", "enum": versions},
                {"type": "integer", "enum": [int(v) for v in versions]},
                {"type": "null"},
            ],
            "description": "a version this installation offers (its image could be had)",
        },
        "api": {"enum": [*sorted(offered.api), None], "description": "an API flavour this installation offers"},
    }
