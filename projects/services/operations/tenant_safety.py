"""A tenant's server, brought up by Berth: ready, and what the bootstrap's heal repaired recorded as security events.

Every start bootstraps the project's server (runtime/probes.py `wait_ready`),
and on a project of the new kind the bootstrap first heals (spec.HEAL_SQL):
a role other than Berth's own superuser that is one is demoted, and Berth's
roles and the server's predefined ones (pg_execute_server_program, …) are
revoked from the tenant's roles. Either means someone got further than a
tenant may (issue 22): each repair becomes a `SecurityEvent` on the project
(its page lists them, /metrics counts them) and a warning in the worker's log.
"""

import logging

from django.conf import settings

from projects.models import Operation, Project, SecurityEvent
from projects.runtime import Runtime, StackSpec

logger = logging.getLogger(__name__)

KINDS = ("superuser_demoted", "role_revoked")


def project_wait_ready(project: Project, spec: StackSpec, runtime: Runtime, *, timeout_s: float | None = None) -> StackSpec:
    """`runtime.stack_wait_ready`, recording what its bootstrap healed; the spec."""
    healed = runtime.stack_wait_ready(spec, timeout_s=settings.BERTH_READY_TIMEOUT if timeout_s is None else timeout_s)
    if healed:
        security_events_record(project=project, healed=healed)
    return spec


def security_events_record(*, project: Project, healed: tuple[str, ...]) -> list[SecurityEvent]:
    """One SecurityEvent per repair ("<kind> <sentence>", as spec.HEAL_SQL prints them), and a warning each."""
    operation = Operation.objects.filter(project_id=project.pk, state=Operation.State.RUNNING).first()
    events = []
    for line in healed:
        kind, _, detail = line.partition(" ")
        if kind not in KINDS:
            kind, detail = "unknown", line
        events.append(SecurityEvent(project_id=project.pk, operation=operation, kind=kind, detail=detail[:1000]))
        # Role names only: nothing secret is in a repair's words.
        logger.warning("security: project %s: %s (healed by the bootstrap)", project.public_id, detail)
    return SecurityEvent.objects.bulk_create(events)
