"""The OpenAPI 3.1 document of the JSON API v1, served at /v1/openapi.json.

Hand-written as data, next to the API it describes, and kept true by tests:
every API response the unit tests see is validated against it
(tests/openapi_check.py), and schemathesis throws generated requests at a live
server and fails on any 500 or any answer outside it. The document is public,
like any API reference: it is served without a token and holds no data. A few
values are read when it is served (the Postgres versions and API flavours on
offer: projects/stack/images.py), so the document describes this installation.
"""

from typing import Any

from django.http import HttpRequest, JsonResponse

from projects.api.common import LIST_LIMIT_DEFAULT, LIST_LIMIT_MAX, OFFSET_MAX, OPERATIONS_LISTED, WAIT_MAX_S, methods
from projects.models import NAME_MAX, Backup, BackupSchedule, Operation, Project
from projects.pgconf import MEMORY_LIMIT, SETTINGS
from projects.stack.images import offer
from projects.services.fleet.metrics import RANGE_NAMES, SERIES

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
    "db_url": {**STRING_OR_NULL, "description": "with the password for the owner, masked for anyone else; null once purged"},
    "anon_key": {
        **STRING_OR_NULL,
        "description": "HS256 JWT for the api's `anon` role (what a request without a key gets); the owner's only, null for anyone else",
    },
    "service_key": {
        **STRING_OR_NULL,
        "description": "HS256 JWT for the api's `service` role (full DML, bypasses RLS): keep it server-side; the owner's only, null for anyone else",
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
    "tables": {"type": "object", "additionalProperties": {"type": "integer", "minimum": 0}},
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


def openapi_document() -> dict[str, Any]:
    choices = offered_fields()
    project_links = {
        name: {"operationId": op, "parameters": {"project_id": "$response.body#/project_id"}}
        for name, op in [
            ("GetProject", "getProject"),
            ("StopProject", "stopProject"),
            ("StartProject", "startProject"),
            ("DeleteProject", "deleteProject"),
            ("ListOperations", "listOperations"),
            ("ListBackups", "listBackups"),
        ]
    }
    created = {**answer(ref("Project"), "settled within ?wait"), "links": project_links}
    queued = {**answer(ref("Project"), "queued: follow the operation"), "links": project_links}
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Berth API",
            "version": "1",
            "description": (
                "Projects (a PostgreSQL server and an HTTP API over it), their operations and backups. Every change is "
                "an operation that a worker runs: actions answer 202 at once, or wait with ?wait=N. Errors are "
                '{"error": {"code", "message"}}.'
            ),
        },
        "servers": [{"url": "/"}],
        "security": [{"bearer": []}],
        "paths": {
            "/v1/openapi.json": {
                "get": {
                    "operationId": "getOpenApi",
                    "summary": "This document (no token needed)",
                    "security": [],
                    "responses": {"200": answer({"type": "object"}, "the OpenAPI 3.1 document")},
                }
            },
            "/v1/ca.pem": {
                "get": {
                    "operationId": "getCaCertificate",
                    "summary": "Berth's CA certificate, which signs every database's server certificate (no token needed)",
                    "security": [],
                    "responses": {
                        "200": {
                            "description": "a PEM certificate: psql's sslrootcert for sslmode=verify-full",
                            "content": {"application/x-pem-file": {"schema": {"type": "string"}}},
                        }
                    },
                }
            },
            "/v1/pool": {
                "get": {
                    "operationId": "getPool",
                    "summary": "The warm pool (staff only): per version and flavour, the stacks wanted, ready to claim and being made",
                    "responses": {"200": answer(obj({"pools": {"type": "array", "items": ref("Pool")}}), "the pools"), **error_responses(403)},
                }
            },
            "/v1/nodes/{name}/forget": {
                "parameters": [path_id("name")],
                "post": {
                    "operationId": "forgetNode",
                    "summary": (
                        "Staff, on a Swarm: give up on a node that is down (confirm repeats its name). Nothing is removed now; its "
                        "projects can then be purged without their volume there, which stays on the node. Refused (409 node_up) while "
                        "the node is ready; seen ready again later, it is no longer forgotten"
                    ),
                    "requestBody": {"required": True, "content": {JSON: {"schema": {"type": "object", "properties": {"confirm": {"type": "string"}}}}}},
                    "responses": {
                        "200": answer(
                            obj({
                                "node": {"type": "string"},
                                "forgotten_at": {"type": "string", "format": "date-time"},
                                "projects": {"type": "array", "items": {"type": "string"}, "description": "the ids of its projects not purged"},
                            }),
                            "the node is forgotten",
                        ),
                        **error_responses(400, 403, 404, 409, 413, 503),
                    },
                }
            },
            "/v1/projects": {
                "get": {
                    "operationId": "listProjects",
                    "summary": "Your projects (staff: everyone's)",
                    "parameters": [
                        {
                            "name": "include_deleted",
                            "in": "query",
                            "required": False,
                            "description": "1, true or yes to include deleted and purged projects",
                            "schema": {"type": "string"},
                        },
                        {
                            "name": "limit",
                            "in": "query",
                            "required": False,
                            "description": f"projects per page (1-{LIST_LIMIT_MAX}, default {LIST_LIMIT_DEFAULT})",
                            "schema": {"type": "integer", "minimum": 1, "maximum": LIST_LIMIT_MAX},
                        },
                        {
                            "name": "offset",
                            "in": "query",
                            "required": False,
                            "description": "projects to skip (newest first)",
                            "schema": {"type": "integer", "minimum": 0, "maximum": OFFSET_MAX},
                        },
                    ],
                    "responses": {
                        "200": answer(
                            obj({
                                "projects": {"type": "array", "items": ref("Project")},
                                "next": {**STRING_OR_NULL, "description": "the absolute URL of the next page, or null on the last"},
                            }),
                            "a page of the projects, newest first",
                        ),
                        **error_responses(400),
                    },
                },
                "post": {
                    "operationId": "createProject",
                    "summary": "Create a project (ports and secrets are reserved at once)",
                    "parameters": [WAIT],
                    "requestBody": {
                        "required": False,
                        "content": {
                            JSON: {
                                "schema": obj(
                                    {
                                        "name": {
                                            "type": ["string", "null"],
                                            "maxLength": NAME_MAX,
                                            "description": "trimmed; not empty, no control or bidirectional-formatting characters, "
                                            "not the name of another of your projects that is not purged; left out: a generated name",
                                        },
                                        **choices,
                                        "from_backup": {**STRING_OR_NULL, "description": "clone from this backup of one of your projects"},
                                    },
                                    optional=("name", "postgres_version", "api", "from_backup"),
                                )
                            }
                        },
                    },
                    "responses": {"201": created, "202": queued, **error_responses(400, 403, 413, 503)},
                },
            },
            "/v1/projects/{project_id}": {
                "parameters": [path_id("project_id")],
                "get": {
                    "operationId": "getProject",
                    "summary": "One project",
                    "responses": {"200": answer(ref("Project"), "the project"), **error_responses(404)},
                },
                "patch": action(
                    "changeProject",
                    "Change the name, memory limits or Postgres settings; the answer says pending_restart for a change that waits for a "
                    "restart, and carries the operation that applies the rest (none when nothing needs one)",
                    body={"required": True, "content": {JSON: {"schema": CHANGE}}},
                    codes=(400, 403, 404, 409, 413, 503),
                ),
                "delete": {
                    **action("deleteProject", "Delete (soft): containers go; volume and ports stay until purge", codes=(400, 403, 404, 409)),
                    "requestBody": any_body(),
                },
            },
            "/v1/projects/{project_id}/rotate": {
                "parameters": [path_id("project_id")],
                "post": action(
                    "rotateCredentials",
                    "New credentials: password (the db password and the api's login; the old one stops working) or keys (a new JWT "
                    "secret: new anon_key and service_key); the owner's answer carries the new db_url or keys",
                    body={
                        "required": True,
                        "content": {JSON: {"schema": obj({"what": {"enum": ["password", "keys"]}})}},
                    },
                ),
            },
            "/v1/projects/{project_id}/stop": {"parameters": [path_id("project_id")], "post": action("stopProject", "Stop")},
            "/v1/projects/{project_id}/start": {
                "parameters": [path_id("project_id")],
                "post": action(
                    "startProject",
                    "Start (and repair a running project whose containers went); a project whose create failed can be retried with another "
                    "version or API; a project that ran and whose data volume is gone fails instead of starting empty, unless its owner "
                    "sends allow_empty_database",
                    body=empty_database_body("start", choices),
                    codes=(400, 403, 404, 409, 413),
                ),
            },
            "/v1/projects/{project_id}/restore": {
                "parameters": [path_id("project_id")],
                "post": action(
                    "restoreProject",
                    "Bring a deleted project back, stopped (with allow_empty_database as for start)",
                    body=empty_database_body("restore"),
                    codes=(400, 403, 404, 409, 413),
                ),
            },
            "/v1/projects/{project_id}/purge": {
                "parameters": [path_id("project_id")],
                "post": action(
                    "purgeProject",
                    "Remove a deleted project's data for good",
                    body={"required": True, "content": {JSON: {"schema": {"type": "object", "properties": {"confirm": {"type": "string"}}}}}},
                ),
            },
            "/v1/projects/{project_id}/upgrade": {
                "parameters": [path_id("project_id")],
                "post": action(
                    "upgradeProject",
                    "Upgrade a running project to a higher PostgreSQL major in place: a verified backup, a new volume of the new major "
                    "filled from it and checked table by table, the stack switched over with the same URLs, ports and credentials; the "
                    "old volume is kept for rollback-upgrade. Refused (400) for the same or a lower version or one not offered, (409) "
                    "for a project not running, with an operation in flight or with a volume still kept from an earlier upgrade. "
                    "Extensions the new major lacks fail the operation before anything changes, naming them",
                    body={
                        "required": True,
                        "content": {JSON: {"schema": obj({"postgres_version": choices["postgres_version"]})}},
                    },
                ),
            },
            "/v1/projects/{project_id}/rollback-upgrade": {
                "parameters": [path_id("project_id")],
                "post": action(
                    "rollbackProjectUpgrade",
                    "Return to the major and volume the last upgrade kept, with the data as it was before that upgrade (what was written "
                    "since is kept in a verified pre-rollback backup); 409 when no volume is kept",
                    body={"required": False, "content": {JSON: {"schema": obj({})}}},
                ),
            },
            "/v1/projects/{project_id}/kept-volume": {
                "parameters": [path_id("project_id")],
                "delete": {
                    **action(
                        "dropProjectKeptVolume",
                        "Remove the volume the last upgrade kept: no rollback after this; 409 when none is kept",
                        codes=(400, 403, 404, 409),
                    ),
                    "requestBody": any_body(),
                },
            },
            "/v1/projects/{project_id}/move": {
                "parameters": [path_id("project_id")],
                "post": action(
                    "moveProject",
                    "Staff, on a Swarm: move the project's data to another node (a verified backup restored there; the old volume stays "
                    "until purge; the URLs take the node's address, and other ports if its own are taken there)",
                    body={
                        "required": True,
                        "content": {JSON: {"schema": {"type": "object", "properties": {"node": {"type": "string"}}, "required": ["node"]}}},
                    },
                    codes=(400, 403, 404, 409, 413, 503),
                ),
            },
            "/v1/projects/{project_id}/operations": {
                "parameters": [path_id("project_id")],
                "get": {
                    "operationId": "listOperations",
                    "summary": f"The project's last {OPERATIONS_LISTED} operations, newest first",
                    "responses": {"200": answer(obj({"operations": {"type": "array", "items": ref("Operation")}}), "the operations"), **error_responses(404)},
                },
            },
            "/v1/projects/{project_id}/metrics": {
                "parameters": [path_id("project_id")],
                "get": {
                    "operationId": "getProjectMetrics",
                    "summary": "The project's metrics over a range, sampled by the sync watcher every BERTH_METRICS_SECONDS (owner or staff)",
                    "parameters": [
                        {
                            "name": "range",
                            "in": "query",
                            "required": False,
                            "description": "1h (every sample), 24h (5-minute means) or 7d (hourly rows); default 1h",
                            "schema": {"enum": list(RANGE_NAMES)},
                        }
                    ],
                    "responses": {
                        "200": answer(
                            obj({
                                "range": {"enum": list(RANGE_NAMES)},
                                "step_seconds": {"type": "integer", "minimum": 1, "description": "seconds between points"},
                                "series": obj(
                                    {name: {"type": "array", "items": METRIC_POINT} for name in SERIES},
                                    description=(
                                        "cpu_percent (db + api containers; 100 = one core), memory_bytes and memory_limit_bytes "
                                        "(db + api), db_size_bytes, connections and max_connections (the server's client backends), "
                                        "commits_per_s, rollbacks_per_s, cache_hit_ratio (0-1, over each interval), api_up (1 or 0; "
                                        "an hour's share in 7d); empty while stopped"
                                    ),
                                ),
                            }),
                            "the series, oldest point first",
                        ),
                        **error_responses(400, 404),
                    },
                },
            },
            "/v1/operations/{operation_id}": {
                "parameters": [path_id("operation_id")],
                "get": {
                    "operationId": "getOperation",
                    "summary": "One operation",
                    "responses": {"200": answer(ref("Operation"), "the operation"), **error_responses(404)},
                },
            },
            "/v1/projects/{project_id}/backups": {
                "parameters": [path_id("project_id")],
                "get": {
                    "operationId": "listBackups",
                    "summary": "The project's backups and schedule",
                    "responses": {
                        "200": answer(
                            obj({"backups": {"type": "array", "items": ref("Backup")}, "schedule": {"oneOf": [ref("Schedule"), {"type": "null"}]}}),
                            "the backups",
                        ),
                        **error_responses(404),
                    },
                },
                "post": {
                    "operationId": "createBackup",
                    "summary": "Take a backup now",
                    "parameters": [WAIT],
                    "requestBody": any_body("takes no fields; when sent it must be an empty JSON object"),
                    "responses": {
                        "201": answer(ref("Backup"), "taken within ?wait"),
                        "202": answer(ref("Backup"), "queued or running"),
                        **error_responses(400, 403, 404, 409, 413),
                    },
                },
            },
            "/v1/projects/{project_id}/backup-schedule": {
                "parameters": [path_id("project_id")],
                "get": {
                    "operationId": "getBackupSchedule",
                    "summary": "The daily backup schedule, or null",
                    "responses": {"200": answer(obj({"schedule": {"oneOf": [ref("Schedule"), {"type": "null"}]}}), "the schedule"), **error_responses(404)},
                },
                "put": {
                    "operationId": "setBackupSchedule",
                    "summary": "Back up daily at `hour` (UTC), keeping the newest `keep`",
                    "requestBody": {
                        "required": True,
                        "content": {
                            JSON: {
                                "schema": obj(
                                    {
                                        "hour": {"type": "integer", "minimum": 0, "maximum": BackupSchedule.HOUR_MAX},
                                        "keep": {"type": "integer", "minimum": 1, "maximum": BackupSchedule.KEEP_MAX},
                                        "enabled": {"type": "boolean"},
                                    },
                                    optional=("enabled",),
                                )
                            }
                        },
                    },
                    "responses": {"200": answer(obj({"schedule": ref("Schedule")}), "the schedule"), **error_responses(400, 403, 404, 413)},
                },
            },
            "/v1/backups/{backup_id}": {
                "parameters": [path_id("backup_id")],
                "get": {"operationId": "getBackup", "summary": "One backup", "responses": {"200": answer(ref("Backup"), "the backup"), **error_responses(404)}},
                "delete": {
                    "operationId": "deleteBackup",
                    "summary": "Delete a backup and its file",
                    "responses": {"200": answer(obj({"deleted": {"type": "string"}}), "deleted"), **error_responses(400, 403, 404, 409)},
                },
            },
            "/v1/backups/{backup_id}/verify": {
                "parameters": [path_id("backup_id")],
                "post": action("verifyBackup", "Restore the backup into a throwaway server and count its rows", response="Backup"),
            },
            "/v1/backups/{backup_id}/restore": {
                "parameters": [path_id("backup_id")],
                "post": action(
                    "restoreBackup",
                    "Replace the project's data with the backup's (a safety backup is taken first)",
                    body={"required": True, "content": {JSON: {"schema": {"type": "object", "properties": {"confirm": {"type": "string"}}}}}},
                    response="RestoredProject",
                ),
            },
            "/v1/backups/{backup_id}/download": {
                "parameters": [path_id("backup_id")],
                "get": {
                    "operationId": "downloadBackup",
                    "summary": "The backup's pg_dump file (the project's owner only)",
                    "parameters": [
                        {
                            "name": "force",
                            "in": "query",
                            "required": False,
                            "description": (
                                "1, true or yes to download a backup that failed verification (otherwise 409), "
                                "with the Repr-Digest of the bytes served"
                            ),
                            "schema": {"type": "string"},
                        }
                    ],
                    "responses": {
                        "200": {
                            "description": "the dump, with a Repr-Digest header to check it against",
                            "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}},
                        },
                        **error_responses(403, 404, 409, 410),
                    },
                },
            },
        },
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer", "description": "an API token (dashboard, API tokens page)"}},
            "schemas": {
                "Operation": OPERATION,
                "Project": obj(PROJECT_FIELDS, optional=("operation",)),
                "RestoredProject": obj(
                    {**PROJECT_FIELDS, "backup": ref("Backup"), "safety_backup": {"oneOf": [ref("Backup"), {"type": "null"}]}},
                ),
                "Backup": obj(BACKUP_FIELDS, optional=("operation",)),
                "Schedule": SCHEDULE,
                "Pool": POOL,
                "Error": ERROR,
            },
        },
    }


@methods("GET")
def openapi_json(request: HttpRequest) -> JsonResponse:
    return JsonResponse(openapi_document(), json_dumps_params={"indent": 1})
