"""The PostGraphile api container: its command, its files, and the two schemas it serves.

Pure data like the rest of stack/: spec.py hands in the URIs and secrets and
places the result in the project's ContainerSpec.
"""

from dataclasses import dataclass
from urllib.parse import quote

from projects.runtime.base import FileSpec

POSTGRAPHILE_PORT = 5000
API_SCHEMA = "public"
# Where Berth's files live inside the container (copied in, see FileSpec).
# PostGraphile's CLI reads `.postgraphilerc.js` from its working directory;
# the api runs in /run/berth so that it reads this one.
POSTGRAPHILE_DIR = "/run/berth"
PGPASS_PATH = f"{POSTGRAPHILE_DIR}/pgpass"
POSTGRAPHILE_RC_PATH = f"{POSTGRAPHILE_DIR}/.postgraphilerc.js"
POSTGRAPHILE_UID = 1000  # the image's `node` user, which must own its pgpass
# Each of the two instances (below) keeps at most this many sessions: 12 in
# all under the db's 40, where one instance kept PostGraphile's default 10.
POOL_SIZE = 6

# Its `--retry-on-init-fail` waits 100·n² ms after the n-th failure (0.1, 0.4,
# 0.9, 1.6, 2.5 s…): on a create, whose api starts with the db and fails until
# initdb and the bootstrap are done (1–2 s), the retry that succeeds came up to
# 1.5 s after the db was ready (bench/coldpath.py). A function instead retries
# every 100 ms for the first 50 attempts (a create's window), then every 2 s, so
# a database that stays away is not hammered. PostGraphile calls it only with
# the flag absent, and falls back to its own wait if it returns in under 50 ms.
RETRY_ON_INIT_FAIL = "(error, attempts) => new Promise((resolve) => setTimeout(() => resolve(true), attempts <= 50 ? 100 : 2000))"

# PostGraphile 4 builds one schema from every role its login may become
# (graphile-build-pg's introspection walks current_user's memberships): the
# authenticator may become anon and service, and service is granted every
# table, so an anonymous `__schema` would list tables only the service key may
# use. So there are two instances, each of whose sessions start as its role
# (`-c role=…`, so current_user is that role while it introspects): the CLI's
# for the service key, and a second one, made by this server plugin, for anon.
# A request without a key, or with a key whose role is anon or absent, goes to
# anon's; any other key to the service's, which verifies it as before: the
# claim is read unverified only to choose, and a forged key is refused by the
# instance it reaches (a key for a role the login may not become, too). Both watch for schema
# changes; the readiness check waits for both listeners (watching_sql).
# The library is the package of the CLI that loaded this plugin (the official
# image's and Berth's alike), found from the CLI's own file.
ANON_SCHEMA_PLUGIN_PATH = f"{POSTGRAPHILE_DIR}/anon-schema.js"
ANON_SCHEMA_PLUGIN = f"""\
const path = require("path");
const {{ postgraphile }} = require(path.dirname(require.main.filename));

function claimedRole(req) {{
  const header = req.headers.authorization;
  if (!header) return "anon";
  const token = /^Bearer\\s+[^.\\s]+\\.([^.\\s]+)\\.[^.\\s]*$/i.exec(header);
  if (!token) return undefined;
  try {{
    const claims = JSON.parse(Buffer.from(token[1], "base64url").toString("utf8"));
    return claims.role === undefined ? "anon" : claims.role;
  }} catch (error) {{
    return undefined;
  }}
}}

module.exports = {{
  "cli:server:middleware"(keyed, {{ options }}) {{
    const anon = postgraphile(
      {{ connectionString: process.env.BERTH_ANON_DATABASE_URL, max: {POOL_SIZE} }},
      ["{API_SCHEMA}"],
      options,
    );
    return (req, res, next) => (claimedRole(req) === "anon" ? anon : keyed)(req, res, next);
  }},
}};
""".encode()

# GraphiQL is off unless an operator sets BERTH_GRAPHIQL (--disable-graphiql):
# it is a development tool, and anyone who reaches the api's port would get it.
# When on, PostGraphile 4's page would load prettier from unpkg.com; this server
# plugin (named in the rc file: the CLI reads `plugins` there) takes those tags
# out, so the page loads nothing from elsewhere and works offline (its Prettify
# falls back to GraphiQL's own when prettier is absent).
GRAPHIQL_PLUGIN_PATH = f"{POSTGRAPHILE_DIR}/graphiql-offline.js"
GRAPHIQL_PLUGIN = b"""module.exports = {
  "postgraphile:graphiql:html": (html) => html.replace(/<script src="https?:[^"]*"><\\/script>/g, ""),
};
"""

# PostGraphile answers before it watches: graphile-build-pg starts the session
# that LISTENs for schema changes, and then makes the event triggers that send
# them, without waiting for either. A table made in that gap (a user's first
# CREATE TABLE, the moment the project is running) is never noticed and stays
# out of the api until a restart. So the api is ready once the database sees
# both, for both instances. Only the superuser sees another role's session; a
# session of an api container just replaced ends with its process, within a moment.
def watching_sql(instances: int = 2) -> str:
    """The readiness check's SQL: '' once `instances` sessions listen and the triggers exist, else what is missing."""
    return f"""\
SELECT CASE
  WHEN (SELECT pg_catalog.count(*) FROM pg_catalog.pg_stat_activity WHERE datname OPERATOR(pg_catalog.=) pg_catalog.current_database()
        AND query OPERATOR(pg_catalog.=) 'listen postgraphile_watch') OPERATOR(pg_catalog.<) {instances:d}
    THEN 'PostGraphile does not listen for schema changes yet'
  WHEN NOT EXISTS (SELECT FROM pg_catalog.pg_event_trigger WHERE evtname OPERATOR(pg_catalog.=) 'postgraphile_watch_ddl')
    THEN 'PostGraphile has not made its schema-change triggers yet'
  ELSE '' END;
"""


def rc_file(*, graphiql: bool) -> bytes:
    plugins = [ANON_SCHEMA_PLUGIN_PATH, *([GRAPHIQL_PLUGIN_PATH] if graphiql else [])]
    listed = ", ".join(f'"{p}"' for p in plugins)
    return f"module.exports = {{\n  options: {{\n    plugins: [{listed}],\n    retryOnInitFail: {RETRY_ON_INIT_FAIL},\n  }},\n}};\n".encode()


@dataclass(frozen=True)
class PostGraphileApi:
    environment: dict[str, str]
    command: list[str]
    files: tuple[FileSpec, ...]


def as_role(uri: str, role: str) -> str:
    """The same login, its sessions started as `role` (libpq's and node-postgres's `options`)."""
    return f"{uri}{'&' if '?' in uri else '?'}options={quote(f'-c role={role}', safe='')}"


def postgraphile_api(
    *, authenticator_uri: str, owner_uri: str, owner_pgpass: str, jwt_secret: str, anon_role: str, service_role: str, audience: str,
    graphiql: bool,
) -> PostGraphileApi:
    """The api container's environment, command and files (nothing secret on its command line)."""
    mine = {"mode": 0o400, "uid": POSTGRAPHILE_UID, "gid": POSTGRAPHILE_UID}
    files = (
        FileSpec(path=PGPASS_PATH, content=owner_pgpass.encode(), uid=POSTGRAPHILE_UID, gid=POSTGRAPHILE_UID),
        FileSpec(path=POSTGRAPHILE_RC_PATH, content=rc_file(graphiql=graphiql), **mine),
        FileSpec(path=ANON_SCHEMA_PLUGIN_PATH, content=ANON_SCHEMA_PLUGIN, **mine),
        *((FileSpec(path=GRAPHIQL_PLUGIN_PATH, content=GRAPHIQL_PLUGIN, **mine),) if graphiql else ()),
    )  # fmt: skip
    # Nothing secret on the command line (`ps` on the host shows it): the
    # connections and the JWT secret come from the environment, and the owner
    # connection's password (it has no variable) from a pgpass file.
    environment = {
        "DATABASE_URL": as_role(authenticator_uri, service_role),
        "BERTH_ANON_DATABASE_URL": as_role(authenticator_uri, anon_role),
        "JWT_SECRET": jwt_secret,
        "PGPASSFILE": PGPASS_PATH,
    }
    # The image's entrypoint is the postgraphile CLI: options are the command.
    command = [
        # The superuser, only for --watch's event triggers; requests run as
        # authenticator, switched to anon or to the JWT's role. Pinned by the
        # caller (sessions.pinned_uri): the superuser's session resolves
        # nothing through the database's search_path, which is the tenant's.
        "--owner-connection", owner_uri,
        "--default-role", anon_role,
        "--jwt-verify-audience", audience,
        "--host", "0.0.0.0",
        "--port", str(POSTGRAPHILE_PORT),
        "--schema", API_SCHEMA,
        "--max-pool-size", str(POOL_SIZE),
        # No --retry-on-init-fail: the api starts with the db and retries
        # as the rc file says (the flag would override it).
        "--watch",  # new tables appear without a restart
        # The schema holds only what the roles a request may become were
        # granted: the default (ignoreRBAC) shows every table, column and
        # function to anyone who asks for __schema (and see ANON_SCHEMA_PLUGIN).
        "--no-ignore-rbac",
        "--dynamic-json",
        "--disable-query-log",
        *(() if graphiql else ("--disable-graphiql",)),
    ]  # fmt: skip
    return PostGraphileApi(environment=environment, command=command, files=files)
