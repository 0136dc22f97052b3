"""The backup engine work: the SQL and shell scripts, and the throwaway containers that run them.

- A dump runs `pg_dump --format=custom` inside the project's db container, or,
  when the project is not running, inside a throwaway container on its volume.
  The table list and exact row counts are read in pg_dump's own snapshot, so
  they describe exactly what the file holds even while clients write.
- Every database the tenant may use is dumped (issue 26: its owner may create
  them). A server with only the project's own database gives one archive, the
  file as it always was; one with more gives a tar of one archive per
  database (`1.dump`, `2.dump`…, the project's own first, and
  `databases.json` naming them), each dumped in its own snapshot. A restore
  replaces the databases the file holds and keeps any other.
- A restore copies the file in (hashing it as it goes, checked before anything
  is dropped) and replaces the database in one pg_restore transaction.
- Verification restores the file into a throwaway container of the same image
  on an internal network (nothing published), checks pg_restore's exit status
  and the recorded tables and row counts, and removes the container.

Nothing here writes a Backup row: steps.py records what these report.
"""

import hashlib
import io
import json
import logging
import os
import secrets
import shutil
import tarfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from django.conf import settings

from projects.models import Backup, Project
from projects.runtime import Runtime, RuntimeFailure, ScratchSpec
from projects.runtime.base import SERVICE_LABEL, container_name, scratch_service
from projects.runtime.sessions import OWNER_SESSION_OPTIONS, admin_session_env
from projects.services.backups.files import (
    MAGIC,
    BackupFailed,
    FileAltered,
    backup_file_problem,
    backup_path,
    digest_problem,
    file_chunks,
    partial_path,
    partial_publish,
    partial_write,
    size_problem,
)
from projects.stack.images import postgres_image
from projects.stack.spec import DB_PORT, PGDATA, postgres_command, project_labels, project_volume, stack_spec

logger = logging.getLogger(__name__)

# A custom-format archive of an empty database is about a kilobyte: its header
# and table of contents. Anything shorter was cut off.
MIN_DUMP_BYTES = 256
MANIFEST_MARKER = "BERTH-MANIFEST "
NO_ROOM_MARKER = "BERTH-NO-ROOM "
NO_ROOM_EXIT = 75
# Throwaway containers: a backup's, and an upgrade's (its check of the new
# major's extensions, its restore onto the new volume): services/upgrades/volumes.py.
SCRATCH_SERVICES = ("backup-dump", "backup-restore", "backup-verify", "upgrade-check", "upgrade-restore")

# What a dump holds, as JSON: every user table with its exact row count, and
# the roles the dump may name (owners, grantees), which a restore into a
# fresh server must create first. Extension-owned tables are left out (pg_dump
# does not dump their data); materialized views too (a restore recomputes them).
MANIFEST_SQL = r"""
SELECT pg_catalog.json_build_object(
  'server_version', pg_catalog.current_setting('server_version'),
  'roles', (SELECT COALESCE(pg_catalog.json_agg(rolname ORDER BY rolname), '[]'::json) FROM pg_catalog.pg_roles
            WHERE rolname OPERATOR(pg_catalog.!~) '^pg_'),
  'tables', COALESCE((
    SELECT pg_catalog.json_object_agg(
      pg_catalog.format('%I.%I', n.nspname, c.relname),
      (pg_catalog.xpath('/row/c/text()', pg_catalog.query_to_xml(
        pg_catalog.format('SELECT pg_catalog.count(*) AS c FROM %I.%I', n.nspname, c.relname), false, true, '')))[1]::text::bigint
      ORDER BY n.nspname, c.relname)
    FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) c.relnamespace
    WHERE c.relkind OPERATOR(pg_catalog.=) ANY (ARRAY['r', 'p']::"char"[]) AND c.relpersistence OPERATOR(pg_catalog.<>) 't'
      AND n.nspname OPERATOR(pg_catalog.<>) ALL (ARRAY['pg_catalog', 'information_schema']::name[])
      AND n.nspname OPERATOR(pg_catalog.!~) '^pg_(toast|temp_)'
      AND NOT EXISTS (SELECT FROM pg_catalog.pg_depend d WHERE d.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_class'::pg_catalog.regclass
                      AND d.objid OPERATOR(pg_catalog.=) c.oid AND d.deptype OPERATOR(pg_catalog.=) 'e')
  ), '{}'::json))
"""

# The databases a dump holds: every one the tenant may use (not the templates,
# not the server's `postgres`), the session's own (the project's) first.
DATABASES_SQL = r"""
SELECT pg_catalog.json_agg(d.datname ORDER BY d.datname OPERATOR(pg_catalog.<>) pg_catalog.current_database(), d.datname)
  FROM pg_catalog.pg_database d
 WHERE NOT d.datistemplate AND d.datallowconn AND d.datname OPERATOR(pg_catalog.<>) 'postgres'
"""
# In a tar of several databases, the file that names them, in the members' order.
DATABASES_MEMBER = "databases.json"

# Run as `sh -c DUMP_SCRIPT berth-dump` with PGHOST/PGUSER/PGPASSWORD/PGDATABASE set,
# BERTH_DUMP_ROOM (bytes the backup directory can take, less the margin) and
# BERTH_LOCK_WAIT. First the database's size against the room: a dump larger
# than the disk would fill it for every other backup and Berth's own database
# (exit NO_ROOM_EXIT with NO_ROOM_MARKER, before anything is written). pg_dump
# gives up on a table lock after BERTH_LOCK_WAIT instead of queueing behind
# it, and holding up every query queued behind the dump; the manifest's counts
# take the same locks, so its session has the same lock_timeout (and after a
# failed pg_dump they are not read: its message is the reason). One psql session holds a repeatable-read transaction and exports its
# snapshot; pg_dump (run from psql with \!, so the transaction stays open)
# dumps that snapshot to stdout, then the manifest is read in the same one.
# psql 15 cannot report a \! command's status, so pg_dump's goes through a file.
# stdout carries the archive only; the manifest comes last, on stderr.
DUMP_SCRIPT = rf"""set -u
work=$(mktemp -d /tmp/berth-dump.XXXXXX) || exit 70
trap 'rm -rf "$work"' EXIT
export BERTH_WORK="$work"
size=$(psql -X -q -At -v ON_ERROR_STOP=1 -c 'SELECT pg_catalog.pg_database_size(pg_catalog.current_database())') || exit $?
[ "$size" -le "$BERTH_DUMP_ROOM" ] || {{ echo "{NO_ROOM_MARKER}$size" >&2; exit {NO_ROOM_EXIT}; }}
PGOPTIONS="${{PGOPTIONS:-}} -c lock_timeout=$BERTH_LOCK_WAIT" psql -X -q -v ON_ERROR_STOP=1 -o /dev/null <<'SQL'
BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY;
SELECT pg_catalog.pg_export_snapshot() AS berth_snapshot \gset
\setenv BERTH_SNAPSHOT :berth_snapshot
\! pg_dump --format=custom --no-password --lock-wait-timeout="$BERTH_LOCK_WAIT" --snapshot="$BERTH_SNAPSHOT"; echo $? > "$BERTH_WORK/rc"
\set berth_dump_rc `cat "$BERTH_WORK/rc"`
SELECT :berth_dump_rc = 0 AS berth_dump_ok \gset
\if :berth_dump_ok
\pset format unaligned
\pset tuples_only on
\o `echo "$BERTH_WORK/manifest"`
{MANIFEST_SQL};
\o
\endif
COMMIT;
SQL
rc=$?
[ "$rc" -eq 0 ] || {{ echo "psql exited $rc" >&2; exit "$rc"; }}
dump_rc=$(cat "$work/rc" 2>/dev/null) || {{ echo "pg_dump did not run" >&2; exit 70; }}
[ "$dump_rc" -eq 0 ] || exit "$dump_rc"
printf '{MANIFEST_MARKER}%s\n' "$(cat "$work/manifest")" >&2
"""

# Run as `sh -c RESTORE_SCRIPT berth-restore <file>` with the PG* variables
# (the superuser), BERTH_DB_OWNER, BERTH_OWNER_PASSWORD, BERTH_OWNER_OPTIONS and
# BERTH_ROLES (a JSON list). Replaces the database: drop it (ending its
# sessions), create it empty from template0, create the roles the dump names.
#
# Then the dump's objects are restored by who may run them (issue 22): a dump
# holds the tenant's code — check constraints, index expressions, defaults,
# triggers, materialized views call the tenant's functions as the objects are
# made and filled — so everything the owner owns is restored in a session
# that *logs in* as the owner (not the superuser with SET ROLE, which the
# tenant's code could RESET), with --no-owner so every restored object is the
# owner's. Only what the owner cannot make is the superuser's, before anything
# of the tenant's exists: schemas (made, then given to their owner) and
# extensions (the image's scripts). Berth's own objects (owned by the
# superuser: the `berth` schema, PostGraphile's `postgraphile_watch`) and every
# event trigger (only a superuser may own one) are left out: the bootstrap and
# PostGraphile's --watch make them again. Each session pins its search_path
# (runtime/sessions.py). A failed restore leaves the database empty but for
# schemas and extensions.
#
# On a project of the old kind the owner is the superuser: one restore, as it.
# There, with BERTH_SKIP_EVENT_TRIGGERS set (an upgrade onto a server where the
# owner is none), the dump's event triggers are left out the same way.
RESTORE_SCRIPT = r"""set -u
file=$1
trap 'rm -f "$file" "$file".*' EXIT
owner="${BERTH_DB_OWNER:-$PGUSER}"
maintenance=postgres
[ "$PGDATABASE" = postgres ] && maintenance=template1
psql -X -q -v ON_ERROR_STOP=1 -d "$maintenance" -v db="$PGDATABASE" -v owner="$owner" -v roles="$BERTH_ROLES" \
  -v as_owner="$([ "$owner" != "$PGUSER" ] && echo 1 || echo 0)" <<'SQL' || exit $?
SELECT pg_catalog.format('CREATE ROLE %I NOLOGIN', r) FROM pg_catalog.json_array_elements_text((:'roles')::json) AS r
 WHERE NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname OPERATOR(pg_catalog.=) r) \gexec
DROP DATABASE IF EXISTS :"db" WITH (FORCE);
CREATE DATABASE :"db" OWNER :"owner" TEMPLATE template0;
\if :as_owner
\getenv owner_password BERTH_OWNER_PASSWORD
ALTER ROLE :"owner" LOGIN PASSWORD :'owner_password';
\endif
SQL
pg_restore -l "$file" | grep -v -e '^;' -e '^$' > "$file.all" || exit 70
if [ "$owner" = "$PGUSER" ]; then
  if [ -n "${BERTH_SKIP_EVENT_TRIGGERS:-}" ]; then grep -v ' EVENT TRIGGER ' "$file.all" > "$file.owner"; else cp "$file.all" "$file.owner"; fi
  exec pg_restore --single-transaction --no-password --dbname="$PGDATABASE" --use-list="$file.owner" "$file"
fi
# The list's lines: "<id>; <class> <oid> <TYPE…> <schema> <name> <owner>"; extensions have no owner.
# pg_cron's jobs are the tenant's data in a table only a superuser writes: restored by the superuser
# (each job keeps the user that scheduled it; the bootstrap unschedules any that would run as a superuser).
# Its run history and its privileges are not restored: on a dump of the old kind they are the owner's,
# who cannot write them here; the extension and the bootstrap make the privileges again.
awk -v admin="$PGUSER" -v first="$file.superuser" -v rest="$file.owner" '
  $4 == "EVENT" { next }
  / $/ || ($4 == "SCHEMA" && $NF != admin) { print > first; next }
  $6 == "cron" && (($4 == "TABLE" && $5 == "DATA" && $7 == "job") || ($4 == "SEQUENCE" && $5 == "SET" && $7 == "jobid_seq")) { print > first; next }
  $6 == "cron" && (($4 == "TABLE" && $5 == "DATA") || ($4 == "SEQUENCE" && $5 == "SET")) { next }
  $4 == "ACL" && ($5 == "cron" || ($6 == "SCHEMA" && $7 == "cron")) { next }
  $NF == admin { next }
  { print > rest }' "$file.all" || exit 70
touch "$file.superuser" "$file.owner"
if [ -s "$file.superuser" ]; then
  pg_restore --single-transaction --no-password --dbname="$PGDATABASE" --use-list="$file.superuser" "$file" || exit $?
fi
PGUSER="$owner" PGPASSWORD="$BERTH_OWNER_PASSWORD" PGOPTIONS="$BERTH_OWNER_OPTIONS" \
  exec pg_restore --single-transaction --no-password --no-owner --dbname="$PGDATABASE" --use-list="$file.owner" "$file"
"""


# --- databases to exec in ---------------------------------------------------------


def db_env(project: Project, password: str | None = None) -> dict[str, str]:
    # Loopback TCP, not the socket: while a new server initialises, its
    # temporary server answers on the socket only, and must not be mistaken
    # for the real one.
    return {
        # The server's superuser (Berth's own role on projects of the new kind):
        # it reads every table. Pinned, and free of the project's own timeouts
        # and statement logging (runtime/sessions.py).
        **admin_session_env(
            host="127.0.0.1", port=DB_PORT, user=project.admin_user,
            password=password if password is not None else project.admin_password, dbname=project.db_name,
        ),  # fmt: skip
        # The owner, as whom a restore makes the owner's objects (RESTORE_SCRIPT).
        "BERTH_DB_OWNER": project.db_user,
        "BERTH_OWNER_PASSWORD": project.db_password,
        "BERTH_OWNER_OPTIONS": OWNER_SESSION_OPTIONS,
    }


def _scratch_spec(project: Project, *, purpose: str, backup: Backup, own_volume: bool, password: str | None = None) -> ScratchSpec:
    """A throwaway container for `purpose` (dump, restore, verify) of `backup`, labelled like the project's own."""
    db = stack_spec(project).db
    environment = dict(db.environment)
    # On the project's volume: the project's server version, which made that data directory.
    version = backup.postgres_version if own_volume else project.postgres_version
    if password is not None:
        environment["POSTGRES_PASSWORD"] = password
    return ScratchSpec(
        name=container_name(project.public_id, scratch_service(purpose, backup.public_id)),
        image=postgres_image(version),
        environment=environment,
        command=postgres_command(),  # no TLS: no published port, and its files are the db container's
        labels={**project_labels(project.public_id), SERVICE_LABEL: f"backup-{purpose}"},
        volume_mount=PGDATA,
        mem_limit=db.mem_limit,
        confinement=db.confinement,
        volume="" if own_volume else project_volume(project),
        own_volume=own_volume,
        node=project.node,  # on a Swarm: where the project's volume is
    )


def scratch_remove_quietly(runtime: Runtime, name: str) -> None:
    try:
        runtime.scratch_remove(name)
    except RuntimeFailure:
        # The backup pass removes it later (backup_pass.backups_settle_orphans).
        logger.warning("throwaway container %s not removed yet", name, exc_info=True)


@contextmanager
def _scratch_db(
    project: Project, backup: Backup, runtime: Runtime, env: dict[str, str], *, purpose: str, own_volume: bool, password: str | None = None
) -> Iterator[str]:
    """A throwaway server for `purpose`, started and accepting connections (its name); removed on the way out."""
    spec = _scratch_spec(project, purpose=purpose, backup=backup, own_volume=own_volume, password=password)
    try:
        runtime.scratch_up(spec)
        scratch_wait_ready(runtime, spec.name, env, project_id=project.public_id, service=scratch_service(purpose, backup.public_id))
        yield spec.name
    finally:
        scratch_remove_quietly(runtime, spec.name)


def scratch_wait_ready(runtime: Runtime, container: str, env: dict[str, str], *, project_id: str, service: str) -> None:
    deadline = time.monotonic() + settings.BERTH_READY_TIMEOUT
    while True:
        try:
            _, result = runtime.exec_stream(container, ["pg_isready", "-q", "-h", "127.0.0.1", "-p", str(DB_PORT)], environment=env).read_all()
        except RuntimeFailure as exc:
            tail = runtime.container_logs(project_id, service, tail=5).strip().splitlines()
            raise BackupFailed(f"the throwaway database {container} stopped before it was ready ({exc}){': ' + tail[-1] if tail else ''}") from None
        if result.exit_code == 0:
            return
        if time.monotonic() >= deadline:
            raise BackupFailed(f"the throwaway database {container} was not ready after {settings.BERTH_READY_TIMEOUT} s")
        time.sleep(0.2)


@contextmanager
def project_db(project: Project, backup: Backup, runtime: Runtime, *, purpose: str) -> Iterator[tuple[str, dict[str, str], bool]]:
    """The project's database as (container, environment, live): its db container if it runs, else a throwaway on its volume."""
    state = runtime.stack_state(project.public_id, volume=project_volume(project))
    db = state.container("db")
    env = db_env(project)
    if db is not None and db.running:
        yield db.name, env, True
        return
    if db is not None and db.status not in {"created", "exited", "dead"}:
        # Two servers on one data directory corrupt it: only a db container
        # that certainly does not run lets us start another on its volume.
        raise BackupFailed(f"the db container is {db.status}, neither running nor stopped: start or stop the project, then retry")
    if not state.volume:
        raise BackupFailed(f"project {project.public_id} has no data volume on the engine: there is no database to read")
    with _scratch_db(project, backup, runtime, env, purpose=purpose, own_volume=False) as container:
        yield container, env, False


def _last_words(stderr: str, lines: int = 3) -> str:
    kept = [line for line in stderr.strip().splitlines() if line.strip() and not line.startswith(MANIFEST_MARKER)]
    return " / ".join(kept[-lines:]) or "no message"


def exit_reason(program: str, code: int | None, stderr: str) -> str:
    if code is None:
        return f"{program} did not finish: the container stopped or vanished while it ran"
    killed = " (killed: the container was stopped or ran out of memory)" if code == 137 else ""
    return f"{program} exited {code}{killed}: {_last_words(stderr)}"


# --- dump, restore, count ----------------------------------------------------------


def backup_dump(project: Project, backup: Backup, runtime: Runtime) -> None:
    """Dump every database of the project into the backup's file and record what it holds. Raises BackupFailed, RuntimeFailure."""
    partial, final = partial_path(backup), backup_path(backup)
    room = _dump_room(partial.parent)
    parts: list[Path] = []
    try:
        with project_db(project, backup, runtime, purpose="dump") as (container, env, _live):
            databases = databases_listed(runtime, container, env)
            manifests = []
            for index, database in enumerate(databases, 1):
                # One database alone is the file itself, as it always was; several are parts of a tar.
                part = partial if len(databases) == 1 else partial.with_name(f".{backup.public_id}-{index}.dump.partial")
                parts.append(part)
                size, sha256, manifest = _dump_one(runtime, container, {**env, "PGDATABASE": database}, part, room=room, database=database if len(databases) > 1 else "")
                room -= size
                manifests.append(manifest)
        if len(databases) > 1:
            size, sha256 = _tar_write(partial, parts, databases)
        partial_publish(partial, final)
    except BaseException:
        for path in {partial, *parts}:
            path.unlink(missing_ok=True)
        raise
    for part in parts:
        if part != partial:
            part.unlink(missing_ok=True)
    backup.size, backup.sha256 = size, sha256
    backup.databases = databases if len(databases) > 1 else []
    backup.tables = {
        (name if index == 0 else f"{database}/{name}"): rows
        for index, (database, manifest) in enumerate(zip(databases, manifests, strict=True))
        for name, rows in manifest["tables"].items()
    }
    backup.roles = sorted({role for manifest in manifests for role in manifest["roles"]})
    backup.server_version = str(manifests[0].get("server_version", ""))[:100]


def databases_listed(runtime: Runtime, container: str, env: dict[str, str]) -> list[str]:
    """The databases a dump holds, the session's own first (DATABASES_SQL)."""
    argv = ["psql", "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", "-c", DATABASES_SQL]
    out, result = runtime.exec_stream(container, argv, environment=env, idle_timeout_s=60).read_all()
    if result.exit_code != 0:
        raise BackupFailed(f"listing the databases failed: {exit_reason('psql', result.exit_code, result.stderr)}")
    try:
        databases = [str(name) for name in json.loads(out.decode("utf-8", errors="replace").strip() or "null") or []]
    except ValueError:
        raise BackupFailed(f"the list of databases is not readable: {out[:200]!r}") from None
    if not databases or databases[0] != env["PGDATABASE"]:
        raise BackupFailed(f"the project's database {env['PGDATABASE']} is not on its server (found: {', '.join(databases) or 'none'})")
    return databases


def _dump_one(runtime: Runtime, container: str, env: dict[str, str], part: Path, *, room: int, database: str) -> tuple[int, str, dict[str, Any]]:
    """One database's archive into `part`: its size, its sha256, and what it holds (the manifest)."""
    argv = ["sh", "-c", DUMP_SCRIPT, "berth-dump"]
    env = {**env, "BERTH_DUMP_ROOM": str(max(room, 0)), "BERTH_LOCK_WAIT": f"{settings.BERTH_BACKUP_LOCK_WAIT_SECONDS}s"}
    with runtime.exec_stream(container, argv, environment=env, idle_timeout_s=settings.BERTH_BACKUP_IDLE_TIMEOUT) as stream:
        size, sha256, head = partial_write(part, stream)
        result = stream.result()
    of = f" of database {database}" if database else ""
    if result.exit_code == NO_ROOM_EXIT and NO_ROOM_MARKER in result.stderr:
        needs = int(result.stderr.split(NO_ROOM_MARKER, 1)[1].split()[0])
        raise BackupFailed(_no_room(part.parent, room, needs=needs))
    if result.exit_code != 0:
        locked = "Query was: LOCK TABLE" in result.stderr or "lock timeout" in result.stderr
        why = (
            f"a table stayed locked (by DDL or an explicit LOCK) longer than BERTH_BACKUP_LOCK_WAIT_SECONDS "
            f"({settings.BERTH_BACKUP_LOCK_WAIT_SECONDS} s); try again when it is released. "
            if locked
            else ""
        )
        raise BackupFailed(f"the dump{of} failed: {why}{exit_reason('pg_dump', result.exit_code, result.stderr)}")
    if size == 0:
        raise BackupFailed(f"the dump{of} is empty: pg_dump wrote nothing")
    if head != MAGIC:
        raise BackupFailed(f"the dump{of} does not start like a custom-format archive ({head!r}): it is not a pg_dump file")
    if size < MIN_DUMP_BYTES:
        raise BackupFailed(f"the dump{of} is only {size} bytes: too short to hold even an empty database")
    return size, sha256, _manifest_from(result.stderr)


class _Hashed:
    """A file written through: every byte also goes into a digest, and is counted."""

    def __init__(self, f: Any) -> None:
        self.f, self.digest, self.size = f, hashlib.sha256(), 0

    def write(self, data: bytes) -> int:
        self.digest.update(data)
        self.size += len(data)
        written: int = self.f.write(data)
        return written


def _tar_write(path: Path, parts: list[Path], databases: list[str]) -> tuple[int, str]:
    """The parts as one tar at `path` (`1.dump`…, then databases.json), fsynced; its size and sha256."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        hashed = _Hashed(f)
        try:
            with tarfile.open(fileobj=hashed, mode="w|", format=tarfile.PAX_FORMAT) as tar:  # type: ignore[call-overload]
                for index, part in enumerate(parts, 1):
                    info = tarfile.TarInfo(f"{index}.dump")
                    info.size, info.mode = part.stat().st_size, 0o600
                    with open(part, "rb") as source:
                        tar.addfile(info, source)
                names = json.dumps(databases).encode()
                info = tarfile.TarInfo(DATABASES_MEMBER)
                info.size, info.mode = len(names), 0o600
                tar.addfile(info, io.BytesIO(names))
            f.flush()
            os.fsync(f.fileno())
        except OSError as exc:
            raise BackupFailed(f"cannot write {path}: {exc.strerror or exc}") from None
    return hashed.size, hashed.digest.hexdigest()


def _dump_room(directory: Path) -> int:
    """Bytes a dump may take in `directory`: its free space less BERTH_BACKUP_FREE_MARGIN; BackupFailed when there is none."""
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    room = shutil.disk_usage(directory).free - settings.BERTH_BACKUP_FREE_MARGIN
    if room <= 0:
        raise BackupFailed(_no_room(directory, room, needs=None))
    return room


def _no_room(directory: Path, room: int, *, needs: int | None) -> str:
    free = room + settings.BERTH_BACKUP_FREE_MARGIN
    what = f"the database is {needs} bytes and " if needs is not None else ""
    return (
        f"not enough free space for the dump, so nothing was written: {what}{directory} has {max(free, 0)} bytes free, "
        f"and a dump needs the database's size plus BERTH_BACKUP_FREE_MARGIN ({settings.BERTH_BACKUP_FREE_MARGIN} bytes); "
        "free space (delete old backups) or point BERTH_BACKUP_DIR at a larger disk"
    )


def _manifest_from(stderr: str) -> dict[str, Any]:
    line = next((line for line in reversed(stderr.splitlines()) if line.startswith(MANIFEST_MARKER)), None)
    if line is None:
        raise BackupFailed(f"the dump ended without its table list, so it cannot be checked: {_last_words(stderr)}")
    return _manifest_parse(line[len(MANIFEST_MARKER) :])


def _manifest_parse(text: str) -> dict[str, Any]:
    try:
        manifest = json.loads(text)
        tables = {str(name): int(rows) for name, rows in (manifest.get("tables") or {}).items()}
        roles = [str(role) for role in manifest.get("roles") or []]
    except (ValueError, TypeError, AttributeError):
        raise BackupFailed(f"the table list is not readable: {text[:200]!r}") from None
    return {"tables": tables, "roles": roles, "server_version": manifest.get("server_version", "")}


def backup_restore_into(runtime: Runtime, container: str, env: dict[str, str], backup: Backup) -> None:
    """Replace the container's database with the backup's content.

    The file is hashed as it is copied in, and checked before anything is
    dropped: FileAltered means nothing changed. Any other error may leave the
    database empty.
    """
    path = backup_path(backup)
    inside = f"/tmp/berth-restore-{backup.public_id}.dump"
    digest = hashlib.sha256()
    try:
        f = open(path, "rb")
    except FileNotFoundError:
        raise FileAltered(f"its file {path} is missing") from None
    with f:
        size = os.fstat(f.fileno()).st_size
        if problem := size_problem(size, backup):
            raise FileAltered(problem)
        runtime.file_put(container, inside, file_chunks(f, digest), size=size)
    if problem := digest_problem(digest.hexdigest(), backup):
        runtime.exec_stream(container, ["rm", "-f", inside]).read_all()
        raise FileAltered(problem)
    environment = {**env, "BERTH_ROLES": json.dumps(backup.roles)}
    if not backup.databases:
        _restore_one(runtime, container, environment, inside)
        return
    # A tar of one archive per database: unpacked beside it, then each restored
    # in turn, the project's own into the container's database (a clone's may
    # be named otherwise), every other under its own name. Databases on the
    # server that the backup does not hold are kept.
    unpacked = f"/tmp/berth-restore-{backup.public_id}"
    unpack = ["sh", "-c", 'mkdir -p "$2" && tar -xf "$1" -C "$2"; rc=$?; rm -f "$1"; exit $rc', "berth-unpack", inside, unpacked]
    try:
        _, result = runtime.exec_stream(container, unpack, idle_timeout_s=settings.BERTH_BACKUP_IDLE_TIMEOUT).read_all()
        if result.exit_code != 0:
            raise BackupFailed(exit_reason("tar", result.exit_code, result.stderr))
        for index, database in enumerate(backup.databases, 1):
            name = environment["PGDATABASE"] if index == 1 else str(database)
            try:
                _restore_one(runtime, container, {**environment, "PGDATABASE": name}, f"{unpacked}/{index}.dump")
            except BackupFailed as exc:
                raise BackupFailed(f"database {name}: {exc}") from None
    finally:
        runtime.exec_stream(container, ["rm", "-rf", unpacked]).read_all()


def _restore_one(runtime: Runtime, container: str, environment: dict[str, str], inside: str) -> None:
    argv = ["sh", "-c", RESTORE_SCRIPT, "berth-restore", inside]
    with runtime.exec_stream(container, argv, environment=environment, idle_timeout_s=settings.BERTH_BACKUP_IDLE_TIMEOUT) as stream:
        _, result = stream.read_all()
    if result.exit_code != 0:
        raise BackupFailed(exit_reason("pg_restore", result.exit_code, result.stderr))


def tables_count(runtime: Runtime, container: str, env: dict[str, str], databases: list[str] | None = None) -> dict[str, int]:
    """Every table's rows in the container's database, and in each other of `databases` (a backup's), named as a dump names them."""
    counted: dict[str, int] = {}
    for index, database in enumerate(databases or [env["PGDATABASE"]]):
        name = env["PGDATABASE"] if index == 0 else str(database)
        argv = ["psql", "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", "-c", MANIFEST_SQL]
        out, result = runtime.exec_stream(
            container, argv, environment={**env, "PGDATABASE": name}, idle_timeout_s=settings.BERTH_BACKUP_IDLE_TIMEOUT
        ).read_all()
        if result.exit_code != 0:
            raise BackupFailed(f"counting the restored rows of {name} failed: {exit_reason('psql', result.exit_code, result.stderr)}")
        tables: dict[str, int] = _manifest_parse(out.decode("utf-8", errors="replace").strip())["tables"]
        counted |= {(table if index == 0 else f"{name}/{table}"): rows for table, rows in tables.items()}
    return counted


def tables_difference(recorded: dict[str, int], restored: dict[str, int]) -> str:
    """What differs between the tables recorded at dump time and those restored, or "" when nothing does."""
    problems = []
    if missing := sorted(set(recorded) - set(restored)):
        problems.append(f"tables missing after restore: {', '.join(missing[:5])}{' …' if len(missing) > 5 else ''}")
    if extra := sorted(set(restored) - set(recorded)):
        problems.append(f"tables not in the dump appeared: {', '.join(extra[:5])}{' …' if len(extra) > 5 else ''}")
    differ = [f"{name} has {restored[name]} rows, {rows} at dump time" for name, rows in sorted(recorded.items()) if name in restored and restored[name] != rows]
    if differ:
        problems.append("row counts differ: " + "; ".join(differ[:5]) + (" …" if len(differ) > 5 else ""))
    return "; ".join(problems)


def backup_restore_test(backup: Backup, runtime: Runtime) -> str:
    """Restore the backup into a throwaway server and compare; the reason it fails, or "". RuntimeFailure: could not run."""
    if problem := backup_file_problem(backup):
        return problem
    project = backup.project
    password = secrets.token_urlsafe(18)
    env = db_env(project, password)
    with _scratch_db(project, backup, runtime, env, purpose="verify", own_volume=True, password=password) as container:
        try:
            backup_restore_into(runtime, container, env, backup)
        except FileAltered as exc:
            return str(exc)
        except BackupFailed as exc:
            return f"the restore failed: {exc}"
        return tables_difference(backup.tables, tables_count(runtime, container, env, backup.databases))
