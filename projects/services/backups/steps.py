"""The worker's side of backups: take one, verify one, restore one into its project, clone one into a new project."""

from django.utils import timezone

from projects.models import Backup, Operation, Project
from projects.runtime import RuntimeFailure, get_runtime
from projects.services.backups.dumps import backup_restore_into, db_env, project_db
from projects.services.backups.files import BackupFailed, FileAltered, backup_file_problem
from projects.services.backups.take import BackupRefused, backup_record, backup_safety, backup_take, backup_verify_run, operation_backup
from projects.services.operations.step import StepFailed, StepResult, running, running_fields, stack_up, stack_up_ready, stopped
from projects.services.operations.tenant_safety import project_wait_ready
from projects.stack.spec import project_volume, stack_spec

S = Project.Status
B = Backup.State


def backup(operation: Operation) -> StepResult:
    try:
        backup_take(operation.project, operation_backup(operation))
    except BackupRefused as exc:
        raise StepFailed(str(exc), outcome={}) from None
    return {}


def verify_backup(operation: Operation) -> StepResult:
    try:
        backup_verify_run(operation_backup(operation))
    except BackupRefused as exc:
        raise StepFailed(str(exc), outcome={}) from None
    return {}


def restore_backup(operation: Operation) -> StepResult:
    project, source, runtime = operation.project, operation_backup(operation), get_runtime()
    if problem := backup_file_problem(source):
        backup_record(source, state=B.VERIFY_FAILED, error=problem, verified_at=timezone.now())
        raise StepFailed(f"backup {source.public_id} refused: {problem}; the project was not touched", outcome={})
    remade = not runtime.stack_state(project.public_id, volume=project_volume(project)).volume
    safety = None
    if remade:
        # The data volume is gone, so a safety backup would have nothing to
        # keep. Restoring a backup is the owner's explicit way to give the
        # project a volume again: the stack is made (not started), and the
        # restore fills the new volume.
        stack_up(operation, start=False, new_volume=True)
    else:
        try:
            safety = backup_safety(operation, trigger=Backup.Trigger.PRE_RESTORE, runtime=runtime)
        except BackupRefused as exc:
            raise StepFailed(f"the safety backup failed, so nothing was restored: {exc}", outcome={}) from None
    try:
        with project_db(project, source, runtime, purpose="restore") as (container, env, live):
            backup_restore_into(runtime, container, env, source)
        if live:
            # Bootstrap again (roles, the api's schema-reload hook) and wait for the api.
            project_wait_ready(project, stack_spec(project), runtime)
        elif remade and project.status == S.RUNNING:
            # Its status says running: the stack made for the restore starts too.
            stack_up_ready(operation, runtime)
            live = True
    except FileAltered as exc:
        backup_record(source, state=B.VERIFY_FAILED, error=str(exc), verified_at=timezone.now())
        raise StepFailed(f"backup {source.public_id} refused: {exc}; the project was not touched", outcome={}) from None
    except (BackupFailed, RuntimeFailure) as exc:
        kept = f"; backup {safety.public_id}, taken just before, holds what it had" if safety else ""
        raise StepFailed(
            f"restoring backup {source.public_id} failed: {exc}. The database may be empty{kept}",
            outcome={"status": S.FAILED},
        ) from None
    if project.status == S.FAILED:
        # A failed project's content is known again: it settles as its stack is.
        if live:
            return running(project)
        runtime.stack_stop(stack_spec(project))
        return stopped()
    return running(project) if remade and live else {}


def clone(operation: Operation) -> StepResult:
    """Create the new project's stack, then restore the source backup into it."""
    project, source = operation.project, operation.backup
    if source is None:
        raise StepFailed("the backup to clone from was deleted", outcome={"status": S.FAILED})
    if problem := backup_file_problem(source):
        raise StepFailed(f"backup {source.public_id} refused: {problem}", outcome={"status": S.FAILED})
    runtime = get_runtime()
    spec = stack_up_ready(operation, runtime)
    try:
        backup_restore_into(runtime, spec.db.name, db_env(project), source)
    except BackupFailed as exc:
        raise StepFailed(f"restoring backup {source.public_id} into the new project failed: {exc}", outcome={"status": S.FAILED}) from None
    project_wait_ready(project, spec, runtime)
    return running_fields(project)
