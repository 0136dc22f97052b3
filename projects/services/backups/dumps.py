"""The backup engine work: the SQL and shell scripts, and the throwaway containers that run them.

- A dump runs `pg_dump --format=custom` inside the project's db container, or,
  when the project is not running, inside a throwaway container on its volume.
  The table list and exact row counts are read in pg_dump's own snapshot, so
  they describe exactly what the file holds even while clients write.
- A restore copies the file in (hashing it as it goes, checked before anything
  is dropped) and replaces the database in one pg_restore transaction.
- Verification restores the file into a throwaway container of the same image
  on an internal network (nothing published), checks pg_restore's exit status
  and the recorded tables and row counts, and removes the container.

Nothing here writes a Backup row: steps.py records what these report.
"""

import hashlib
import json
import logging
import os
import secrets
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from django.conf import settings

from projects.models import Backup, Project
from projects.runtime import Runtime, RuntimeFailure, ScratchSpec
from projects.runtime.base import SERVICE_LABEL, container_name, scratch_service
from projects.stack.images import postgres_image
from projects.stack.spec import ADMIN_SESSION_OPTIONS, DB_PORT, PGDATA, postgres_command, project_labels, project_volume, stack_spec

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
SELECT json_build_object(
  'server_version', current_setting('server_version'),
  'roles', (SELECT COALESCE(json_agg(rolname ORDER BY rolname), '[]'::json) FROM pg_roles WHERE rolname !~ '^pg_'),
  'tables', COALESCE((
    SELECT json_object_agg(
      format('%I.%I', n.nspname, c.relname),
      (xpath('/row/c/text()', query_to_xml(format('SELECT count(*) AS c FROM %I.%I', n.nspname, c.relname), false, true, '')))[1]::text::bigint
      ORDER BY n.nspname, c.relname)
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE c.relkind IN ('r', 'p') AND c.relpersistence <> 't'
      AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname !~ '^pg_(toast|temp_)'
      AND NOT EXISTS (SELECT FROM pg_depend d WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e')
  ), '{}'::json))
"""

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
size=$(psql -X -q -At -v ON_ERROR_STOP=1 -c 'SELECT pg_database_size(current_database())') || exit $?
[ "$size" -le "$BERTH_DUMP_ROOM" ] || {{ echo "{NO_ROOM_MARKER}$size" >&2; exit {NO_ROOM_EXIT}; }}
PGOPTIONS="${{PGOPTIONS:-}} -c lock_timeout=$BERTH_LOCK_WAIT" psql -X -q -v ON_ERROR_STOP=1 -o /dev/null <<'SQL'
BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY;
SELECT pg_export_snapshot() AS berth_snapshot \gset
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
# (the superuser), BERTH_DB_OWNER and BERTH_ROLES (a JSON list). Replaces the
# database: drop it (ending its sessions), create it empty from template0,
# create the roles the dump names,
# and pg_restore in one transaction, so a failed restore leaves an empty
# database rather than half of one. With BERTH_SKIP_EVENT_TRIGGERS set, the
# dump's event triggers are left out: an upgrade of a project of the old kind
# restores objects its owner made as a superuser onto a server where it is
# none, and only a superuser may own an event trigger (Berth's own are made
# again: the bootstrap's, and PostGraphile's --watch on its start).
RESTORE_SCRIPT = r"""set -u
file=$1
trap 'rm -f "$file" "$file.list"' EXIT
set --
if [ -n "${BERTH_SKIP_EVENT_TRIGGERS:-}" ]; then
  pg_restore -l "$file" > "$file.list" || exit $?
  grep -v ' EVENT TRIGGER ' "$file.list" > "$file.list.kept"; mv "$file.list.kept" "$file.list"
  set -- --use-list="$file.list"
fi
maintenance=postgres
[ "$PGDATABASE" = postgres ] && maintenance=template1
psql -X -q -v ON_ERROR_STOP=1 -d "$maintenance" -v db="$PGDATABASE" -v owner="${BERTH_DB_OWNER:-$PGUSER}" -v roles="$BERTH_ROLES" <<'SQL' || exit $?
SELECT format('CREATE ROLE %I NOLOGIN', r) FROM json_array_elements_text((:'roles')::json) AS r
 WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = r) \gexec
DROP DATABASE IF EXISTS :"db" WITH (FORCE);
CREATE DATABASE :"db" OWNER :"owner" TEMPLATE template0;
SQL
pg_restore --single-transaction --no-password --dbname="$PGDATABASE" "$@" "$file"
"""


# --- databases to exec in ---------------------------------------------------------


def db_env(project: Project, password: str | None = None) -> dict[str, str]:
    # Loopback TCP, not the socket: while a new server initialises, its
    # temporary server answers on the socket only, and must not be mistaken
    # for the real one.
    return {
        "PGHOST": "127.0.0.1",
        "PGPORT": str(DB_PORT),
        # The server's superuser (Berth's own role on projects of the new kind):
        # it reads every table and restores every owner.
        "PGUSER": project.admin_user,
        "PGPASSWORD": password if password is not None else project.admin_password,
        "PGDATABASE": project.db_name,
        # Free of the project's own timeouts and statement logging (spec.ADMIN_SESSION_OPTIONS).
        "PGOPTIONS": ADMIN_SESSION_OPTIONS,
        "BERTH_DB_OWNER": project.db_user,
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
    """Dump the project's database into the backup's file and record what it holds. Raises BackupFailed, RuntimeFailure."""
    partial, final = partial_path(backup), backup_path(backup)
    room = _dump_room(partial.parent)
    try:
        with project_db(project, backup, runtime, purpose="dump") as (container, env, _live):
            argv = ["sh", "-c", DUMP_SCRIPT, "berth-dump"]
            env = {**env, "BERTH_DUMP_ROOM": str(room), "BERTH_LOCK_WAIT": f"{settings.BERTH_BACKUP_LOCK_WAIT_SECONDS}s"}
            with runtime.exec_stream(container, argv, environment=env, idle_timeout_s=settings.BERTH_BACKUP_IDLE_TIMEOUT) as stream:
                size, sha256, head = partial_write(partial, stream)
                result = stream.result()
        if result.exit_code == NO_ROOM_EXIT and NO_ROOM_MARKER in result.stderr:
            needs = int(result.stderr.split(NO_ROOM_MARKER, 1)[1].split()[0])
            raise BackupFailed(_no_room(partial.parent, room, needs=needs))
        if result.exit_code != 0:
            locked = "Query was: LOCK TABLE" in result.stderr or "lock timeout" in result.stderr
            why = (
                f"a table stayed locked (by DDL or an explicit LOCK) longer than BERTH_BACKUP_LOCK_WAIT_SECONDS "
                f"({settings.BERTH_BACKUP_LOCK_WAIT_SECONDS} s); try again when it is released. "
                if locked
                else ""
            )
            raise BackupFailed(f"the dump failed: {why}{exit_reason('pg_dump', result.exit_code, result.stderr)}")
        if size == 0:
            raise BackupFailed("the dump is empty: pg_dump wrote nothing")
        if head != MAGIC:
            raise BackupFailed(f"the dump does not start like a custom-format archive ({head!r}): it is not a pg_dump file")
        if size < MIN_DUMP_BYTES:
            raise BackupFailed(f"the dump is only {size} bytes: too short to hold even an empty database")
        manifest = _manifest_from(result.stderr)
        partial_publish(partial, final)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    backup.size, backup.sha256 = size, sha256
    backup.tables, backup.roles = manifest["tables"], manifest["roles"]
    backup.server_version = str(manifest.get("server_version", ""))[:100]


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
    argv = ["sh", "-c", RESTORE_SCRIPT, "berth-restore", inside]
    environment = {**env, "BERTH_ROLES": json.dumps(backup.roles)}
    with runtime.exec_stream(container, argv, environment=environment, idle_timeout_s=settings.BERTH_BACKUP_IDLE_TIMEOUT) as stream:
        _, result = stream.read_all()
    if result.exit_code != 0:
        raise BackupFailed(exit_reason("pg_restore", result.exit_code, result.stderr))


def tables_count(runtime: Runtime, container: str, env: dict[str, str]) -> dict[str, int]:
    argv = ["psql", "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", "-c", MANIFEST_SQL]
    out, result = runtime.exec_stream(container, argv, environment=env, idle_timeout_s=settings.BERTH_BACKUP_IDLE_TIMEOUT).read_all()
    if result.exit_code != 0:
        raise BackupFailed(f"counting the restored rows failed: {exit_reason('psql', result.exit_code, result.stderr)}")
    tables: dict[str, int] = _manifest_parse(out.decode("utf-8", errors="replace").strip())["tables"]
    return tables


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
        return tables_difference(backup.tables, tables_count(runtime, container, env))
