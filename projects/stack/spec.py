"""Project → StackSpec: everything the engine needs to run one project, as pure data.

No engine here, so the whole container contract (names, labels, environment,
commands, limits, probes) is unit-tested without one; the one database read
is the installation's id, for the `berth.install` label. The images are the
offered ones (stack/images.py: what `up` found on the engine).
"""

from typing import TYPE_CHECKING
from urllib.parse import quote

from django.conf import settings

from projects.models import installation_id
from projects.pgconf import RELOAD_SETTINGS, RESTART_SETTINGS
from projects.runtime.base import (
    INSTALL_LABEL,
    MANAGED_LABEL,
    PROJECT_LABEL,
    SERVICE_LABEL,
    ApiProbe,
    Confinement,
    ContainerSpec,
    DbProbe,
    FileSpec,
    HealthCheck,
    SampleTarget,
    StackSpec,
    data_volume_name,
    object_names,
)
from projects.runtime.sessions import HEALED_MARKER, MONITOR_USER, admin_session_env, pinned_uri
from projects.stack.images import api_image, postgres_image
from projects.stack.postgraphile import POSTGRAPHILE_DIR, POSTGRAPHILE_PORT, postgraphile_api, watching_sql

if TYPE_CHECKING:
    from projects.models import Project

DB_PORT = 5432
# The data directory, where the project's volume is mounted.
PGDATA = "/var/lib/postgresql/data"
POSTGREST_PORT = 3000
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
    # The logical replication launcher, pg_cron's launcher and two of its jobs (the image caps
    # them at two: images/postgres/docker-entrypoint.sh) leave two for parallel queries.
    "max_worker_processes": "6",
    "max_parallel_workers": "2",
    "autovacuum_max_workers": "1",
    "jit": "off",
}

SERVICE_ROLE = "service"
AUTHENTICATOR_ROLE = "authenticator"
# The audience of the project's keys: PostgREST and PostGraphile are both told
# to require it, so one key works with either flavour (PostGraphile 4 would
# otherwise insist on "postgraphile").
JWT_AUDIENCE = "berth"

# The roles of a project, run by psql as the server's superuser on every start
# (BOOTSTRAP_ARGV; secrets come from the environment through \getenv).
# Idempotent: it converges whatever a previous version or a restore left.
# - anon: what an unauthenticated api request runs as; nothing on user tables
#   until the owner grants it (`grant select on items to anon`).
# - service: the service key's role; full DML on public, tables made later included.
# - authenticator: the api's login; NOINHERIT, so it holds nothing itself and
#   can only switch to anon or service.
# A function the owner makes is nobody's to call until granted (the default
# privileges' last line): the api's anonymous role runs only what the owner
# publishes with a GRANT EXECUTE (README).
ROLES_SQL = f"""
\\getenv owner BERTH_OWNER
\\getenv authenticator_password BERTH_AUTHENTICATOR_PASSWORD
SELECT pg_catalog.format('CREATE ROLE %I', r) FROM pg_catalog.unnest(ARRAY['{ANON_ROLE}', '{SERVICE_ROLE}', '{AUTHENTICATOR_ROLE}']::text[]) AS r
 WHERE NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname OPERATOR(pg_catalog.=) r) \\gexec
ALTER ROLE {ANON_ROLE} WITH NOLOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOBYPASSRLS;
ALTER ROLE {SERVICE_ROLE} WITH NOLOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE BYPASSRLS;
ALTER ROLE {AUTHENTICATOR_ROLE} WITH LOGIN NOINHERIT NOSUPERUSER NOCREATEDB NOCREATEROLE NOBYPASSRLS
  PASSWORD :'authenticator_password';
SELECT pg_catalog.format('REVOKE %I FROM {AUTHENTICATOR_ROLE}', r.rolname)
  FROM pg_catalog.pg_auth_members m JOIN pg_catalog.pg_roles r ON r.oid OPERATOR(pg_catalog.=) m.roleid
 WHERE m.member OPERATOR(pg_catalog.=) '{AUTHENTICATOR_ROLE}'::pg_catalog.regrole
   AND r.rolname OPERATOR(pg_catalog.<>) ALL (ARRAY['{ANON_ROLE}', '{SERVICE_ROLE}']::name[]) \\gexec
GRANT {ANON_ROLE}, {SERVICE_ROLE} TO {AUTHENTICATOR_ROLE};
REVOKE CREATE ON SCHEMA public FROM PUBLIC;
GRANT USAGE ON SCHEMA public TO {ANON_ROLE}, {SERVICE_ROLE};
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {SERVICE_ROLE};
GRANT USAGE, SELECT, UPDATE ON ALL SEQUENCES IN SCHEMA public TO {SERVICE_ROLE};
GRANT EXECUTE ON ALL ROUTINES IN SCHEMA public TO {SERVICE_ROLE};
ALTER DEFAULT PRIVILEGES FOR ROLE :"owner" IN SCHEMA public GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO {SERVICE_ROLE};
ALTER DEFAULT PRIVILEGES FOR ROLE :"owner" IN SCHEMA public GRANT USAGE, SELECT, UPDATE ON SEQUENCES TO {SERVICE_ROLE};
ALTER DEFAULT PRIVILEGES FOR ROLE :"owner" IN SCHEMA public GRANT EXECUTE ON ROUTINES TO {SERVICE_ROLE};
ALTER DEFAULT PRIVILEGES FOR ROLE :"owner" REVOKE EXECUTE ON FUNCTIONS FROM PUBLIC;
"""

# The owner (db_url's user) of a project of the new kind: owns the database and
# its public schema, bypasses RLS, is no superuser, so it cannot COPY … TO
# PROGRAM, read server files or the server's key. CREATEDB, so a framework's
# test runner and a shadow database work (issue 26): each database it makes is
# hardened like its own (DATABASES_SQL). CREATEROLE only from 16: on 15 a
# CREATEROLE role can grant itself pg_execute_server_program.
OWNER_SQL = """
\\getenv owner BERTH_OWNER
\\getenv owner_password BERTH_OWNER_PASSWORD
SELECT pg_catalog.format('CREATE ROLE %I', :'owner')
 WHERE NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname OPERATOR(pg_catalog.=) :'owner') \\gexec
ALTER ROLE :"owner" WITH LOGIN NOSUPERUSER CREATEDB NOREPLICATION BYPASSRLS PASSWORD :'owner_password';
SELECT pg_catalog.current_setting('server_version_num')::int OPERATOR(pg_catalog.>=) 160000 AS createrole_is_safe \\gset
\\if :createrole_is_safe
ALTER ROLE :"owner" CREATEROLE;
\\else
ALTER ROLE :"owner" NOCREATEROLE;
\\endif
SELECT pg_catalog.current_database() AS dbname \\gset
ALTER DATABASE :"dbname" OWNER TO :"owner";
ALTER SCHEMA public OWNER TO :"owner";
"""

# Every other database the owner may use gets the hardening ROLES_SQL gives
# the project's own: the functions its owner makes are nobody's to call until
# granted, and nobody but the owner creates in its schema public. template1
# too, so a database made from it (CREATE DATABASE's default, as Django's and
# Rails' test runners and Prisma's shadow database do) is born hardened; one
# made from template0 is hardened at the next start. psql cannot loop over
# \\connect, so the SQL writes a script of one block per database and runs it
# (/tmp is the db container's own), then connects back; each \\connect keeps
# the session's pinned options (PGOPTIONS). Best effort per database, errors
# shown but not fatal: a scratch database a test runner drops while this runs
# must not fail the start, and the next start hardens what this one missed.
DATABASES_SQL = """
\\getenv owner BERTH_OWNER
SELECT pg_catalog.current_database() AS berth_home \\gset
\\pset tuples_only on
\\pset format unaligned
\\o /tmp/berth-databases.sql
SELECT pg_catalog.format(E'\\\\connect %s\\n%s', pg_catalog.quote_ident(d.datname), pg_catalog.format($sql$
ALTER DEFAULT PRIVILEGES FOR ROLE %I REVOKE EXECUTE ON FUNCTIONS FROM PUBLIC;
DO $do$ BEGIN
  IF EXISTS (SELECT FROM pg_catalog.pg_namespace WHERE nspname OPERATOR(pg_catalog.=) 'public') THEN
    REVOKE CREATE ON SCHEMA public FROM PUBLIC;
  END IF;
END $do$;$sql$, :'owner'))
  FROM pg_catalog.pg_database d
 WHERE d.datallowconn AND d.datname OPERATOR(pg_catalog.<>) ALL (ARRAY[:'berth_home', 'postgres']::name[])
   AND (NOT d.datistemplate OR d.datname OPERATOR(pg_catalog.=) 'template1')
 ORDER BY d.datname;
\\o
\\set ON_ERROR_STOP 0
\\i /tmp/berth-databases.sql
\\set ON_ERROR_STOP 1
\\! rm -f /tmp/berth-databases.sql
\\connect :"berth_home"
"""

# The metrics sampler's role (sessions.MONITOR_USER): reads the server's
# statistics through pg_monitor, owns nothing, is no superuser, and its
# sessions pin their search_path (probes.db_stats) like Berth's others. Made on
# every kind of project; its role-level settings are cleared on every start.
MONITOR_SQL = f"""
\\getenv monitor_password BERTH_MONITOR_PASSWORD
SELECT 'CREATE ROLE {MONITOR_USER}'
 WHERE NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname OPERATOR(pg_catalog.=) '{MONITOR_USER}') \\gexec
ALTER ROLE {MONITOR_USER} WITH LOGIN INHERIT NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS
  PASSWORD :'monitor_password';
ALTER ROLE {MONITOR_USER} RESET ALL;
GRANT pg_monitor TO {MONITOR_USER};
SELECT pg_catalog.current_database() AS dbname \\gset
GRANT CONNECT ON DATABASE :"dbname" TO {MONITOR_USER};
"""


# The heal, first thing on every start of a project of the new kind: only
# Berth's own superuser (the session's user, the image's bootstrap role, OID
# 10) is one, and no role of the tenant's holds Berth's roles or the server's
# predefined ones (pg_execute_server_program, pg_read_server_files,
# pg_write_server_files, pg_read_all_data…): a tenant that once got a
# superuser's session (issue 22) keeps nothing from it. Each repair is printed
# (HEALED_MARKER) before it is made. From 16 a membership is one grant per
# grantor: each is revoked by name, CASCADE taking what was granted on from it.
_GRANTS_HELD = f"""
  FROM pg_catalog.pg_auth_members a
  JOIN pg_catalog.pg_roles g ON g.oid OPERATOR(pg_catalog.=) a.roleid
  JOIN pg_catalog.pg_roles m ON m.oid OPERATOR(pg_catalog.=) a.member
 WHERE (g.rolname OPERATOR(pg_catalog.=) ANY (ARRAY[CURRENT_USER, '{MONITOR_USER}']::name[])
        OR g.rolname OPERATOR(pg_catalog.~) '^pg_')
   AND m.rolname OPERATOR(pg_catalog.<>) ALL (ARRAY[CURRENT_USER, '{MONITOR_USER}']::name[])
   AND m.rolname OPERATOR(pg_catalog.!~) '^pg_'"""
_SUPERUSERS = """
  FROM pg_catalog.pg_roles r
 WHERE r.rolsuper AND r.oid OPERATOR(pg_catalog.<>) 10::pg_catalog.oid AND r.rolname OPERATOR(pg_catalog.<>) CURRENT_USER"""
HEAL_SQL = f"""
\\pset tuples_only on
\\pset format unaligned
SELECT pg_catalog.format('{HEALED_MARKER}superuser_demoted role %I was a superuser: it is not any more', r.rolname) {_SUPERUSERS};
SELECT pg_catalog.format('ALTER ROLE %I NOSUPERUSER', r.rolname) {_SUPERUSERS} \\gexec
SELECT DISTINCT pg_catalog.format('{HEALED_MARKER}role_revoked role %I was granted %I: revoked', m.rolname, g.rolname) {_GRANTS_HELD};
SELECT CASE WHEN pg_catalog.current_setting('server_version_num')::int OPERATOR(pg_catalog.>=) 160000
            THEN pg_catalog.format('REVOKE %I FROM %I GRANTED BY %I CASCADE', g.rolname, m.rolname, pg_catalog.pg_get_userbyid(a.grantor))
            ELSE pg_catalog.format('REVOKE %I FROM %I CASCADE', g.rolname, m.rolname) END {_GRANTS_HELD} \\gexec
"""

# PostgREST caches the schema; an event trigger tells it to reload after any
# DDL, so a table a user creates appears in the API without a restart. It lives
# in its own schema so it is never exposed as an RPC.
POSTGREST_RELOAD_SQL = """
CREATE SCHEMA IF NOT EXISTS berth;
CREATE OR REPLACE FUNCTION berth.pgrst_reload() RETURNS event_trigger
  LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$ BEGIN NOTIFY pgrst, 'reload schema'; END; $$;
DROP EVENT TRIGGER IF EXISTS berth_pgrst_reload;
CREATE EVENT TRIGGER berth_pgrst_reload ON ddl_command_end EXECUTE PROCEDURE berth.pgrst_reload();
"""


# pg_cron, where the image preloads it for this database (Berth's own images do:
# images/postgres/docker-entrypoint.sh; an image without it, or an older build,
# gets nothing here). It cannot be a trusted extension (its launcher and its
# schema are the server's), so the superuser makes it on every start, and the
# owner gets the schema: cron.schedule is PUBLIC's to call and records the
# caller as the job's user (only a superuser may name another), and every job
# runs in a background worker as that user, never as a superuser.
CRON_SQL = """
SELECT COALESCE('pg_cron' OPERATOR(pg_catalog.=) ANY (pg_catalog.string_to_array(
         pg_catalog.replace(pg_catalog.current_setting('shared_preload_libraries'), ' ', ''), ','))
   AND pg_catalog.current_setting('cron.database_name', true) OPERATOR(pg_catalog.=) pg_catalog.current_database(), false)
   AS cron_here \\gset
\\if :cron_here
SELECT 'CREATE EXTENSION pg_cron'
 WHERE NOT EXISTS (SELECT FROM pg_catalog.pg_extension WHERE extname OPERATOR(pg_catalog.=) 'pg_cron') \\gexec
GRANT USAGE ON SCHEMA cron TO :"owner";
\\endif
"""


# On a project of the new kind no pg_cron job runs as a superuser: a restore
# carries the jobs of its dump (services/backups/dumps.py), and a dump of a
# project of the old kind, whose owner was one, may hold such a job.
CRON_HEAL_SQL = f"""
\\if :cron_here
SELECT pg_catalog.format('{HEALED_MARKER}cron_job_unscheduled job %s would run as the superuser %I: unscheduled', j.jobid, j.username)
  FROM cron.job j JOIN pg_catalog.pg_roles r ON r.rolname OPERATOR(pg_catalog.=) j.username WHERE r.rolsuper;
DELETE FROM cron.job j USING pg_catalog.pg_roles r WHERE r.rolname OPERATOR(pg_catalog.=) j.username AND r.rolsuper;
\\endif
"""


def project_labels(project_id: str) -> dict[str, str]:
    return {**settings.BERTH_EXTRA_LABELS, MANAGED_LABEL: "true", PROJECT_LABEL: project_id, INSTALL_LABEL: installation_id()}


def postgres_settings() -> dict[str, str]:
    return {**POSTGRES_SETTINGS, **settings.BERTH_POSTGRES_SETTINGS}


def project_postgres_settings(project: "Project") -> dict[str, str]:
    """The settings the project's server runs with: its own (pgconf's allowlist) over Berth's."""
    return {**postgres_settings(), **project.postgres_settings}


def settings_sql(values: dict[str, str]) -> str:
    """ALTER SYSTEM for every changeable setting: reloadable ones set to `values` (or reset), restart-only ones
    reset (they ride on the command line, which overrides the file). Needs a reload to apply."""
    lines = []
    for name in sorted(RELOAD_SETTINGS):
        if name in values:
            literal = values[name].replace("'", "''")
            lines.append(f"ALTER SYSTEM SET {name} = '{literal}';")
        else:
            lines.append(f"ALTER SYSTEM RESET {name};")
    lines += [f"ALTER SYSTEM RESET {name};" for name in sorted(RESTART_SETTINGS)]
    return "\n".join(lines) + "\n"


def internal_db_uri(project: "Project", *, user: str, password: str | None) -> str:
    """A URI for the api container: the db by container name over the project network; without a password for pgpass."""
    names = object_names(project.public_id)
    secret = "" if password is None else f":{quote(password, safe='')}"
    uri = f"postgres://{quote(user, safe='')}{secret}@{names['db']}:{DB_PORT}/{quote(project.db_name, safe='')}"
    if settings.BERTH_DB_REQUIRE_TLS and project.tls_cert_pem:
        # Encrypted on the project's own network too (hostssl only). libpq's
        # `require`; node-postgres reads it as verify-full unless told libpq's meaning.
        uri += "?sslmode=require" + ("&uselibpqcompat=true" if project.api_flavour == "postgraphile" else "")
    return uri


# Where the db's TLS files and its client authentication rules go: copied in
# by the runtime (FileSpec), owned by the postgres user, mode 0600.
TLS_DIR = "/etc/berth"
POSTGRES_UID = 999  # the official images' postgres user


def pg_hba(*, require_tls: bool) -> str:
    """Every connection authenticates with a password (SCRAM); from outside the container only over TLS when required."""
    rules = [
        "local   all  all                scram-sha-256",
        "host    all  all  127.0.0.1/32  scram-sha-256",
        "host    all  all  ::1/128       scram-sha-256",
        "hostssl all  all  all           scram-sha-256",
    ]
    if not require_tls:
        rules.append("host    all  all  all           scram-sha-256")
    return "\n".join(rules) + "\n"


def db_files(project: "Project") -> tuple[tuple[FileSpec, ...], list[str]]:
    """The db's TLS files and the settings that use them; none before the project has a certificate."""
    if not project.tls_cert_pem:
        return (), []
    def owned(name: str, content: str) -> FileSpec:
        return FileSpec(path=f"{TLS_DIR}/{name}", content=content.encode(), uid=POSTGRES_UID, gid=POSTGRES_UID)
    files = (
        owned("server.crt", project.tls_cert_pem),
        owned("server.key", project.tls_key),
        owned("pg_hba.conf", pg_hba(require_tls=settings.BERTH_DB_REQUIRE_TLS)),
    )
    options = {
        "ssl": "on",
        "ssl_cert_file": f"{TLS_DIR}/server.crt",
        "ssl_key_file": f"{TLS_DIR}/server.key",
        "hba_file": f"{TLS_DIR}/pg_hba.conf",
    }
    return files, [arg for k, v in options.items() for arg in ("-c", f"{k}={v}")]


def postgres_command() -> list[str]:
    """The server's command without TLS (backup throwaways: no published port, no certificate)."""
    return ["postgres", *(arg for k, v in postgres_settings().items() for arg in ("-c", f"{k}={v}"))]


def project_postgres_command(project: "Project") -> list[str]:
    """The project's server command: every setting but the reloadable ones, which the bootstrap writes (settings_sql)."""
    values = project_postgres_settings(project)
    return ["postgres", *(arg for k, v in values.items() if k not in RELOAD_SETTINGS for arg in ("-c", f"{k}={v}"))]


def pgpass_line(host: str, port: int, dbname: str, user: str, password: str) -> str:
    def escape(value: str) -> str:
        return value.replace("\\", "\\\\").replace(":", "\\:")

    return ":".join(escape(v) for v in (host, str(port), dbname, user, password)) + "\n"


def probe_host() -> str:
    # Berth reaches published ports on loopback whenever they are published on
    # all interfaces; otherwise on the address they are bound to.
    host = settings.BERTH_PUBLISH_HOST
    return "127.0.0.1" if host in {"0.0.0.0", "::", ""} else host


# The postgres entrypoint starts as root to chown the data directory and
# /var/run/postgresql, then drops to the postgres user with gosu: these four
# are all it needs (measured on the official images, 15 and 17). The api
# images run as an unprivileged user and need none.
DB_CAPABILITIES = ("CHOWN", "FOWNER", "SETGID", "SETUID")

# Read-only roots (ContainerSpec.read_only): what each container still writes.
# The db: its socket directory (and /run, where it lives) in memory; its TLS
# files and /tmp on volumes of its own: the files are copied in, and a restore
# copies the dump into /tmp (backup_engine), which must not fill its memory.
DB_TMPFS = ("/run", "/var/run/postgresql")
DB_OWN_VOLUMES = (TLS_DIR, "/tmp")
# The api: /tmp in memory; PostGraphile's working directory, where its rc file
# and pgpass are copied, on a volume of its own.
API_TMPFS = ("/tmp",)


def db_confinement() -> Confinement:
    return Confinement(
        cap_add=DB_CAPABILITIES,
        pids_limit=settings.BERTH_DB_PIDS_LIMIT,
        cpus=settings.BERTH_DB_CPUS,
        log_max_size=settings.BERTH_LOG_MAX_SIZE,
        log_max_file=settings.BERTH_LOG_MAX_FILE,
    )


def api_confinement() -> Confinement:
    return Confinement(
        pids_limit=settings.BERTH_API_PIDS_LIMIT,
        cpus=settings.BERTH_API_CPUS,
        log_max_size=settings.BERTH_LOG_MAX_SIZE,
        log_max_file=settings.BERTH_LOG_MAX_FILE,
    )


def bootstrap(project: "Project") -> tuple[str, dict[str, str]]:
    """The SQL that makes the project's roles, and the environment it reads its secrets from."""
    env = {
        # Loopback TCP, not the socket: while a new server initialises, its
        # temporary server answers on the socket only. Pinned (sessions.py):
        # no name in this SQL resolves through the tenant's search_path.
        **admin_session_env(
            host="127.0.0.1", port=DB_PORT, user=project.admin_user, password=project.admin_password, dbname=project.db_name
        ),
        "BERTH_OWNER": project.db_user,
        "BERTH_AUTHENTICATOR_PASSWORD": project.authenticator_password,
        "BERTH_MONITOR_PASSWORD": project.monitor_password if project.monitor_password_encrypted else "",
    }
    sql = ROLES_SQL + MONITOR_SQL
    if not project.owner_is_superuser:
        # The heal first, so that it sees (and reports) what OWNER_SQL would
        # otherwise repair silently. Not on the old kind: its owner is the
        # superuser by design (DESIGN.md, "Roles").
        sql = HEAL_SQL + OWNER_SQL + sql + DATABASES_SQL
        env["BERTH_OWNER_PASSWORD"] = project.db_password
    sql += CRON_SQL
    if not project.owner_is_superuser:
        sql += CRON_HEAL_SQL
    if project.api_flavour == "postgrest":
        sql += POSTGREST_RELOAD_SQL
    # The project's reloadable settings, then a reload: they, and a renewed
    # certificate (copied in before this runs), take effect without a restart.
    sql += settings_sql(project_postgres_settings(project))
    sql += "SELECT pg_catalog.pg_reload_conf();\n"
    return sql, env


def project_volume(project: "Project") -> str:
    """The data volume the project's stack mounts (the plain one, or the one its last upgrade made)."""
    return data_volume_name(project.public_id, project.volume_version)


def kept_volume(project: "Project") -> str | None:
    """The volume an upgrade kept for a rollback, if any."""
    return data_volume_name(project.public_id, project.kept_volume_version) if project.kept_postgres_version else None


def api_probe(flavour: str) -> ApiProbe:
    """The request that proves the api answers: a GraphQL query for PostGraphile, the root for PostgREST."""
    if flavour == "postgraphile":
        return ApiProbe(
            path="/graphql", method="POST", body=b'{"query":"{__typename}"}', content_type="application/json",
            ready_sql=watching_sql(),
        )  # fmt: skip
    return ApiProbe(path="/")


def sample_target(project: "Project") -> SampleTarget:
    """What metrics read of a running project (cheap: no certificate, no bootstrap SQL)."""
    if project.db_port is None or project.api_port is None:
        raise ValueError(f"project {project.public_id} has no ports: a purged project has no stack")
    names = object_names(project.public_id)
    return SampleTarget(
        project_id=project.public_id,
        db_container=names["db"],
        api_container=names["api"],
        # Berth's monitoring role, never the superuser: the sampler's query runs on
        # a server whose objects are the tenant's (sessions.py). Without its
        # password yet (a row older than the role), no database numbers are read.
        db_probe=DbProbe(
            host=probe_host(), port=project.db_port, user=MONITOR_USER,
            password=project.monitor_password if project.monitor_password_encrypted else "", dbname=project.db_name,
        ),  # fmt: skip
        api_port=project.api_port,
        api_probe=api_probe(project.api_flavour),
    )


def stack_spec(project: "Project") -> StackSpec:
    pid = project.public_id
    # Only a purged project has no ports, and a purged project has no stack.
    if project.db_port is None or project.api_port is None:
        raise ValueError(f"project {pid} has no ports: a purged project has no stack")
    db_port, api_port_host = project.db_port, project.api_port
    names = object_names(pid, volume_version=project.volume_version)
    labels = project_labels(pid)
    tls_files, tls_options = db_files(project)
    db = ContainerSpec(
        name=names["db"],
        service="db",
        image=postgres_image(project.postgres_version),
        environment={
            # The server's bootstrap superuser: Berth's own role, or the owner
            # on projects of the old kind.
            "POSTGRES_USER": project.admin_user,
            "POSTGRES_PASSWORD": project.admin_password,
            "POSTGRES_DB": project.db_name,
            "PGDATA": PGDATA,
        },
        command=[*project_postgres_command(project), *tls_options],
        container_port=DB_PORT,
        host_port=db_port,
        publish_host=settings.BERTH_PUBLISH_HOST,
        labels={**labels, SERVICE_LABEL: "db"},
        mem_limit=project.db_memory or settings.BERTH_DB_MEMORY,
        # The image declares VOLUME here: mounting the project's volume at this
        # exact path is what keeps an anonymous volume from being left behind.
        volume_mount=PGDATA,
        # -h 127.0.0.1: during initdb the entrypoint's temporary server listens
        # on the socket only, so a TCP check is not fooled by it.
        healthcheck=HealthCheck(
            test=["CMD", "pg_isready", "-h", "127.0.0.1", "-p", str(DB_PORT), "-U", project.db_user, "-d", project.db_name]
        ),
        stop_timeout_s=10,
        confinement=db_confinement(),
        files=tls_files,
        read_only=True,
        tmpfs=DB_TMPFS,
        own_volumes=DB_OWN_VOLUMES,
    )
    authenticator_uri = internal_db_uri(project, user=AUTHENTICATOR_ROLE, password=project.authenticator_password)
    if project.api_flavour == "postgraphile":
        api_port = POSTGRAPHILE_PORT
        parts = postgraphile_api(
            authenticator_uri=authenticator_uri,
            owner_uri=pinned_uri(internal_db_uri(project, user=project.admin_user, password=None)),
            owner_pgpass=pgpass_line(names["db"], DB_PORT, project.db_name, project.admin_user, project.admin_password),
            jwt_secret=project.jwt_secret, anon_role=ANON_ROLE, service_role=SERVICE_ROLE, audience=JWT_AUDIENCE, graphiql=settings.BERTH_GRAPHIQL,
        )  # fmt: skip
        environment: dict[str, str] = parts.environment
        files: tuple[FileSpec, ...] = parts.files
        command: list[str] | None = parts.command
        working_dir: str | None = POSTGRAPHILE_DIR
        probe = api_probe(project.api_flavour)
    else:
        api_port = POSTGREST_PORT
        environment = {
            "PGRST_DB_URI": authenticator_uri,
            "PGRST_DB_SCHEMAS": "public",
            "PGRST_DB_ANON_ROLE": ANON_ROLE,
            "PGRST_JWT_SECRET": project.jwt_secret,
            "PGRST_JWT_AUD": JWT_AUDIENCE,
            "PGRST_SERVER_PORT": str(POSTGREST_PORT),
            "PGRST_DB_CHANNEL_ENABLED": "true",
        }
        files = ()
        command = None
        working_dir = None
        probe = api_probe(project.api_flavour)
    api = ContainerSpec(
        name=names["api"],
        service="api",
        image=api_image(project.api_flavour),
        environment=environment,
        command=command,
        container_port=api_port,
        host_port=api_port_host,
        publish_host=settings.BERTH_PUBLISH_HOST,
        labels={**labels, SERVICE_LABEL: "api"},
        mem_limit=project.api_memory or settings.BERTH_API_MEMORY,
        stop_timeout_s=5,
        confinement=api_confinement(),
        files=files,
        working_dir=working_dir,
        read_only=True,
        tmpfs=API_TMPFS,
        own_volumes=(working_dir,) if working_dir else (),
    )
    bootstrap_sql, bootstrap_env = bootstrap(project)
    return StackSpec(
        project_id=pid,
        network=names["network"],
        volume=names["volume"],
        labels=labels,
        db=db,
        api=api,
        db_probe=DbProbe(
            host=probe_host(),
            port=db_port,
            user=project.db_user,
            password=project.db_password,
            dbname=project.db_name,
            bootstrap_sql=bootstrap_sql,
            bootstrap_env=bootstrap_env,
        ),
        api_probe=probe,
        subnet=project.network_subnet or "",
        node=project.node,
    )
