"""The worker's side of placement: move a project's data to another Swarm node."""

from django.db import transaction

from projects.models import Backup, Operation, Project
from projects.runtime import RuntimeFailure, get_runtime
from projects.services.backups.dumps import backup_restore_into, db_env
from projects.services.backups.files import BackupFailed
from projects.services.backups.take import BackupRefused, backup_safety
from projects.services.operations.step import StepFailed, StepResult, running, stack_up, stopped
from projects.services.operations.tenant_safety import project_wait_ready
from projects.services.ports import project_ports_on_node

S = Project.Status


def move(operation: Operation) -> StepResult:
    """Move the project's data to the operation's target node: a verified backup, restored there.

    The only way data changes node (DESIGN.md, "Runtimes"). The old volume stays
    on the old node until purge; a failure puts the project back where it was,
    whose data never left.
    """
    project, target, runtime = operation.project, operation.target_node, get_runtime()
    if target == project.node:
        return {}  # a retry of a move that got there
    was_running = operation.prior_status == S.RUNNING
    try:
        backup = backup_safety(operation, trigger=Backup.Trigger.PRE_MOVE, runtime=runtime)
    except BackupRefused as exc:
        raise StepFailed(f"the backup failed, so nothing moved: {exc}", outcome={}) from None
    node = next((n for n in runtime.nodes() if n.name == target), None)
    if node is None or not node.ready:
        raise StepFailed(f"node {target} is not ready; nothing moved (backup {backup.public_id} was taken)", outcome={})
    source = {"node": project.node, "node_address": project.node_address, "db_port": project.db_port, "api_port": project.api_port}
    runtime.stack_remove_containers(project.public_id)  # the old node's volume stays, until purge
    with transaction.atomic():
        db_port, api_port = project_ports_on_node(project, node=target)
        Project.objects.filter(pk=project.pk).update(node=target, node_address=node.address, db_port=db_port, api_port=api_port)
    project.refresh_from_db()
    try:
        spec = stack_up(operation, start=True, new_volume=True)
        project_wait_ready(project, spec, runtime)
        backup_restore_into(runtime, spec.db.name, db_env(project), backup)
        project_wait_ready(project, spec, runtime)
    except (BackupFailed, RuntimeFailure, StepFailed) as exc:
        # Back where it was, with the data it never left.
        runtime.stack_remove_containers(project.public_id)
        Project.objects.filter(pk=project.pk).update(**source)
        project.refresh_from_db()
        stack_up(operation, start=was_running, action="start")
        raise StepFailed(f"moving to node {target} failed, so project {project.public_id} stays on node {project.node}: {exc}", outcome={}) from None
    if not was_running:
        runtime.stack_stop(spec)
        return stopped()
    return running(project)
