"""Backups you can trust: a pg_dump is only called good once it has been restored.

- `project_backup` queues an Operation (so the one-in-flight-per-project rule
  holds) that never changes the project's status. The worker runs `pg_dump
  --format=custom` inside the project's db container, or, when the project is
  not running, inside a throwaway container on its volume; the output streams
  to `.<id>.dump.partial`, is fsynced, and is renamed to `<id>.dump` only when
  pg_dump exited 0 and wrote a whole archive. Any failure removes the partial
  file: a backup that failed has no file.
- The table list and exact row counts are read in pg_dump's own snapshot, so
  they describe exactly what the file holds even while clients write.
- Verification restores the file into a throwaway container of the same image
  on an internal network (nothing published), checks pg_restore's exit status
  and the recorded tables and row counts, and removes the container. The file's
  sha256 is checked first, and again as the file is copied for any restore.
- `project_restore_backup` takes a safety backup (verified) before it replaces
  the project's database; a purge takes a final one (lifecycle.py).

Step functions raise StepFailed with the project's fields afterwards: a backup
that fails leaves the project as it was; a restore that fails half-way leaves
it failed, with the safety backup to restore.
"""

import errno
import hashlib
import json
import logging
import os
import secrets
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from projects.models import Backup, BackupSchedule, Operation, Project
from projects.runtime import Runtime, RuntimeFailure, ScratchSpec, get_runtime
from projects.runtime.base import SERVICE_LABEL
from projects.runtime.spec import DB_PORT, object_names, postgres_image, project_labels, stack_spec

from .errors import InvalidInput, InvalidTransition, ServiceError
from .operations import StepFailed, StepResult, operation_enqueue, secrets_redact

logger = logging.getLogger(__name__)

S = Project.Status
B = Backup.State

MAGIC = b"PGDMP"  # the first bytes of every custom-format archive
# A custom-format archive of an empty database is about a kilobyte: its header
# and table of contents. Anything shorter was cut off.
MIN_DUMP_BYTES = 256
MANIFEST_MARKER = "BERTH-MANIFEST "
CHUNK = 1024 * 1024
SCRATCH_SERVICES = ("backup-dump", "backup-restore", "backup-verify")

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

# Run as `sh -c DUMP_SCRIPT berth-dump` with PGHOST/PGUSER/PGPASSWORD/PGDATABASE set.
# One psql session holds a repeatable-read transaction and exports its
# snapshot; pg_dump (run from psql with \!, so the transaction stays open)
# dumps that snapshot to stdout, then the manifest is read in the same one.
# psql 15 cannot report a \! command's status, so pg_dump's goes through a file.
# stdout carries the archive only; the manifest comes last, on stderr.
DUMP_SCRIPT = rf"""set -u
work=$(mktemp -d /tmp/berth-dump.XXXXXX) || exit 70
trap 'rm -rf "$work"' EXIT
export BERTH_WORK="$work"
psql -X -q -v ON_ERROR_STOP=1 -o /dev/null <<'SQL'
BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY;
SELECT pg_export_snapshot() AS berth_snapshot \gset
\setenv BERTH_SNAPSHOT :berth_snapshot
\! pg_dump --format=custom --no-password --snapshot="$BERTH_SNAPSHOT"; echo $? > "$BERTH_WORK/rc"
\pset format unaligned
\pset tuples_only on
\o `echo "$BERTH_WORK/manifest"`
{MANIFEST_SQL};
\o
COMMIT;
SQL
rc=$?
[ "$rc" -eq 0 ] || {{ echo "psql exited $rc" >&2; exit "$rc"; }}
dump_rc=$(cat "$work/rc" 2>/dev/null) || {{ echo "pg_dump did not run" >&2; exit 70; }}
[ "$dump_rc" -eq 0 ] || exit "$dump_rc"
printf '{MANIFEST_MARKER}%s\n' "$(cat "$work/manifest")" >&2
"""

# Run as `sh -c RESTORE_SCRIPT berth-restore <file>` with the PG* variables
# and BERTH_ROLES (a JSON list). Replaces the database: drop it (ending its
# sessions), create it empty from template0, create the roles the dump names,
# and pg_restore in one transaction, so a failed restore leaves an empty
# database rather than half of one.
RESTORE_SCRIPT = r"""set -u
file=$1
trap 'rm -f "$file"' EXIT
maintenance=postgres
[ "$PGDATABASE" = postgres ] && maintenance=template1
psql -X -q -v ON_ERROR_STOP=1 -d "$maintenance" -v db="$PGDATABASE" -v owner="$PGUSER" -v roles="$BERTH_ROLES" <<'SQL' || exit $?
SELECT format('CREATE ROLE %I NOLOGIN', r) FROM json_array_elements_text((:'roles')::json) AS r
 WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = r) \gexec
DROP DATABASE IF EXISTS :"db" WITH (FORCE);
CREATE DATABASE :"db" OWNER :"owner" TEMPLATE template0;
SQL
pg_restore --single-transaction --no-password --dbname="$PGDATABASE" "$file"
"""


class BackupFailed(Exception):
    """A dump, copy or restore that did not work; str() says why, for a person."""


class BackupRefused(Exception):
    """A backup (or its verification) failed, so the action that needed it must not go on."""


class FileAltered(BackupFailed):
    """The backup's file is not the one that was dumped (missing, resized or a different sha256)."""


# --- files ------------------------------------------------------------------------


def backup_dir(project_id: str) -> Path:
    return Path(settings.BERTH_BACKUP_DIR) / project_id


def backup_path(backup: Backup) -> Path:
    return backup_dir(backup.project.public_id) / backup.filename


def _partial_path(backup: Backup) -> Path:
    return backup_dir(backup.project.public_id) / f".{backup.filename}.partial"


def _write_partial(path: Path, chunks: Iterable[bytes]) -> tuple[int, str, bytes]:
    """Write chunks to `path` and fsync it; returns (size, sha256, first bytes). A failure removes the file."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    digest = hashlib.sha256()
    size = 0
    head = b""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        for chunk in chunks:
            view = memoryview(chunk)
            while view:
                written = os.write(fd, view)
                view = view[written:]
            digest.update(chunk)
            if len(head) < len(MAGIC):
                head += chunk[: len(MAGIC) - len(head)]
            size += len(chunk)
        os.fsync(fd)
    except OSError as exc:
        os.close(fd)
        path.unlink(missing_ok=True)
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            raise BackupFailed(
                f"the disk holding {path.parent} is full ({exc.strerror}) after {size} bytes of the dump; "
                "the partial file was removed: free space or point BERTH_BACKUP_DIR elsewhere"
            ) from None
        raise BackupFailed(f"cannot write {path}: {exc.strerror or exc}") from None
    except BaseException:
        os.close(fd)
        path.unlink(missing_ok=True)
        raise
    os.close(fd)
    return size, digest.hexdigest(), head


def _publish(partial: Path, final: Path) -> None:
    """Rename the finished file into place and make the rename itself durable."""
    os.replace(partial, final)
    fd = os.open(final.parent, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _chunks(f, digest) -> Iterator[bytes]:
    while chunk := f.read(CHUNK):
        digest.update(chunk)
        yield chunk


def backup_file_problem(backup: Backup) -> str:
    """Why the backup's file is not the one that was dumped, or "" when it is (size and sha256 match)."""
    path = backup_path(backup)
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        return f"its file {path} is missing"
    if size != backup.size:
        return f"its file is {size} bytes but {backup.size} were written at dump time: it was truncated or altered"
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for _ in _chunks(f, digest):
            pass
    if digest.hexdigest() != backup.sha256:
        return (
            f"its file's sha256 is {digest.hexdigest()} but {backup.sha256} was recorded at dump time: "
            "the file was altered or damaged after the dump"
        )
    return ""


# --- databases to exec in ---------------------------------------------------------


def _db_env(project: Project, password: str | None = None) -> dict[str, str]:
    # Loopback TCP, not the socket: while a new server initialises, its
    # temporary server answers on the socket only, and must not be mistaken
    # for the real one.
    return {
        "PGHOST": "127.0.0.1",
        "PGPORT": str(DB_PORT),
        "PGUSER": project.db_user,
        "PGPASSWORD": password if password is not None else project.db_password,
        "PGDATABASE": project.db_name,
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
        name=f"project_{project.public_id}_{purpose}_{backup.public_id}",
        image=postgres_image(version),
        environment=environment,
        command=db.command,
        labels={**project_labels(project.public_id), SERVICE_LABEL: f"backup-{purpose}"},
        volume_mount=db.volume_mount,
        mem_limit=db.mem_limit,
        volume="" if own_volume else object_names(project.public_id)["volume"],
        own_volume=own_volume,
    )


def _scratch_remove_quietly(runtime: Runtime, name: str) -> None:
    try:
        runtime.scratch_remove(name)
    except RuntimeFailure:
        # The backup pass removes it later (backups_settle_orphans).
        logger.warning("throwaway container %s not removed yet", name, exc_info=True)


def _wait_ready(runtime: Runtime, container: str, env: dict[str, str], *, project_id: str) -> None:
    deadline = time.monotonic() + settings.BERTH_READY_TIMEOUT
    while True:
        try:
            _, result = runtime.exec_stream(container, ["pg_isready", "-q", "-h", "127.0.0.1", "-p", str(DB_PORT)], environment=env).read_all()
        except RuntimeFailure as exc:
            tail = runtime.container_logs(project_id, container.removeprefix(f"project_{project_id}_"), tail=5).strip().splitlines()
            raise BackupFailed(f"the throwaway database {container} stopped before it was ready ({exc}){': ' + tail[-1] if tail else ''}") from None
        if result.exit_code == 0:
            return
        if time.monotonic() >= deadline:
            raise BackupFailed(f"the throwaway database {container} was not ready after {settings.BERTH_READY_TIMEOUT} s")
        time.sleep(0.2)


@contextmanager
def _project_db(project: Project, backup: Backup, runtime: Runtime, *, purpose: str) -> Iterator[tuple[str, dict[str, str], bool]]:
    """The project's database as (container, environment, live): its db container if it runs, else a throwaway on its volume."""
    state = runtime.stack_state(project.public_id)
    db = state.container("db")
    env = _db_env(project)
    if db is not None and db.running:
        yield db.name, env, True
        return
    if db is not None and db.status not in {"created", "exited", "dead"}:
        # Two servers on one data directory corrupt it: only a db container
        # that certainly does not run lets us start another on its volume.
        raise BackupFailed(f"the db container is {db.status}, neither running nor stopped: start or stop the project, then retry")
    if not state.volume:
        raise BackupFailed(f"project {project.public_id} has no data volume on the engine: there is no database to read")
    spec = _scratch_spec(project, purpose=purpose, backup=backup, own_volume=False)
    try:
        runtime.scratch_up(spec)
        _wait_ready(runtime, spec.name, env, project_id=project.public_id)
        yield spec.name, env, False
    finally:
        _scratch_remove_quietly(runtime, spec.name)


def _last_words(stderr: str, lines: int = 3) -> str:
    kept = [line for line in stderr.strip().splitlines() if line.strip() and not line.startswith(MANIFEST_MARKER)]
    return " / ".join(kept[-lines:]) or "no message"


def _exit_reason(program: str, code: int | None, stderr: str) -> str:
    if code is None:
        return f"{program} did not finish: the container stopped or vanished while it ran"
    killed = " (killed: the container was stopped or ran out of memory)" if code == 137 else ""
    return f"{program} exited {code}{killed}: {_last_words(stderr)}"


# --- dump, restore, count ----------------------------------------------------------


def _dump(project: Project, backup: Backup, runtime: Runtime) -> None:
    """Dump the project's database into the backup's file and record what it holds. Raises BackupFailed, RuntimeFailure."""
    partial, final = _partial_path(backup), backup_path(backup)
    try:
        with _project_db(project, backup, runtime, purpose="dump") as (container, env, _live):
            argv = ["sh", "-c", DUMP_SCRIPT, "berth-dump"]
            with runtime.exec_stream(container, argv, environment=env, idle_timeout_s=settings.BERTH_BACKUP_IDLE_TIMEOUT) as stream:
                size, sha256, head = _write_partial(partial, stream)
                result = stream.result()
        if result.exit_code != 0:
            raise BackupFailed(f"the dump failed: {_exit_reason('pg_dump', result.exit_code, result.stderr)}")
        if size == 0:
            raise BackupFailed("the dump is empty: pg_dump wrote nothing")
        if head != MAGIC:
            raise BackupFailed(f"the dump does not start like a custom-format archive ({head!r}): it is not a pg_dump file")
        if size < MIN_DUMP_BYTES:
            raise BackupFailed(f"the dump is only {size} bytes: too short to hold even an empty database")
        manifest = _manifest_from(result.stderr)
        _publish(partial, final)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    backup.size, backup.sha256 = size, sha256
    backup.tables, backup.roles = manifest["tables"], manifest["roles"]
    backup.server_version = str(manifest.get("server_version", ""))[:100]


def _manifest_from(stderr: str) -> dict:
    line = next((line for line in reversed(stderr.splitlines()) if line.startswith(MANIFEST_MARKER)), None)
    if line is None:
        raise BackupFailed(f"the dump ended without its table list, so it cannot be checked: {_last_words(stderr)}")
    return _manifest_parse(line[len(MANIFEST_MARKER) :])


def _manifest_parse(text: str) -> dict:
    try:
        manifest = json.loads(text)
        tables = {str(name): int(rows) for name, rows in (manifest.get("tables") or {}).items()}
        roles = [str(role) for role in manifest.get("roles") or []]
    except (ValueError, TypeError, AttributeError):
        raise BackupFailed(f"the table list is not readable: {text[:200]!r}") from None
    return {"tables": tables, "roles": roles, "server_version": manifest.get("server_version", "")}


def _restore_file(runtime: Runtime, container: str, env: dict[str, str], backup: Backup) -> None:
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
        if size != backup.size:
            raise FileAltered(f"its file is {size} bytes but {backup.size} were written at dump time: it was truncated or altered")
        runtime.file_put(container, inside, _chunks(f, digest), size=size)
    if digest.hexdigest() != backup.sha256:
        runtime.exec_stream(container, ["rm", "-f", inside]).read_all()
        raise FileAltered(
            f"its file's sha256 is {digest.hexdigest()} but {backup.sha256} was recorded at dump time: "
            "the file was altered or damaged after the dump"
        )
    argv = ["sh", "-c", RESTORE_SCRIPT, "berth-restore", inside]
    environment = {**env, "BERTH_ROLES": json.dumps(backup.roles)}
    with runtime.exec_stream(container, argv, environment=environment, idle_timeout_s=settings.BERTH_BACKUP_IDLE_TIMEOUT) as stream:
        _, result = stream.read_all()
    if result.exit_code != 0:
        raise BackupFailed(_exit_reason("pg_restore", result.exit_code, result.stderr))


def _count(runtime: Runtime, container: str, env: dict[str, str]) -> dict[str, int]:
    argv = ["psql", "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", "-c", MANIFEST_SQL]
    out, result = runtime.exec_stream(container, argv, environment=env, idle_timeout_s=settings.BERTH_BACKUP_IDLE_TIMEOUT).read_all()
    if result.exit_code != 0:
        raise BackupFailed(f"counting the restored rows failed: {_exit_reason('psql', result.exit_code, result.stderr)}")
    return _manifest_parse(out.decode("utf-8", errors="replace").strip())["tables"]


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


def _verify(backup: Backup, runtime: Runtime) -> str:
    """Restore the backup into a throwaway server and compare; the reason it fails, or "". RuntimeFailure: could not run."""
    if problem := backup_file_problem(backup):
        return problem
    project = backup.project
    password = secrets.token_urlsafe(18)
    spec = _scratch_spec(project, purpose="verify", backup=backup, own_volume=True, password=password)
    env = _db_env(project, password)
    try:
        runtime.scratch_up(spec)
        _wait_ready(runtime, spec.name, env, project_id=project.public_id)
        try:
            _restore_file(runtime, spec.name, env, backup)
        except FileAltered as exc:
            return str(exc)
        except BackupFailed as exc:
            return f"the restore failed: {exc}"
        return tables_difference(backup.tables, _count(runtime, spec.name, env))
    finally:
        _scratch_remove_quietly(runtime, spec.name)


# --- taking one backup (dump, then verify) -----------------------------------------


def _backup_save(backup: Backup, **fields) -> None:
    if fields.get("error"):
        # The engine's words can echo what it was given: the project's secrets never reach the row.
        fields["error"] = secrets_redact(fields["error"], backup.project)
    for name, value in fields.items():
        setattr(backup, name, value)
    backup.save()


def backup_take(project: Project, backup: Backup, *, runtime: Runtime | None = None) -> None:
    """Dump then verify `backup` (a running row); raise BackupRefused unless it ends verified."""
    runtime = runtime or get_runtime()
    try:
        _dump(project, backup, runtime)
    except (BackupFailed, RuntimeFailure) as exc:
        _backup_save(backup, state=B.FAILED, error=str(exc), finished_at=timezone.now())
        raise BackupRefused(f"backup {backup.public_id} failed: {exc}") from None
    except Exception as exc:
        logger.exception("backup %s failed unexpectedly", backup.public_id)
        _backup_save(backup, state=B.FAILED, error=f"internal error ({type(exc).__name__}); see the worker's log", finished_at=timezone.now())
        raise BackupRefused(f"backup {backup.public_id} failed: internal error ({type(exc).__name__})") from None
    _backup_save(backup, state=B.SUCCEEDED, error="", finished_at=timezone.now())
    backup_check(backup, runtime=runtime)


def backup_check(backup: Backup, *, runtime: Runtime | None = None) -> None:
    """Verify `backup` and record the verdict; raise BackupRefused unless it is verified."""
    runtime = runtime or get_runtime()
    try:
        reason = _verify(backup, runtime)
    except (BackupFailed, RuntimeFailure) as exc:
        # The engine failed us, not the file: the backup keeps its state.
        _backup_save(backup, error=f"verification could not run: {exc}")
        raise BackupRefused(f"backup {backup.public_id} could not be verified: {exc}") from None
    except Exception as exc:
        logger.exception("verification of backup %s failed unexpectedly", backup.public_id)
        _backup_save(backup, error=f"verification could not run: internal error ({type(exc).__name__}); see the worker's log")
        raise BackupRefused(f"backup {backup.public_id} could not be verified: internal error ({type(exc).__name__})") from None
    if reason:
        _backup_save(backup, state=B.VERIFY_FAILED, error=reason, verified_at=timezone.now())
        raise BackupRefused(f"backup {backup.public_id} failed verification: {reason}")
    _backup_save(backup, state=B.VERIFIED, error="", verified_at=timezone.now())


# --- steps, run by the worker ------------------------------------------------------


def _current_operation(project: Project) -> Operation:
    # The one operation in flight for the project (a database constraint) is
    # the one whose step is running.
    return Operation.objects.select_related("backup", "backup__project", "requested_by").get(project=project, state=Operation.State.RUNNING)


def _step_backup(project: Project) -> StepResult:
    backup = _current_operation(project).backup
    try:
        backup_take(project, backup)
    except BackupRefused as exc:
        raise StepFailed(str(exc), outcome={}) from None
    return {}


def _step_verify(project: Project) -> StepResult:
    backup = _current_operation(project).backup
    try:
        backup_check(backup)
    except BackupRefused as exc:
        raise StepFailed(str(exc), outcome={}) from None
    return {}


def _step_restore(project: Project) -> StepResult:
    operation = _current_operation(project)
    source = operation.backup
    runtime = get_runtime()
    if problem := backup_file_problem(source):
        _backup_save(source, state=B.VERIFY_FAILED, error=problem, verified_at=timezone.now())
        raise StepFailed(f"backup {source.public_id} refused: {problem}; the project was not touched", outcome={})
    safety = Backup.objects.create(
        project=project, operation=operation, requested_by=operation.requested_by,
        trigger=Backup.Trigger.PRE_RESTORE, postgres_version=project.postgres_version,
    )  # fmt: skip
    try:
        backup_take(project, safety, runtime=runtime)
    except BackupRefused as exc:
        raise StepFailed(f"the safety backup failed, so nothing was restored: {exc}", outcome={}) from None
    try:
        with _project_db(project, source, runtime, purpose="restore") as (container, env, live):
            _restore_file(runtime, container, env, source)
        if live:
            # Bootstrap again (roles, the api's schema-reload hook) and wait for the api.
            runtime.stack_wait_ready(stack_spec(project), timeout_s=settings.BERTH_READY_TIMEOUT)
    except FileAltered as exc:
        _backup_save(source, state=B.VERIFY_FAILED, error=str(exc), verified_at=timezone.now())
        raise StepFailed(f"backup {source.public_id} refused: {exc}; the project was not touched", outcome={}) from None
    except (BackupFailed, RuntimeFailure) as exc:
        raise StepFailed(
            f"restoring backup {source.public_id} failed: {exc}. The database may be empty; "
            f"backup {safety.public_id}, taken just before, holds what it had",
            outcome={"status": S.FAILED},
        ) from None
    return {}


def _step_clone(project: Project) -> StepResult:
    """Create the new project's stack, then restore the source backup into it."""
    source = _current_operation(project).backup
    if source is None:
        raise StepFailed("the backup to clone from was deleted", outcome={"status": S.FAILED})
    if problem := backup_file_problem(source):
        raise StepFailed(f"backup {source.public_id} refused: {problem}", outcome={"status": S.FAILED})
    runtime = get_runtime()
    spec = stack_spec(project)
    runtime.stack_up(spec)
    runtime.stack_wait_ready(spec, timeout_s=settings.BERTH_READY_TIMEOUT)
    try:
        _restore_file(runtime, spec.db.name, _db_env(project), source)
    except BackupFailed as exc:
        raise StepFailed(f"restoring backup {source.public_id} into the new project failed: {exc}", outcome={"status": S.FAILED}) from None
    runtime.stack_wait_ready(spec, timeout_s=settings.BERTH_READY_TIMEOUT)
    return {"status": S.RUNNING, "health": Project.Health.HEALTHY, "observed_at": timezone.now()}


STEPS = {
    "backup": _step_backup,
    "verify_backup": _step_verify,
    "restore_backup": _step_restore,
    "clone": _step_clone,
}


def backup_before_purge(project: Project) -> Backup | None:
    """The purge's final backup, verified; StepFailed (the project stays deleted) when it cannot be taken.

    A project without a data volume has nothing to lose: None.
    """
    runtime = get_runtime()
    if not runtime.stack_state(project.public_id).volume:
        logger.info("purge of %s: no data volume, so no final backup", project.public_id)
        return None
    operation = _current_operation(project)
    final = Backup.objects.create(
        project=project, operation=operation, requested_by=operation.requested_by, trigger=Backup.Trigger.PRE_PURGE,
        postgres_version=project.postgres_version,
        keep_until=timezone.now() + timedelta(days=settings.BERTH_PURGE_BACKUP_DAYS),
    )  # fmt: skip
    try:
        backup_take(project, final, runtime=runtime)
    except BackupRefused as exc:
        raise StepFailed(f"purge refused, nothing was removed: the final backup is not good: {exc}", outcome={"status": S.DELETED}) from None
    return final


def backups_keep_after_purge(project: Project) -> int:
    """A purged project's backups go BERTH_PURGE_BACKUP_DAYS after the purge (those with an earlier end keep it)."""
    until = timezone.now() + timedelta(days=settings.BERTH_PURGE_BACKUP_DAYS)
    return project.backups.filter(Q(keep_until__isnull=True) | Q(keep_until__gt=until)).update(keep_until=until)


# --- services: what the edges call -----------------------------------------------


def project_backup(*, project: Project, requested_by=None, trigger: str = Backup.Trigger.MANUAL) -> Operation:
    """Queue a backup (dump, then verification) of `project`; its status does not change."""
    with transaction.atomic():
        backup = Backup.objects.create(project=project, trigger=trigger, requested_by=requested_by, postgres_version=project.postgres_version)
        operation = operation_enqueue(
            project=project, kind="backup", action="backup", transitional=None, requested_by=requested_by, backup=backup
        )
        Backup.objects.filter(pk=backup.pk).update(operation=operation)
    return operation


def backup_verify(*, backup: Backup, requested_by=None) -> Operation:
    """Queue a new verification of `backup` (after a restore test, or to check its file still holds)."""
    if backup.state in (B.RUNNING, B.FAILED):
        raise InvalidTransition(f"backup {backup.public_id} is {backup.state}: there is no file to verify")
    return operation_enqueue(
        project=backup.project, kind="verify_backup", action="verify_backup", transitional=None, requested_by=requested_by, backup=backup
    )


def backup_check_restorable(backup: Backup) -> None:
    """InvalidTransition unless `backup` holds a dump that is not known to be bad."""
    if not backup.is_restorable:
        why = f": {backup.error}" if backup.error else ""
        raise InvalidTransition(f"backup {backup.public_id} is {backup.state}, so it cannot be restored{why}")


def project_restore_backup(*, backup: Backup, confirm: str | None, requested_by=None) -> Operation:
    """Replace the project's database with `backup`, after a safety backup; `confirm` must repeat the project's id."""
    project = backup.project
    if confirm != project.public_id:
        raise InvalidInput("confirm", f"must be the project's id ({project.public_id}) to replace its database with backup {backup.public_id}")
    backup_check_restorable(backup)
    return operation_enqueue(
        project=project, kind="restore_backup", action="restore_backup", transitional=None, requested_by=requested_by, backup=backup
    )


def backup_check_cloneable(backup: Backup, *, postgres_version: str) -> None:
    """For project_create(from_backup=…): the backup restores, into the same or a newer PostgreSQL."""
    backup_check_restorable(backup)
    if int(postgres_version) < int(backup.postgres_version):
        raise InvalidInput(
            "postgres_version", f"must be {backup.postgres_version} or newer: backup {backup.public_id} was dumped from PostgreSQL {backup.postgres_version}"
        )


def backup_delete(*, backup: Backup) -> None:
    """Remove a backup's file and row; refused while an operation makes or uses it."""
    if backup.state == B.RUNNING or backup.operations.filter(state__in=Operation.IN_FLIGHT).exists():
        raise InvalidTransition(f"backup {backup.public_id} is in use by an operation in flight")
    backup_path(backup).unlink(missing_ok=True)
    backup.delete()


def backup_schedule_set(*, project: Project, hour: int, keep: int, enabled: bool = True) -> BackupSchedule:
    """Daily backups of `project` at `hour` (UTC), keeping the newest `keep` good ones."""
    for name, value, low, high in (("hour", hour, 0, 23), ("keep", keep, 1, 365)):
        if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
            raise InvalidInput(name, f"must be a whole number from {low} to {high}")
    if not isinstance(enabled, bool):
        raise InvalidInput("enabled", "must be true or false")
    schedule, _ = BackupSchedule.objects.update_or_create(project=project, defaults={"hour": hour, "keep": keep, "enabled": enabled})
    return schedule


# --- the periodic pass: schedules, retention, leftovers ----------------------------


@dataclass
class BackupsReport:
    queued: list[str] = field(default_factory=list)  # "<project id>: operation <id>"
    skipped: list[str] = field(default_factory=list)  # due, but refused for now (an operation in flight, …)
    removed: list[str] = field(default_factory=list)  # backups removed by retention or expiry
    settled: list[str] = field(default_factory=list)  # running backups whose worker died, now failed
    cleaned: list[str] = field(default_factory=list)  # partial files and throwaway containers left behind
    engine_error: str = ""


def last_due(hour: int, now: datetime) -> datetime:
    """The latest time at or before `now` at which a daily backup at `hour` (UTC) fell due."""
    due = now.astimezone(UTC).replace(hour=hour, minute=0, second=0, microsecond=0)
    return due if due <= now else due - timedelta(days=1)


def backups_run_due(*, now: datetime | None = None, report: BackupsReport | None = None) -> BackupsReport:
    """Queue the scheduled backups that are due: one per schedule per day, caught up once after downtime."""
    now = now or timezone.now()
    report = report or BackupsReport()
    schedules = BackupSchedule.objects.filter(enabled=True, project__status__in=[S.RUNNING, S.STOPPED]).select_related("project")
    for schedule in schedules:
        project = schedule.project
        if project.backups.filter(trigger=Backup.Trigger.SCHEDULED, created_at__gte=last_due(schedule.hour, now)).exists():
            continue
        try:
            operation = project_backup(project=project, trigger=Backup.Trigger.SCHEDULED)
        except ServiceError as exc:
            report.skipped.append(f"{project.public_id}: {exc}")  # the next pass tries again
            continue
        report.queued.append(f"{project.public_id}: operation {operation.public_id}")
    return report


def backups_prune(*, now: datetime | None = None, report: BackupsReport | None = None) -> BackupsReport:
    """Remove expired backups (keep_until passed) and scheduled ones beyond each schedule's `keep`."""
    now = now or timezone.now()
    report = report or BackupsReport()
    doomed = list(Backup.objects.filter(keep_until__lt=now).exclude(state=B.RUNNING).select_related("project"))
    for schedule in BackupSchedule.objects.select_related("project"):
        scheduled = list(schedule.project.backups.filter(trigger=Backup.Trigger.SCHEDULED).exclude(state=B.RUNNING).order_by("-created_at", "-id"))
        good = [b for b in scheduled if b.is_restorable][: schedule.keep]
        # Older than the oldest good one kept: good ones beyond `keep`, failed ones before them.
        if len(good) == schedule.keep:
            doomed += [b for b in scheduled if b.created_at < good[-1].created_at]
    for backup in {b.pk: b for b in doomed}.values():
        try:
            backup_delete(backup=backup)
        except ServiceError:
            continue  # in use; the next pass
        report.removed.append(f"{backup.project.public_id}: backup {backup.public_id} ({backup.trigger})")
    return report


def backups_settle_orphans(*, runtime: Runtime | None = None, report: BackupsReport | None = None) -> BackupsReport:
    """Fail the backups a dead worker left running, and remove its partial files and throwaway containers."""
    runtime = runtime or get_runtime()
    report = report or BackupsReport()
    in_flight = Operation.objects.filter(state__in=Operation.IN_FLIGHT)
    orphans = Backup.objects.filter(state=B.RUNNING).exclude(operation__in=in_flight).exclude(operations__in=in_flight)
    # A backup row is made just before its operation: give a queuing request a moment.
    for backup in orphans.filter(created_at__lt=timezone.now() - timedelta(minutes=1)).select_related("project"):
        _backup_save(backup, state=B.FAILED, error="the worker stopped during this backup; it has no file", finished_at=timezone.now())
        _partial_path(backup).unlink(missing_ok=True)
        report.settled.append(f"{backup.project.public_id}: backup {backup.public_id}")
    # Only what belongs to projects of this database: another Berth (a test
    # run, a second instance) may share the engine or the directory, and its
    # work in progress is not ours to judge.
    running = set(Backup.objects.filter(state=B.RUNNING).values_list("public_id", flat=True))
    root = Path(settings.BERTH_BACKUP_DIR)
    partials = list(root.glob("*/.*.dump.partial")) if root.is_dir() else []
    ours = set(Project.objects.filter(public_id__in={p.parent.name for p in partials}).values_list("public_id", flat=True))
    for partial in partials:
        if partial.parent.name in ours and partial.name[1:].split(".")[0] not in running:
            partial.unlink(missing_ok=True)
            report.cleaned.append(str(partial))
    try:
        scratch = [c for c in runtime.containers() if c.service in SCRATCH_SERVICES]
        # Read after the listing: a throwaway listed while its operation ran is
        # never taken for a leftover, even if that operation started just now.
        idle = set(
            Project.objects.filter(public_id__in={c.project_id for c in scratch})
            .exclude(operations__in=in_flight)
            .values_list("public_id", flat=True)
        )
        for container in scratch:
            if container.project_id in idle:
                runtime.scratch_remove(container.name)
                report.cleaned.append(container.name)
    except RuntimeFailure as exc:
        report.engine_error = str(exc)
    return report


def backups_pass(*, now: datetime | None = None, runtime: Runtime | None = None) -> BackupsReport:
    """What `manage.py backup_projects` does once: leftovers, then due schedules, then retention."""
    report = backups_settle_orphans(runtime=runtime)
    backups_run_due(now=now, report=report)
    backups_prune(now=now, report=report)
    return report
