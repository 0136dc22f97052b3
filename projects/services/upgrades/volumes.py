"""The engine work of a major-version upgrade: the extension check, and the new volume filled from a dump.

- The check compares the extensions installed in the live server's databases
  (`pg_extension` in each one a dump holds) with those the new major's image offers
  (`pg_available_extensions`, read in a throwaway server of that image on a
  volume of its own): it runs before anything changes.
- The restore makes the new data volume and, in a throwaway server of the new
  major on it (no network, no published port: nobody reaches a half-restored
  database), lets the image's initdb make the server the new way (Berth's
  superuser, the owner not one), runs the project's bootstrap (a dump carries
  no roles), restores the verified dump, compares every table's row count with
  the dump's record, and bootstraps again so the grants cover the restored
  tables. The stack is switched onto the volume only after that (steps.py).

Nothing here writes a row: steps.py records what these report.
"""

import json
import secrets

from projects.models import Backup, Project
from projects.runtime import Runtime, RuntimeFailure, ScratchSpec
from projects.runtime.base import BOOTSTRAP_ARGV, POSTGRES_LABEL, SERVICE_LABEL, container_name
from projects.services.backups.dumps import (
    backup_restore_into,
    databases_listed,
    db_env,
    exit_reason,
    scratch_remove_quietly,
    scratch_wait_ready,
    tables_count,
    tables_difference,
)
from projects.services.backups.files import BackupFailed
from projects.stack.images import postgres_image
from projects.stack.spec import PGDATA, bootstrap, postgres_command, project_labels, project_volume, stack_spec

# Qualified, and run in pinned sessions (db_env): the live database is the tenant's.
EXTENSIONS_USED_SQL = "SELECT COALESCE(pg_catalog.json_agg(extname ORDER BY extname), '[]') FROM pg_catalog.pg_extension"
EXTENSIONS_AVAILABLE_SQL = "SELECT COALESCE(pg_catalog.json_agg(name ORDER BY name), '[]') FROM pg_catalog.pg_available_extensions"


class UpgradeFailed(Exception):
    """The upgrade cannot go on; str() says why, for a person."""


def _scratch(project: Project, *, purpose: str, operation_id: str, version: str, volume: str, password: str | None = None) -> ScratchSpec:
    """A throwaway server of PostgreSQL `version` for an upgrade's `purpose` (check, restore), labelled like the project's own."""
    db = stack_spec(project).db
    environment = dict(db.environment)
    if password is not None:
        environment["POSTGRES_PASSWORD"] = password
    return ScratchSpec(
        name=container_name(project.public_id, f"upgrade-{purpose}_{operation_id}"),
        image=postgres_image(version),
        environment=environment,
        command=postgres_command(),
        labels={**project_labels(project.public_id), SERVICE_LABEL: f"upgrade-{purpose}"},
        volume_mount=PGDATA,
        mem_limit=db.mem_limit,
        confinement=db.confinement,
        volume=volume,
        own_volume=not volume,
    )


def _json_list(runtime: Runtime, container: str, env: dict[str, str], sql: str, what: str) -> set[str]:
    argv = ["psql", "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", "-c", sql]
    out, result = runtime.exec_stream(container, argv, environment=env, idle_timeout_s=60).read_all()
    if result.exit_code != 0:
        raise UpgradeFailed(f"reading {what} failed: {exit_reason('psql', result.exit_code, result.stderr)}")
    try:
        return {str(name) for name in json.loads(out.decode("utf-8", errors="replace").strip() or "[]")}
    except ValueError:
        raise UpgradeFailed(f"reading {what} gave an unreadable answer: {out[:200]!r}") from None


def extensions_missing(project: Project, *, version: str, operation_id: str, runtime: Runtime) -> list[str]:
    """The extensions the project's running database has installed that PostgreSQL `version`'s image lacks."""
    live, live_env = stack_spec(project).db.name, db_env(project)
    used: set[str] = set()
    try:
        databases = databases_listed(runtime, live, live_env)
    except BackupFailed as exc:
        raise UpgradeFailed(str(exc)) from None
    for database in databases:  # every database is data (issue 26): each one's extensions must exist on the new major
        used |= _json_list(runtime, live, {**live_env, "PGDATABASE": database}, EXTENSIONS_USED_SQL, f"the extensions of database {database}")
    password = secrets.token_urlsafe(18)
    env = db_env(project, password)
    spec = _scratch(project, purpose="check", operation_id=operation_id, version=version, volume="", password=password)
    try:
        runtime.scratch_up(spec)
        scratch_wait_ready(runtime, spec.name, env, project_id=project.public_id, service=f"upgrade-check_{operation_id}")
        available = _json_list(runtime, spec.name, env, EXTENSIONS_AVAILABLE_SQL, f"PostgreSQL {version}'s extensions")
    except BackupFailed as exc:
        raise UpgradeFailed(str(exc)) from None
    finally:
        scratch_remove_quietly(runtime, spec.name)
    return sorted(used - available)


def _bootstrap(runtime: Runtime, container: str, project: Project) -> None:
    sql, env = bootstrap(project)
    _, result = runtime.exec_stream(container, BOOTSTRAP_ARGV, environment={**env, "BERTH_SQL": sql}, idle_timeout_s=60).read_all()
    if result.exit_code != 0:
        raise UpgradeFailed(f"making the roles on the new server failed: {exit_reason('the bootstrap', result.exit_code, result.stderr)}")


def upgrade_volume_fill(upgraded: Project, backup: Backup, *, operation_id: str, runtime: Runtime, from_old_kind: bool = False) -> None:
    """Make `upgraded`'s data volume (new major, new name) and fill it from `backup`, checked table by table.

    `upgraded` is the project as it will be after the upgrade (its new
    postgres_version, volume_version and, for a project of the old kind, its
    new superuser's password); `from_old_kind`: the dump comes from a server
    whose owner was its superuser, so its event triggers are left out (only a
    superuser may own one). UpgradeFailed says why it is not good; the caller
    removes the volume then.
    """
    volume = project_volume(upgraded)
    runtime.volume_create(volume, {**project_labels(upgraded.public_id), POSTGRES_LABEL: upgraded.postgres_version})
    env = db_env(upgraded)
    spec = _scratch(upgraded, purpose="restore", operation_id=operation_id, version=upgraded.postgres_version, volume=volume)
    try:
        runtime.scratch_up(spec)
        scratch_wait_ready(runtime, spec.name, env, project_id=upgraded.public_id, service=f"upgrade-restore_{operation_id}")
        _bootstrap(runtime, spec.name, upgraded)
        backup_restore_into(runtime, spec.name, {**env, "BERTH_SKIP_EVENT_TRIGGERS": "1"} if from_old_kind else env, backup)
        if difference := tables_difference(backup.tables, tables_count(runtime, spec.name, env, backup.databases)):
            raise UpgradeFailed(f"the restored database does not match the dump: {difference}")
        _bootstrap(runtime, spec.name, upgraded)  # the grants, now over the restored tables
    except (BackupFailed, RuntimeFailure) as exc:
        raise UpgradeFailed(f"restoring the dump into PostgreSQL {upgraded.postgres_version} failed: {exc}") from None
    finally:
        scratch_remove_quietly(runtime, spec.name)

