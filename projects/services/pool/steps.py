"""The worker's side of the warm pool: fill a stack ahead of time, drain one (a claim is recorded, never run)."""

from django.utils import timezone

from projects.models import Operation, Project
from projects.runtime import get_runtime
from projects.services.operations.step import StepFailed, StepResult, running_fields, stack_up_ready


def pool_fill(operation: Operation) -> StepResult:
    """Make, start, bootstrap and probe a stack for the pool: a create that settles `pooled`, not `running`."""
    stack_up_ready(operation, get_runtime())
    return running_fields(operation.project)


def pool_drain(operation: Operation) -> StepResult:
    """Remove a pool stack for good: nobody's data is in it, so no final backup."""
    get_runtime().stack_purge(operation.project.public_id)
    return {"health": Project.Health.MISSING, "observed_at": timezone.now(), "db_port": None, "api_port": None, "network_subnet": None}


def claim(operation: Operation) -> StepResult:
    # A claim is recorded as succeeded in the create's transaction and never queued.
    raise StepFailed("a claim is recorded when it happens; there is nothing to run", outcome={})
