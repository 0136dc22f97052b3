"""Project → StackSpec: everything the engine needs to run one project, as pure data.

No engine here, so the whole container contract (names, labels, environment,
commands, limits, probes) is unit-tested without one; the one database read
is the installation's id, for the `berth.install` label. The images are the
offered ones (runtime/images.py: what `up` found on the engine).
"""

from typing import TYPE_CHECKING
from urllib.parse import quote

from django.conf import settings

from projects.models import installation_id

from .base import (
    INSTALL_LABEL,
    MANAGED_LABEL,
    PROJECT_LABEL,
    SERVICE_LABEL,
    ApiProbe,
    ContainerSpec,
    DbProbe,
    HealthCheck,
    StackSpec,
    object_names,
)
from .images import api_image, postgres_image

if TYPE_CHECKING:
    from projects.models import Project

DB_PORT = 5432
POSTGREST_PORT = 3000
POSTGRAPHILE_PORT = 5000
ANON_ROLE = "anon"

# Postgres settings for a small idle footprint: one project is one server, and a
# host should carry dozens of them. Each is overridable with
# BERTH_POSTGRES_SETTINGS (key=value,key=value), merged over these.
POSTGRES_SETTINGS = {
    "shared_buffers": "16MB",  # idle RSS is dominated by shared memory actually touched
    "max_connections": "40",  # each slot costs shared memory even when unused
    "work_mem": "4MB",
    "maintenance_work_mem": "32MB",
    "effective_cache_size": "128MB",
    "wal_buffers": "1MB",
    "max_wal_size": "256MB",
    "min_wal_size": "32MB",
    "max_worker_processes": "4",
    "max_parallel_workers": "2",
    "autovacuum_max_workers": "1",
    "jit": "off",
}

# Run as the project's superuser once the database answers. Idempotent.
BOOTSTRAP_SQL = f"""
DO $$ BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{ANON_ROLE}') THEN
    CREATE ROLE {ANON_ROLE} NOLOGIN;
  END IF;
END $$;
GRANT USAGE ON SCHEMA public TO {ANON_ROLE};
"""

# PostgREST caches the schema; an event trigger tells it to reload after any
# DDL, so a table a user creates appears in the API without a restart. It lives
# in its own schema so it is never exposed as an RPC.
POSTGREST_RELOAD_SQL = """
CREATE SCHEMA IF NOT EXISTS berth;
CREATE OR REPLACE FUNCTION berth.pgrst_reload() RETURNS event_trigger
  LANGUAGE plpgsql AS $$ BEGIN NOTIFY pgrst, 'reload schema'; END; $$;
DROP EVENT TRIGGER IF EXISTS berth_pgrst_reload;
CREATE EVENT TRIGGER berth_pgrst_reload ON ddl_command_end EXECUTE PROCEDURE berth.pgrst_reload();
"""


def project_labels(project_id: str) -> dict[str, str]:
    return {**settings.BERTH_EXTRA_LABELS, MANAGED_LABEL: "true", PROJECT_LABEL: project_id, INSTALL_LABEL: installation_id()}


def postgres_settings() -> dict[str, str]:
    return {**POSTGRES_SETTINGS, **settings.BERTH_POSTGRES_SETTINGS}


def internal_db_uri(project: "Project") -> str:
    """The api container's URI: the db by container name over the project network."""
    names = object_names(project.public_id)
    return (
        f"postgres://{quote(project.db_user, safe='')}:{quote(project.db_password, safe='')}"
        f"@{names['db']}:{DB_PORT}/{quote(project.db_name, safe='')}"
    )


def probe_host() -> str:
    # Berth reaches published ports on loopback whenever they are published on
    # all interfaces; otherwise on the address they are bound to.
    host = settings.BERTH_PUBLISH_HOST
    return "127.0.0.1" if host in {"0.0.0.0", "::", ""} else host


def stack_spec(project: "Project") -> StackSpec:
    pid = project.public_id
    names = object_names(pid)
    labels = project_labels(pid)
    db = ContainerSpec(
        name=names["db"],
        service="db",
        image=postgres_image(project.postgres_version),
        environment={
            "POSTGRES_USER": project.db_user,
            "POSTGRES_PASSWORD": project.db_password,
            "POSTGRES_DB": project.db_name,
            "PGDATA": "/var/lib/postgresql/data",
        },
        command=["postgres", *(arg for k, v in postgres_settings().items() for arg in ("-c", f"{k}={v}"))],
        container_port=DB_PORT,
        host_port=project.db_port,
        publish_host=settings.BERTH_PUBLISH_HOST,
        labels={**labels, SERVICE_LABEL: "db"},
        mem_limit=settings.BERTH_DB_MEMORY,
        # The image declares VOLUME here: mounting the project's volume at this
        # exact path is what keeps an anonymous volume from being left behind.
        volume_mount="/var/lib/postgresql/data",
        # -h 127.0.0.1: during initdb the entrypoint's temporary server listens
        # on the socket only, so a TCP check is not fooled by it.
        healthcheck=HealthCheck(
            test=["CMD", "pg_isready", "-h", "127.0.0.1", "-p", str(DB_PORT), "-U", project.db_user, "-d", project.db_name]
        ),
        stop_timeout_s=10,
    )
    if project.api_flavour == "postgraphile":
        api_port = POSTGRAPHILE_PORT
        environment: dict[str, str] = {}
        # The image's entrypoint is the postgraphile CLI: options are the command.
        command: list[str] | None = [
            "--connection", internal_db_uri(project),
            "--host", "0.0.0.0",
            "--port", str(POSTGRAPHILE_PORT),
            "--schema", "public",
            "--retry-on-init-fail",  # the api starts without waiting for the db
            "--watch",  # new tables appear without a restart (needs the superuser)
            "--dynamic-json",
            "--disable-query-log",
        ]  # fmt: skip
        probe = ApiProbe(
            path="/graphql",
            method="POST",
            body=b'{"query":"{__typename}"}',
            content_type="application/json",
        )
    else:
        api_port = POSTGREST_PORT
        environment = {
            "PGRST_DB_URI": internal_db_uri(project),
            "PGRST_DB_SCHEMAS": "public",
            "PGRST_DB_ANON_ROLE": ANON_ROLE,
            "PGRST_JWT_SECRET": project.jwt_secret,
            "PGRST_SERVER_PORT": str(POSTGREST_PORT),
            "PGRST_DB_CHANNEL_ENABLED": "true",
        }
        command = None
        probe = ApiProbe(path="/")
    api = ContainerSpec(
        name=names["api"],
        service="api",
        image=api_image(project.api_flavour),
        environment=environment,
        command=command,
        container_port=api_port,
        host_port=project.api_port,
        publish_host=settings.BERTH_PUBLISH_HOST,
        labels={**labels, SERVICE_LABEL: "api"},
        mem_limit=settings.BERTH_API_MEMORY,
        stop_timeout_s=5,
    )
    bootstrap = BOOTSTRAP_SQL + (POSTGREST_RELOAD_SQL if project.api_flavour == "postgrest" else "")
    return StackSpec(
        project_id=pid,
        network=names["network"],
        volume=names["volume"],
        labels=labels,
        db=db,
        api=api,
        db_probe=DbProbe(
            host=probe_host(),
            port=project.db_port,
            user=project.db_user,
            password=project.db_password,
            dbname=project.db_name,
            bootstrap_sql=bootstrap,
        ),
        api_probe=probe,
        subnet=project.network_subnet or "",
    )
