"""Small display filters for the dashboard's templates."""

from datetime import datetime
from typing import Any

from django import template
from django.utils import timezone
from django.utils.timesince import timesince

from projects.models import Project
from projects.services.fleet.inspect import StackReport

register = template.Library()


@register.filter
def ago(value: datetime | None) -> str:
    """A time as a person says it ("just now", "3 minutes ago", "2 hours ago"); empty for none."""
    if value is None:
        return ""
    if (timezone.now() - value).total_seconds() < 60:
        return "just now"  # timesince would say "0 minutes"
    return f"{timesince(value, depth=1)} ago"


# What the engine shows while an operation is still making or removing a
# project's containers is the work in progress, not a fault: these statuses
# name it instead of the alarming word the bare observation would give.
_MAKING = {"provisioning": "starting", "starting": "starting", "restoring": "pending", "upgrading": "upgrading"}
_REMOVING = {"deleting", "purging"}
_REMOVED = {"deleted", "purged"}


@register.filter
def health_shown(project: Project) -> tuple[str, str]:
    """The health badge as (css modifier, word): the observed health, read in the light of the status.

    On the way up it says "starting" until the operation has proved the
    project answers (a healthcheck still in its start period, a container not
    made yet); a deleted project's absent containers are "removed"; a failed or
    settled project shows what the engine saw, alarming or not.
    """
    status, health = project.status, project.health
    # "unknown" once observed means the engine did not answer: that stays said.
    if health == "healthy" or (health == "unknown" and project.observed_at is not None):
        return health, project.get_health_display()
    if status in _MAKING:
        return "pending", _MAKING[status]
    if status == "stopping" and health != "down":
        return "pending", "stopping"
    if status in _REMOVING:
        return "pending", "removing"
    if status in _REMOVED and health == "missing":
        return "removed", "removed"
    return health, project.get_health_display()


@register.filter
def absent_container(project: Project) -> str:
    """The word for a stack container the engine does not have, given the project's status."""
    if project.status in _MAKING:
        return "pending"
    if project.status in _REMOVING or project.status in _REMOVED:
        return "removed"
    return "missing"


@register.filter
def has_containers(stack: StackReport) -> bool:
    """True when the engine has any of the stack's containers (a StackReport from services/fleet/inspect.py)."""
    return any(row.state is not None for row in stack.containers)


@register.filter
def lookup(mapping: dict[Any, Any] | None, key: Any) -> Any:
    """`mapping[key]`, or None: a view's per-row extras (the list's sparklines) by the row's key."""
    return (mapping or {}).get(key)
