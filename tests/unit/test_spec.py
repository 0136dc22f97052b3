from urllib.parse import parse_qs, quote, unquote, urlsplit

import pytest

from projects.models import Project
from projects.runtime.base import BOOTSTRAP_ARGV, MANAGED_LABEL, PROJECT_LABEL, SERVICE_LABEL
from projects.runtime import probes
from projects.stack.spec import sample_target, stack_spec

# The spec reads the installation id (berth.install) from Berth's database.
pytestmark = pytest.mark.django_db

ADMIN_PASSWORD = "adm1n:pass\\word"
AUTHENTICATOR_PASSWORD = "auth/enticator:pw@"


def make_project(api="postgrest", version="17", password="s3cret/with:odd@chars%", *, old_kind=False) -> Project:
    project = Project(public_id="0123456789ab", name="demo", postgres_version=version, api_flavour=api, db_port=6201, api_port=7201)
    project.db_password = password
    project.jwt_secret = "j" * 48
    project.authenticator_password = AUTHENTICATOR_PASSWORD
    if not old_kind:
        project.admin_password = ADMIN_PASSWORD
    return project


def secrets_of(project: Project) -> set[str]:
    return {project.db_password, project.jwt_secret, project.authenticator_password, project.admin_password}


def test_stack_objects_are_named_and_labelled_by_project_id():
    spec = stack_spec(make_project())
    assert spec.network == "project_0123456789ab_net"
    assert spec.volume == "project_0123456789ab_data"
    assert spec.db.name == "project_0123456789ab_db"
    assert spec.api.name == "project_0123456789ab_api"
    assert spec.labels[MANAGED_LABEL] == "true" and spec.labels[PROJECT_LABEL] == "0123456789ab"
    assert spec.db.labels[SERVICE_LABEL] == "db" and spec.api.labels[SERVICE_LABEL] == "api"


def test_db_container_follows_the_postgres_image_contract(settings):
    settings.BERTH_POSTGRES_IMAGES = {"15": "offline/postgres:15", "17": "offline/postgres:17"}
    spec = stack_spec(make_project(version="15"))
    assert spec.db.image == "offline/postgres:15"
    # The server's bootstrap superuser is Berth's own role; the owner (app) is made by the bootstrap.
    assert spec.db.environment["POSTGRES_USER"] == "berth_admin"
    assert spec.db.environment["POSTGRES_DB"] == "app"
    assert spec.db.environment["POSTGRES_PASSWORD"] == ADMIN_PASSWORD
    # The data volume is mounted exactly at PGDATA, or the image's VOLUME leaves an anonymous one.
    assert spec.db.volume_mount == spec.db.environment["PGDATA"] == "/var/lib/postgresql/data"
    assert spec.db.container_port == 5432 and spec.db.host_port == 6201
    assert spec.db.healthcheck.test[:2] == ["CMD", "pg_isready"]
    assert spec.db.command[0] == "postgres" and "shared_buffers=16MB" in spec.db.command


def test_postgres_settings_are_overridable(settings):
    settings.BERTH_POSTGRES_SETTINGS = {"shared_buffers": "128MB"}
    command = stack_spec(make_project()).db.command
    assert "shared_buffers=128MB" in command and "shared_buffers=16MB" not in command


def test_a_projects_own_settings_go_where_they_take_effect():
    project = make_project()
    project.postgres_settings = {"max_connections": "80", "work_mem": "8MB", "timezone": "Europe/Paris"}
    spec = stack_spec(project)
    # Restart-only settings on the command line, over Berth's.
    assert "max_connections=80" in spec.db.command and "max_connections=40" not in spec.db.command
    # Reloadable ones never there (a command line overrides ALTER SYSTEM): the bootstrap writes them, then reloads.
    assert not any(arg.startswith(("work_mem=", "maintenance_work_mem=", "effective_cache_size=", "timezone=")) for arg in spec.db.command)
    sql = spec.db_probe.bootstrap_sql
    assert "ALTER SYSTEM SET work_mem = '8MB';" in sql and "ALTER SYSTEM SET timezone = 'Europe/Paris';" in sql
    assert "ALTER SYSTEM SET maintenance_work_mem = '32MB';" in sql  # Berth's default, now written the same way
    assert "ALTER SYSTEM RESET statement_timeout;" in sql and "ALTER SYSTEM RESET max_connections;" in sql
    assert sql.index("ALTER SYSTEM") < sql.index("SELECT pg_catalog.pg_reload_conf();")


def test_berths_superuser_sessions_run_free_of_the_projects_timeouts_and_statement_logging():
    project = make_project()
    project.postgres_settings = {"statement_timeout": "1ms", "log_statement": "all"}
    options = stack_spec(project).db_probe.bootstrap_env["PGOPTIONS"]
    for option in ("statement_timeout=0", "lock_timeout=0", "idle_in_transaction_session_timeout=0", "log_statement=none", "log_min_duration_statement=-1"):
        assert f"-c {option}" in options


def test_berths_superuser_sessions_pin_search_path_as_a_connection_option_the_tenant_cannot_override():
    # A connection option beats ALTER DATABASE/ROLE … SET search_path (issue 22): pg_catalog first, pg_temp last, no tenant schema.
    for project in (make_project(), make_project(old_kind=True)):
        assert stack_spec(project).db_probe.bootstrap_env["PGOPTIONS"].endswith("-c search_path=pg_catalog,pg_temp")


def test_the_sampler_reads_as_berth_monitor_never_the_superuser():
    project = make_project()
    project.monitor_password = "m0nitor"
    probe = sample_target(project).db_probe
    assert (probe.user, probe.password) == ("berth_monitor", "m0nitor")
    sql = stack_spec(project).db_probe.bootstrap_sql
    assert "ALTER ROLE berth_monitor WITH LOGIN INHERIT NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS" in sql
    assert "GRANT pg_monitor TO berth_monitor;" in sql and "ALTER ROLE berth_monitor RESET ALL;" in sql
    assert stack_spec(project).db_probe.bootstrap_env["BERTH_MONITOR_PASSWORD"] == "m0nitor"
    assert "m0nitor" not in sql


def test_the_bootstrap_heals_a_new_kind_server_first_and_never_an_old_kind_one():
    sql = stack_spec(make_project()).db_probe.bootstrap_sql
    # Before OWNER_SQL's own NOSUPERUSER, so that the heal sees (and reports) an escalated owner.
    assert sql.index("BERTH-HEALED superuser_demoted") < sql.index("ALTER ROLE %I NOSUPERUSER") < sql.index('ALTER ROLE :"owner" WITH LOGIN NOSUPERUSER')
    assert "r.oid OPERATOR(pg_catalog.<>) 10::pg_catalog.oid AND r.rolname OPERATOR(pg_catalog.<>) CURRENT_USER" in sql
    assert "REVOKE %I FROM %I GRANTED BY %I CASCADE" in sql and "g.rolname OPERATOR(pg_catalog.~) '^pg_'" in sql
    assert 'ALTER DEFAULT PRIVILEGES FOR ROLE :"owner" REVOKE EXECUTE ON FUNCTIONS FROM PUBLIC;' in sql
    old = stack_spec(make_project(old_kind=True)).db_probe.bootstrap_sql
    assert "BERTH-HEALED" not in old and "NOSUPERUSER', r.rolname" not in old


def test_a_reloadable_change_leaves_the_db_containers_spec_alone_and_a_restart_one_changes_it():
    project = make_project()
    before = stack_spec(project).db
    project.postgres_settings = {"work_mem": "8MB", "statement_timeout": "5s"}
    assert stack_spec(project).db == before  # the same berth.config digest: no recreate, a reload
    project.postgres_settings = {"shared_buffers": "64MB"}
    assert stack_spec(project).db.command != before.command


def test_a_projects_memory_limits_are_its_own(settings):
    project = make_project()
    project.db_memory, project.api_memory = "1g", "128m"
    spec = stack_spec(project)
    assert (spec.db.mem_limit, spec.api.mem_limit) == ("1g", "128m")


def test_containers_publish_on_the_publish_host_with_memory_limits(settings):
    settings.BERTH_PUBLISH_HOST = "127.0.0.1"
    settings.BERTH_DB_MEMORY, settings.BERTH_API_MEMORY = "300m", "100m"
    spec = stack_spec(make_project())
    assert spec.db.publish_host == spec.api.publish_host == "127.0.0.1"
    assert (spec.db.mem_limit, spec.api.mem_limit) == ("300m", "100m")


def test_postgrest_flavour_is_configured_through_its_environment(settings):
    settings.BERTH_POSTGREST_IMAGE = "postgrest/postgrest:v12.2.8"
    spec = stack_spec(make_project(api="postgrest"))
    env = spec.api.environment
    assert spec.api.image == "postgrest/postgrest:v12.2.8"
    assert spec.api.command is None
    assert env["PGRST_DB_SCHEMAS"] == "public"
    assert env["PGRST_DB_ANON_ROLE"] == "anon"
    assert env["PGRST_JWT_SECRET"] == "j" * 48
    assert env["PGRST_JWT_AUD"] == "berth"
    assert spec.api.container_port == 3000 and spec.api.host_port == 7201
    # DDL tells PostgREST to reload.
    assert "NOTIFY pgrst, 'reload schema'" in spec.db_probe.bootstrap_sql


def test_postgrest_connects_as_authenticator_by_name_with_a_percent_encoded_password():
    uri = urlsplit(stack_spec(make_project()).api.environment["PGRST_DB_URI"])
    assert uri.hostname == "project_0123456789ab_db" and uri.port == 5432
    assert uri.username == "authenticator"
    assert "/" not in uri.password and "@" not in uri.password and ":" not in uri.password
    assert unquote(uri.password) == AUTHENTICATOR_PASSWORD
    assert uri.path == "/app"


def test_postgraphile_flavour_passes_cli_options_as_the_command(settings):
    settings.BERTH_POSTGRAPHILE_IMAGE = "offline/postgraphile:4"
    spec = stack_spec(make_project(api="postgraphile"))
    command = spec.api.command
    assert spec.api.image == "offline/postgraphile:4"
    assert command[command.index("--host") + 1] == "0.0.0.0"
    assert command[command.index("--port") + 1] == "5000" and spec.api.container_port == 5000
    assert command[command.index("--schema") + 1] == "public"
    # Retries come from the rc file in its working directory; the flag would override it.
    assert "--watch" in command and "--retry-on-init-fail" not in command
    assert command[command.index("--default-role") + 1] == "anon"
    assert command[command.index("--jwt-verify-audience") + 1] == "berth"
    assert spec.api_probe.path == "/graphql" and spec.api_probe.method == "POST"
    assert "pgrst" not in spec.db_probe.bootstrap_sql
    # Answering is not enough: ready once the database sees its schema watch (probes._api_ready_in_db).
    assert "listen postgraphile_watch" in spec.api_probe.ready_sql and "postgraphile_watch_ddl" in spec.api_probe.ready_sql
    assert stack_spec(make_project(api="postgrest")).api_probe.ready_sql == ""


class FakeConnection:
    """What _SuperuserSession uses of a psycopg connection: execute(sql).fetchone(), closed, close()."""

    def __init__(self, answers):
        self.answers, self.ran, self.closed = answers, [], False

    def execute(self, sql):
        self.ran.append(sql)
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return type("Cursor", (), {"fetchone": lambda _self: answer})()

    def close(self):
        self.closed = True


def test_the_api_is_ready_only_once_the_database_says_it_waits_for_nothing(monkeypatch):
    spec = stack_spec(make_project(api="postgraphile"))
    connection = FakeConnection([("PostGraphile does not listen for schema changes yet",), ("",)])
    connects = []

    def connect(**kwargs):
        connects.append(kwargs)
        return connection

    monkeypatch.setattr(probes.psycopg, "connect", connect)
    with probes._SuperuserSession(spec) as session:
        with pytest.raises(probes.ProbeFailed, match="^PostGraphile does not listen for schema changes yet$"):
            probes._api_ready_in_db(session, spec)
        probes._api_ready_in_db(session, spec)
    assert connection.ran == [spec.api_probe.ready_sql] * 2 and connection.closed
    # As the superuser the bootstrap runs as, with its session options, on the port db_answers uses; one
    # connection for every poll, in autocommit so each poll reads pg_stat_activity afresh.
    env = spec.db_probe.bootstrap_env
    assert connects == [{
        "host": spec.db_probe.host, "port": spec.db_probe.port, "user": env["PGUSER"], "password": env["PGPASSWORD"],
        "dbname": env["PGDATABASE"], "options": env["PGOPTIONS"], "connect_timeout": 2, "autocommit": True,
    }]  # fmt: skip
    assert env["PGUSER"] == "berth_admin" and env["PGPASSWORD"] == ADMIN_PASSWORD


def test_a_failing_api_check_in_the_database_says_why_and_connects_again(monkeypatch):
    spec = stack_spec(make_project(api="postgraphile"))
    first, second = FakeConnection([probes.psycopg.OperationalError("server closed the connection unexpectedly")]), FakeConnection([("",)])
    connections = [first, second]
    monkeypatch.setattr(probes.psycopg, "connect", lambda **_: connections.pop(0))
    with probes._SuperuserSession(spec) as session:
        with pytest.raises(probes.ProbeFailed, match="^the api's check in the db: server closed the connection unexpectedly$"):
            probes._api_ready_in_db(session, spec)
        assert first.closed
        probes._api_ready_in_db(session, spec)
    assert second.closed and not connections


def test_postgraphile_gets_its_secrets_from_the_environment_and_a_pgpass_never_from_argv():
    project = make_project(api="postgraphile")
    spec = stack_spec(project)
    command = " ".join(spec.api.command)
    for secret in secrets_of(project):
        assert secret not in command and quote(secret, safe="") not in command
    assert "--connection" not in spec.api.command  # DATABASE_URL instead
    env = spec.api.environment
    uri = urlsplit(env["DATABASE_URL"])
    assert (uri.username, unquote(uri.password), uri.hostname) == ("authenticator", AUTHENTICATOR_PASSWORD, "project_0123456789ab_db")
    assert env["JWT_SECRET"] == "j" * 48
    # The owner connection (Berth's superuser, for --watch only) has no password in its URI: it comes from the pgpass.
    owner = urlsplit(spec.api.command[spec.api.command.index("--owner-connection") + 1])
    assert (owner.username, owner.password, owner.hostname) == ("berth_admin", None, "project_0123456789ab_db")
    # …and pins its search_path: the database's is the tenant's (runtime/sessions.py).
    assert parse_qs(owner.query)["options"] == ["-c search_path=pg_catalog,pg_temp"]
    pgpass = next(f for f in spec.api.files if f.path == env["PGPASSFILE"])
    assert (pgpass.mode, pgpass.uid) == (0o600, 1000)  # the image's node user, or pg ignores the file
    assert pgpass.content == b"project_0123456789ab_db:5432:app:berth_admin:adm1n\\:pass\\\\word\n"
    assert "adm1n" not in repr(pgpass)


def test_postgraphile_retries_its_first_connection_every_100_ms_from_an_rc_file_in_its_working_directory():
    spec = stack_spec(make_project(api="postgraphile"))
    rc = next(f for f in spec.api.files if f.path.endswith("/.postgraphilerc.js"))
    # The CLI reads .postgraphilerc.js from its working directory, as the node user.
    assert spec.api.working_dir is not None and rc.path == f"{spec.api.working_dir}/.postgraphilerc.js"
    assert rc.uid == 1000 and rc.mode == 0o400
    assert b"retryOnInitFail" in rc.content and b"attempts <= 50 ? 100 : 2000" in rc.content
    # The flag would override the rc file's function with PostGraphile's own 100·n² ms backoff.
    assert "--retry-on-init-fail" not in spec.api.command


def test_postgrest_keeps_its_image_working_directory():
    assert stack_spec(make_project(api="postgrest")).api.working_dir is None


def test_no_secret_is_on_any_command_line_or_in_the_healthcheck():
    for api in ("postgrest", "postgraphile"):
        project = make_project(api=api)
        spec = stack_spec(project)
        argv = " ".join([*spec.db.command, *(spec.api.command or []), *spec.db.healthcheck.test, *BOOTSTRAP_ARGV])
        for secret in secrets_of(project):
            assert secret not in argv and quote(secret, safe="") not in argv


def test_bootstrap_reads_its_secrets_from_the_environment_as_the_superuser():
    project = make_project()
    probe = stack_spec(project).db_probe
    env = probe.bootstrap_env
    assert (env["PGUSER"], env["PGPASSWORD"], env["PGDATABASE"]) == ("berth_admin", ADMIN_PASSWORD, "app")
    assert env["PGHOST"] == "127.0.0.1"  # never the initdb server's socket
    assert env["BERTH_OWNER"] == "app" and env["BERTH_OWNER_PASSWORD"] == project.db_password
    assert env["BERTH_AUTHENTICATOR_PASSWORD"] == AUTHENTICATOR_PASSWORD
    assert "\\getenv owner_password BERTH_OWNER_PASSWORD" in probe.bootstrap_sql
    for secret in secrets_of(project):
        assert secret not in probe.bootstrap_sql
    assert "bootstrap_env" not in repr(probe) and ADMIN_PASSWORD not in repr(probe)
    # The readiness query is the owner's, with the password the user was given.
    assert (probe.user, probe.password) == ("app", project.db_password)


def test_bootstrap_makes_the_owner_no_superuser_a_maker_of_databases_and_createrole_only_from_16():
    sql = stack_spec(make_project()).db_probe.bootstrap_sql
    # CREATEDB: a framework's test runner and a shadow database work (issue 26).
    assert "ALTER ROLE :\"owner\" WITH LOGIN NOSUPERUSER CREATEDB NOREPLICATION BYPASSRLS PASSWORD :'owner_password';" in sql
    assert "server_version_num')::int OPERATOR(pg_catalog.>=) 160000 AS createrole_is_safe" in sql
    assert sql.index("\\if :createrole_is_safe") < sql.index("ALTER ROLE :\"owner\" CREATEROLE;") < sql.index("\\else")
    assert "ALTER ROLE :\"owner\" NOCREATEROLE;" in sql
    assert 'ALTER DATABASE :"dbname" OWNER TO :"owner";' in sql
    assert 'ALTER SCHEMA public OWNER TO :"owner";' in sql


def test_every_other_database_and_template1_get_the_owners_hardening_at_each_start():
    sql = stack_spec(make_project()).db_probe.bootstrap_sql
    hardening = sql[sql.index("\\o /tmp/berth-databases.sql") :]
    # One block per database but the project's own and the server's: template1, so new ones are born hardened.
    assert "ARRAY[:'berth_home', 'postgres']::name[]" in hardening and "d.datname OPERATOR(pg_catalog.=) 'template1'" in hardening
    assert "ALTER DEFAULT PRIVILEGES FOR ROLE %I REVOKE EXECUTE ON FUNCTIONS FROM PUBLIC;" in hardening
    assert "REVOKE CREATE ON SCHEMA public FROM PUBLIC;" in hardening
    # A database dropped meanwhile does not fail the start; the session ends where it began.
    assert hardening.index("\\set ON_ERROR_STOP 0") < hardening.index("\\i /tmp/berth-databases.sql") < hardening.index("\\set ON_ERROR_STOP 1")
    assert hardening.index("\\set ON_ERROR_STOP 1") < hardening.index('\\connect :"berth_home"') < hardening.index("pg_reload_conf()")
    # Not for a project of the old kind, whose owner is the superuser.
    assert "berth-databases.sql" not in stack_spec(make_project(old_kind=True)).db_probe.bootstrap_sql


def test_bootstrap_makes_anon_service_and_authenticator_with_least_privilege():
    sql = stack_spec(make_project()).db_probe.bootstrap_sql
    assert "ALTER ROLE anon WITH NOLOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOBYPASSRLS;" in sql
    assert "ALTER ROLE service WITH NOLOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE BYPASSRLS;" in sql
    assert "ALTER ROLE authenticator WITH LOGIN NOINHERIT NOSUPERUSER NOCREATEDB NOCREATEROLE NOBYPASSRLS" in sql
    assert "GRANT anon, service TO authenticator;" in sql
    # Any other membership of authenticator is revoked.
    assert "r.rolname OPERATOR(pg_catalog.<>) ALL (ARRAY['anon', 'service']::name[]) \\gexec" in sql
    assert "GRANT USAGE ON SCHEMA public TO anon, service;" in sql
    # anon gets nothing on tables; service full DML, on tables made later too.
    assert "TO anon" not in sql.replace("TO anon, service", "")
    assert "GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO service;" in sql
    assert 'ALTER DEFAULT PRIVILEGES FOR ROLE :"owner" IN SCHEMA public GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO service;' in sql
    assert 'ALTER DEFAULT PRIVILEGES FOR ROLE :"owner" IN SCHEMA public GRANT USAGE, SELECT, UPDATE ON SEQUENCES TO service;' in sql
    assert 'ALTER DEFAULT PRIVILEGES FOR ROLE :"owner" IN SCHEMA public GRANT EXECUTE ON ROUTINES TO service;' in sql


def test_a_project_of_the_old_kind_keeps_its_owner_as_the_superuser_but_gets_the_api_roles():
    project = make_project(old_kind=True)
    assert project.owner_is_superuser
    spec = stack_spec(project)
    assert spec.db.environment["POSTGRES_USER"] == "app"
    assert spec.db.environment["POSTGRES_PASSWORD"] == project.db_password
    env = spec.db_probe.bootstrap_env
    assert (env["PGUSER"], env["PGPASSWORD"]) == ("app", project.db_password)
    assert "BERTH_OWNER_PASSWORD" not in env
    assert "NOSUPERUSER" not in spec.db_probe.bootstrap_sql.split("ALTER ROLE anon")[0]  # the owner is left as it is
    assert "GRANT anon, service TO authenticator;" in spec.db_probe.bootstrap_sql
    assert urlsplit(spec.api.environment["PGRST_DB_URI"]).username == "authenticator"


def test_every_container_is_confined(settings):
    settings.BERTH_DB_CPUS, settings.BERTH_API_CPUS = 1.5, 0.5
    settings.BERTH_DB_PIDS_LIMIT, settings.BERTH_API_PIDS_LIMIT = 300, 100
    settings.BERTH_LOG_MAX_SIZE, settings.BERTH_LOG_MAX_FILE = "5m", 2
    spec = stack_spec(make_project(api="postgraphile"))
    db, api = spec.db.confinement, spec.api.confinement
    # Capabilities: the postgres entrypoint's chown/chmod and gosu, nothing else; the api none.
    assert db.cap_add == ("CHOWN", "FOWNER", "SETGID", "SETUID") and api.cap_add == ()
    assert (db.cpus, api.cpus, db.pids_limit, api.pids_limit) == (1.5, 0.5, 300, 100)
    assert db.no_new_privileges and api.no_new_privileges
    assert (db.log_max_size, db.log_max_file, api.log_max_size, api.log_max_file) == ("5m", 2, "5m", 2)


@pytest.mark.parametrize("publish, probe", [("127.0.0.1", "127.0.0.1"), ("0.0.0.0", "127.0.0.1")])
def test_readiness_probes_go_to_loopback_when_published_on_all_interfaces(settings, publish, probe):
    settings.BERTH_PUBLISH_HOST = publish
    assert stack_spec(make_project()).db_probe.host == probe


def test_postgraphile_respects_rbac_and_serves_no_graphiql_by_default():
    spec = stack_spec(make_project(api="postgraphile"))
    # The schema shows only what a role the api may become was granted (ignoreRBAC: false).
    assert "--no-ignore-rbac" in spec.api.command
    assert "--disable-graphiql" in spec.api.command and "--enhance-graphiql" not in spec.api.command
    assert not any(f.path.endswith("graphiql-offline.js") for f in spec.api.files)


def test_anonymous_requests_get_a_postgraphile_schema_built_as_anon():
    """PostGraphile 4's one schema covers every role its login may become: anonymous callers get their own."""
    spec = stack_spec(make_project(api="postgraphile"))
    files = {f.path: f for f in spec.api.files}
    plugin = files["/run/berth/anon-schema.js"]
    # Named in the rc file, so the CLI loads it; read-only, the image's node user's.
    assert b'plugins: ["/run/berth/anon-schema.js"]' in files["/run/berth/.postgraphilerc.js"].content
    assert (plugin.mode, plugin.uid) == (0o400, 1000) and b"cli:server:middleware" in plugin.content
    env = spec.api.environment
    # One login for both instances, each one's sessions started as its role: introspection's current_user.
    keyed, anon = urlsplit(env["DATABASE_URL"]), urlsplit(env["BERTH_ANON_DATABASE_URL"])
    assert (anon.username, anon.password, anon.hostname, anon.path) == (keyed.username, keyed.password, keyed.hostname, keyed.path)
    assert anon.username == "authenticator" and parse_qs(anon.query)["options"] == ["-c role=anon"]
    assert parse_qs(keyed.query)["options"] == ["-c role=service"]
    # Nothing secret on the command line; both instances' sessions bounded (6 + 6 of the db's 40).
    assert "--max-pool-size" in spec.api.command and b"max: 6" in plugin.content
    assert not any(secret in arg for arg in spec.api.command for secret in (AUTHENTICATOR_PASSWORD, quote(AUTHENTICATOR_PASSWORD, safe=""), "authenticator"))
    # Readiness waits for both instances to listen for schema changes.
    assert "OPERATOR(pg_catalog.<) 2" in spec.api_probe.ready_sql


def test_graphiql_when_an_operator_turns_it_on_loads_nothing_from_elsewhere(settings):
    settings.BERTH_GRAPHIQL = True
    spec = stack_spec(make_project(api="postgraphile"))
    assert "--disable-graphiql" not in spec.api.command and "--no-ignore-rbac" in spec.api.command
    plugin = next(f for f in spec.api.files if f.path.endswith("/graphiql-offline.js"))
    rc = next(f for f in spec.api.files if f.path.endswith("/.postgraphilerc.js"))
    # The CLI loads server plugins named in its rc file; this one strips the page's CDN script tags.
    assert f'plugins: ["/run/berth/anon-schema.js", "{plugin.path}"]'.encode() in rc.content and b"retryOnInitFail" in rc.content
    assert b"postgraphile:graphiql:html" in plugin.content and plugin.uid == 1000


@pytest.mark.parametrize("api", ["postgrest", "postgraphile"])
def test_the_stacks_roots_are_read_only_and_every_file_lands_on_a_volume_of_its_own(api):
    from projects.runtime.base import copy_root

    spec = stack_spec(make_project(api=api))
    for c in spec.containers:
        assert c.read_only and "/tmp" in (*c.tmpfs, *c.own_volumes), c.name
        for f in c.files:
            assert copy_root(c, f.path) in c.own_volumes, f.path  # a copy onto the read-only root is refused
    # The db's socket directory in memory; a restore's dump goes to /tmp, on disk (not into its memory).
    assert "/var/run/postgresql" in spec.db.tmpfs and "/tmp" in spec.db.own_volumes
    assert copy_root(spec.db, "/tmp/berth-restore-0123456789ab.dump") == "/tmp"
    assert copy_root(spec.db, "/var/lib/postgresql/data/x") == spec.db.volume_mount
    assert copy_root(spec.db, "/etc/passwd") is None and copy_root(spec.db, "/run/x") is None


def test_the_bootstrap_makes_pg_cron_only_where_the_image_preloads_it_for_this_database_and_gives_the_owner_its_schema():
    for project in (make_project(), make_project(old_kind=True)):
        sql = stack_spec(project).db_probe.bootstrap_sql
        # The image decides (images/postgres/docker-entrypoint.sh): a server without pg_cron gets nothing.
        assert "pg_catalog.current_setting('shared_preload_libraries')" in sql
        assert "pg_catalog.current_setting('cron.database_name', true) OPERATOR(pg_catalog.=) pg_catalog.current_database(), false)" in sql
        start = sql.index("\\if :cron_here")
        assert start < sql.index("SELECT 'CREATE EXTENSION pg_cron'") < sql.index('GRANT USAGE ON SCHEMA cron TO :"owner";') < sql.index("\\endif", start)


def test_the_command_line_leaves_pg_cron_to_the_image_and_worker_slots_for_its_jobs():
    from projects.stack.spec import postgres_command

    for command in (stack_spec(make_project()).db.command, postgres_command()):
        assert "max_worker_processes=6" in command
        # Naming a library an image lacks would stop the server: Berth's own images preload pg_cron themselves.
        assert not any(arg.startswith("shared_preload_libraries") for arg in command)


def test_on_the_new_kind_the_bootstrap_unschedules_and_reports_any_pg_cron_job_that_would_run_as_a_superuser():
    sql = stack_spec(make_project()).db_probe.bootstrap_sql
    heal = sql.index("BERTH-HEALED cron_job_unscheduled")
    assert sql.index("SELECT 'CREATE EXTENSION pg_cron'") < heal < sql.index(
        "DELETE FROM cron.job j USING pg_catalog.pg_roles r WHERE r.rolname OPERATOR(pg_catalog.=) j.username AND r.rolsuper;"
    )
    # The old kind's owner is a superuser by design: its own jobs are its own.
    assert "cron_job_unscheduled" not in stack_spec(make_project(old_kind=True)).db_probe.bootstrap_sql
