"""The worker's side of changes after creation: apply reloadable settings, restart, rotate credentials."""


from projects.models import Operation, Project
from projects.runtime import RuntimeFailure, RuntimeUnavailable, get_runtime
from projects.runtime.base import SERVER_SQL_ARGV
from projects.services.operations.step import StepFailed, StepResult, running, running_fields, stack_up_ready
from projects.services.operations.tenant_safety import project_wait_ready
from projects.stack.spec import stack_spec

S = Project.Status


def reconfigure(operation: Operation) -> StepResult:
    """Apply the reloadable settings to the running server: the bootstrap writes them (ALTER SYSTEM) and reloads."""
    try:
        project_wait_ready(operation.project, stack_spec(operation.project), get_runtime())
    except RuntimeUnavailable:
        raise
    except RuntimeFailure as exc:
        # The server keeps running as it was: the status stays; the next start applies the settings.
        raise StepFailed(f"the settings were kept but not applied: {exc}; they apply when the project next starts", outcome={}) from None
    return {}


def restart(operation: Operation) -> StepResult:
    """Stop the stack and bring it up with the current spec: containers whose spec changed (settings, memory) are recreated."""
    runtime = get_runtime()
    runtime.stack_stop(stack_spec(operation.project))
    stack_up_ready(operation, runtime)
    return running_fields(operation.project)


def rotate_keys(operation: Operation) -> StepResult:
    """Bring a running stack up with the new secret (stored by the request): the api is recreated with it, the bootstrap sets passwords.

    A stopped project has nothing to do now: its next start does the same.
    """
    if operation.project.status != S.RUNNING:
        return {}
    stack_up_ready(operation, get_runtime())
    return running(operation.project)


# Sessions that logged in with the old password end too: a leaked password's
# open connection is as bad as a new one. The api's (authenticator) were
# replaced with its container; Berth's own (the superuser's) are not the owner's.
END_OWNER_SESSIONS_SQL = """\\getenv owner BERTH_OWNER
SELECT pg_catalog.count(pg_catalog.pg_terminate_backend(pid)) FROM pg_catalog.pg_stat_activity
 WHERE usename OPERATOR(pg_catalog.=) :'owner' AND pid OPERATOR(pg_catalog.<>) pg_catalog.pg_backend_pid();
"""


def rotate_password(operation: Operation) -> StepResult:
    project = operation.project
    outcome = rotate_keys(operation)
    if project.status == S.RUNNING:
        spec = stack_spec(project)
        _, result = get_runtime().exec_stream(
            spec.db.name, SERVER_SQL_ARGV, environment={**spec.db_probe.bootstrap_env, "BERTH_SQL": END_OWNER_SESSIONS_SQL}, idle_timeout_s=30
        ).read_all()
        if result.exit_code != 0:
            raise StepFailed(
                f"the new password is set, but the sessions opened with the old one could not be ended: {result.stderr.strip()}",
                outcome=outcome,
            )
    return outcome
