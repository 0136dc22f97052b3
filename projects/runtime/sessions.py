"""Berth's own sessions on a project's server: the one place their connection options are said.

A project's server holds its tenant's objects, and the tenant (`app`, the
database's owner) may set the database's and its own role's `search_path`
(`ALTER DATABASE app SET search_path = evil, pg_catalog, public`), shadow a
pg_catalog function or operator in a schema listed before pg_catalog, and hang
its functions on check constraints, index expressions, defaults, triggers and
event-trigger-visible DDL. A superuser session that resolved a name through
that search_path would run the tenant's function as a superuser (issue 22).

So every session Berth opens pins `search_path` as a *connection option*
(libpq's `options`, PGOPTIONS for psql and pg_restore), which overrides the
database's and the role's settings, where a `SET` sent after connecting would
come too late (the settings apply at connection start) and could be undone by
the very code it guards against. pg_temp is listed last, so the session's own
temporary schema can never shadow a catalog name either. Berth's SQL qualifies
what it names as well (RELIABILITY.md, "Security model").

Nothing here imports Django: runtime/ and services/ both build on it.
"""

from urllib.parse import quote

# What every Berth session resolves names in: the catalog, then its own temp
# schema (last, so nothing there shadows the catalog). No tenant schema.
PINNED_SEARCH_PATH = "pg_catalog,pg_temp"
PINNED_OPTIONS = f"-c search_path={PINNED_SEARCH_PATH}"

# The superuser's sessions (the bootstrap, backups, restores' own steps, the
# settings check, the api's readiness check) also run free of the project's
# settings: its timeouts must not cut them short, and its statement logging
# must not write the bootstrap's ALTER ROLE … PASSWORD to the container's log
# (only a superuser may set the logging ones).
ADMIN_SESSION_OPTIONS = (
    "-c statement_timeout=0 -c lock_timeout=0 -c idle_in_transaction_session_timeout=0 "
    f"-c log_statement=none -c log_min_duration_statement=-1 {PINNED_OPTIONS}"
)

# The owner's session that restores a dump's objects (services/backups/dumps.py):
# the tenant's own code runs there as the tenant. Same timeouts and pinning; the
# logging settings are a superuser's to set, and the statements are the tenant's own.
OWNER_SESSION_OPTIONS = f"-c statement_timeout=0 -c lock_timeout=0 -c idle_in_transaction_session_timeout=0 {PINNED_OPTIONS}"

# What the bootstrap's heal (spec.HEAL_SQL) prints before each repair, followed
# by the repair's kind and a sentence; probes.wait_ready reads them back and
# services/operations/tenant_safety.py records them as the project's security events.
HEALED_MARKER = "BERTH-HEALED "

# The metrics sampler's role: pg_monitor's reading rights, no superuser, no
# object of the tenant's. Made by the bootstrap with its own password.
MONITOR_USER = "berth_monitor"


def admin_session_env(*, host: str, port: int, user: str, password: str, dbname: str) -> dict[str, str]:
    """The environment of psql (or pg_dump, pg_restore) run as the server's superuser: pinned, free of the project's settings.

    The password travels in the environment, never in argv (the engine's
    events and `ps` show argv).
    """
    return {
        "PGHOST": host,
        "PGPORT": str(port),
        "PGUSER": user,
        "PGPASSWORD": password,
        "PGDATABASE": dbname,
        "PGOPTIONS": ADMIN_SESSION_OPTIONS,
    }


def pinned_uri(uri: str) -> str:
    """A postgres:// URI whose sessions resolve names in pg_catalog only (libpq's and node-postgres's `options`)."""
    return f"{uri}{'&' if '?' in uri else '?'}options={quote(PINNED_OPTIONS, safe='')}"
