"""Readiness probes: a project is ready when its db answers a real query with
its password and its api a real HTTP request — a published port accepts TCP
(docker-proxy) long before the service behind it does."""

import socket
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import TYPE_CHECKING

import psycopg

from .base import BOOTSTRAP_ARGV, ApiProbe, DbProbe, DbStats, NotReady, RuntimeFailure, StackSpec
from .sessions import HEALED_MARKER, PINNED_OPTIONS

if TYPE_CHECKING:
    from .base import Runtime

# Each wait polls every 20 ms at first, then backs off (×1.5 a failed probe) to
# one every 100 ms: a service that is up at once is seen within 20 ms, and one
# that takes seconds (an initdb) is not asked 50 times a second by each worker
# while creates share the cores (a refused connect costs ~0.6 ms of CPU, ours
# and docker-proxy's).
PROBE_INTERVAL_S = 0.02
PROBE_INTERVAL_MAX_S = 0.1
PROBE_BACKOFF = 1.5


class ProbeFailed(Exception):
    pass


def db_accepts(spec: StackSpec) -> None:
    # Before any exec: the published port answers only once the real server
    # runs (the entrypoint's initdb server listens on its socket alone).
    p = spec.db_probe
    conninfo = psycopg.conninfo.make_conninfo(host=p.host, port=p.port, dbname=p.dbname, connect_timeout=2)
    if psycopg.pq.PGconn.ping(conninfo.encode()) != psycopg.pq.Ping.OK:
        raise ProbeFailed(f"the db at {p.host}:{p.port} does not accept connections yet")


def db_answers(spec: StackSpec) -> None:
    p = spec.db_probe
    try:
        with psycopg.connect(
            host=p.host, port=p.port, user=p.user, password=p.password, dbname=p.dbname, connect_timeout=2
        ) as conn:
            conn.execute("SELECT 1").fetchone()
    except psycopg.Error as exc:
        # psycopg's message never contains the password, only host/port and the reason.
        raise ProbeFailed(str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__) from None


def api_answers(spec: StackSpec) -> None:
    api_probe(spec.db_probe.host, spec.api.host_port, spec.api_probe)


# One statement, one round trip: the database's size, the server's client
# backends against max_connections, and the cumulative counters rates and the
# cache hit ratio are derived from. Our own connection counts as one. Every
# name qualified, and the session pinned besides (sessions.py): the database
# is the tenant's, and so is its search_path.
# Every database the tenant may use (not the templates, not the server's
# `postgres`): each one's name and size, as JSON; the size reported is their sum.
# pg_monitor reads the size of a database it may not connect to.
DB_STATS_SQL = """
SELECT (SELECT pg_catalog.json_agg(pg_catalog.json_build_array(o.datname, pg_catalog.pg_database_size(o.oid)) ORDER BY o.datname)
          FROM pg_catalog.pg_database o
         WHERE NOT o.datistemplate AND o.datallowconn AND o.datname OPERATOR(pg_catalog.<>) 'postgres'),
       (SELECT pg_catalog.count(*) FROM pg_catalog.pg_stat_activity WHERE backend_type OPERATOR(pg_catalog.=) 'client backend'),
       pg_catalog.current_setting('max_connections')::int, d.xact_commit, d.xact_rollback, d.blks_hit, d.blks_read
FROM pg_catalog.pg_stat_database d WHERE d.datname OPERATOR(pg_catalog.=) pg_catalog.current_database()
"""
# Sampling must never wait on a busy server: a short connect and a short statement.
DB_STATS_TIMEOUT_S = 2


def db_stats(p: DbProbe) -> DbStats:
    """The database's numbers for metrics, read with one short query; ProbeFailed when it does not answer.

    `p` is the monitoring role's (spec.sample_target), never the superuser's.
    """
    if not p.password:
        raise ProbeFailed(f"no password for {p.user} yet: the project's next start makes the role")
    try:
        with psycopg.connect(
            host=p.host, port=p.port, user=p.user, password=p.password, dbname=p.dbname, connect_timeout=DB_STATS_TIMEOUT_S,
            options=f"-c statement_timeout={DB_STATS_TIMEOUT_S * 1000} {PINNED_OPTIONS}", application_name="berth-metrics",
        ) as conn:  # fmt: skip
            row = conn.execute(DB_STATS_SQL).fetchone()
    except psycopg.Error as exc:
        raise ProbeFailed(str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__) from None
    if row is None:
        raise ProbeFailed(f"no statistics for database {p.dbname}")
    databases = tuple((str(name), int(size)) for name, size in row[0] or ())
    connections, max_connections, commits, rollbacks, hit, read = (int(v or 0) for v in row[1:])
    return DbStats(sum(size for _, size in databases), connections, max_connections, commits, rollbacks, hit, read, databases)


def api_up(host: str, port: int, probe: ApiProbe) -> bool:
    try:
        api_probe(host, port, probe)
    except ProbeFailed:
        return False
    return True


def api_probe(host: str, port: int, probe: ApiProbe) -> None:
    url = f"http://{host}:{port}{probe.path}"
    headers = {"Content-Type": probe.content_type} if probe.content_type else {}
    request = urllib.request.Request(url, data=probe.body, method=probe.method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=2) as response:
            status = response.status
    except urllib.error.HTTPError as exc:
        status = exc.code
    except (urllib.error.URLError, ConnectionError, socket.timeout, TimeoutError) as exc:
        raise ProbeFailed(f"{url} does not answer ({getattr(exc, 'reason', exc)})") from None
    if status >= 500:
        raise ProbeFailed(f"{url} answered {status}")


def wait_ready(runtime: "Runtime", spec: StackSpec, *, timeout_s: float) -> tuple[str, ...]:
    """Runtime.stack_wait_ready, in terms of the protocol: both runtimes wait so. What the bootstrap healed."""
    deadline = time.monotonic() + timeout_s
    _wait(runtime, deadline, spec, "db", lambda: db_accepts(spec))
    healed: list[str] = []
    if spec.db_probe.bootstrap_sql:
        _wait(runtime, deadline, spec, "db", lambda: _db_bootstrap(runtime, spec, healed))
    _wait(runtime, deadline, spec, "db", lambda: db_answers(spec))
    _wait(runtime, deadline, spec, "api", lambda: api_answers(spec))
    if spec.api_probe.ready_sql:
        with _SuperuserSession(spec) as session:
            _wait(runtime, deadline, spec, "api", lambda: _api_ready_in_db(session, spec))
    return tuple(healed)


def _db_bootstrap(runtime: "Runtime", spec: StackSpec, healed: list[str]) -> None:
    out = _db_superuser_sql(runtime, spec, spec.db_probe.bootstrap_sql, "bootstrap")
    # A bootstrap that failed and is run again heals nothing the first run did
    # not report already: only the run that succeeds is read.
    healed[:] = [line[len(HEALED_MARKER):] for line in out.decode(errors="replace").splitlines() if line.startswith(HEALED_MARKER)]


def _api_ready_in_db(session: "_SuperuserSession", spec: StackSpec) -> None:
    # The query's one value is "" once ready, else what the api still waits for.
    waits_for = session.value(spec.api_probe.ready_sql, "the api's check in the db").strip()
    if waits_for:
        raise ProbeFailed(waits_for)


class _SuperuserSession:
    """The db's superuser (the bootstrap's role, password and session options) on the published port, as db_answers
    connects: one connection for every poll of a wait, not an exec each (psql in the container costs ~0.1 s of CPU)."""

    def __init__(self, spec: StackSpec) -> None:
        self.probe = spec.db_probe
        self.conn: psycopg.Connection[tuple[object, ...]] | None = None

    def value(self, sql: str, what: str) -> str:
        """The first value `sql` returns ("" for none); ProbeFailed with the reason when the db does not answer."""
        p, env = self.probe, self.probe.bootstrap_env
        try:
            if self.conn is None or self.conn.closed:
                # Autocommit: each poll reads pg_stat_activity afresh, not a transaction's snapshot of it.
                self.conn = psycopg.connect(
                    host=p.host, port=p.port, user=env["PGUSER"], password=env["PGPASSWORD"], dbname=env["PGDATABASE"],
                    options=env.get("PGOPTIONS", ""), connect_timeout=2, autocommit=True,
                )  # fmt: skip
            row = self.conn.execute(sql).fetchone()
        except psycopg.Error as exc:
            self.close()
            raise ProbeFailed(f"{what}: {str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__}") from None
        return "" if row is None or row[0] is None else str(row[0])

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None

    def __enter__(self) -> "_SuperuserSession":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _db_superuser_sql(runtime: "Runtime", spec: StackSpec, sql: str, what: str) -> bytes:
    """Run `sql` in the db container as the superuser: its output; ProbeFailed with psql's last words when it fails."""
    try:
        out, result = runtime.exec_stream(
            spec.db.name, BOOTSTRAP_ARGV, environment={**spec.db_probe.bootstrap_env, "BERTH_SQL": sql}, idle_timeout_s=30
        ).read_all()
    except RuntimeFailure as exc:
        raise ProbeFailed(f"{what}: {exc}") from None
    if result.exit_code != 0:
        tail = result.stderr.strip().splitlines()
        raise ProbeFailed(f"{what} exited {result.exit_code}: {tail[-1] if tail else 'no message'}")
    return out


def _wait(runtime: "Runtime", deadline: float, spec: StackSpec, service: str, probe: Callable[[], None]) -> None:
    last_error = ""
    checked_at = time.monotonic()
    interval = PROBE_INTERVAL_S
    while True:
        try:
            probe()
            return
        except ProbeFailed as exc:
            last_error = str(exc)
        now = time.monotonic()
        if now >= deadline:
            raise NotReady(f"the {service} did not become ready in time: {last_error}")
        if now - checked_at >= 1.0:
            # A container that exited will never answer: fail now, with its last words.
            checked_at = now
            state = runtime.stack_state(spec.project_id).container(service)
            if state is None or state.status in {"exited", "dead"}:
                tail = runtime.container_logs(spec.project_id, service, tail=5).strip().splitlines()
                words = f": {tail[-1]}" if tail else ""
                raise NotReady(f"the {service} container {'is missing' if state is None else 'exited'}{words}")
        time.sleep(interval)
        interval = min(interval * PROBE_BACKOFF, PROBE_INTERVAL_MAX_S)
