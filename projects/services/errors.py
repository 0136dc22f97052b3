"""Errors a service raises when it refuses a request; nothing has changed when one is raised.

Each class carries the HTTP status and the machine-readable code the JSON API
answers with, so an edge never maps errors to statuses itself (the dashboard
reads the same status: see views.py's `_shown`).
"""

from http import HTTPStatus
from typing import Any

from projects.models import Operation


class ServiceError(Exception):
    """Base: `code` is a stable machine-readable word, str() a sentence for a person."""

    code = "error"
    status = HTTPStatus.BAD_REQUEST
    field: str | None = None  # the input at fault, when one is
    operation: Operation | None = None  # the Operation in the way, when one is

    def details(self) -> dict[str, Any]:
        """What else a program needs to act on the refusal, as JSON-ready fields beside the message."""
        return {}


class InvalidInput(ServiceError):
    code = "invalid"

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


class NameTaken(InvalidInput):
    """The owner already has a project (not purged) with this name."""

    code = "name_taken"


class BodyTooLarge(InvalidInput):
    code = "too_large"
    status = HTTPStatus.REQUEST_ENTITY_TOO_LARGE


class NotFound(ServiceError):
    """No such thing, or the requester may not see it: the same answer for both."""

    code = "not_found"
    status = HTTPStatus.NOT_FOUND


class Forbidden(ServiceError):
    """The requester may see the object, but this request is not theirs to make (the owner's alone)."""

    code = "forbidden"
    status = HTTPStatus.FORBIDDEN


class InvalidTransition(ServiceError):
    code = "wrong_state"
    status = HTTPStatus.CONFLICT


class OperationInFlight(ServiceError):
    code = "operation_in_flight"
    status = HTTPStatus.CONFLICT

    def __init__(self, operation: Operation) -> None:
        super().__init__(
            f"operation {operation.public_id} ({operation.kind}, {operation.state}) is already in flight for this project"
        )
        self.operation = operation


class FileGone(ServiceError):
    code = "gone"
    status = HTTPStatus.GONE


class PortsExhausted(ServiceError):
    code = "ports_exhausted"
    status = HTTPStatus.SERVICE_UNAVAILABLE


class EngineUnreachable(ServiceError):
    """The dashboard asks the engine before it queues work that would only fail without it."""

    code = "engine_unreachable"
    status = HTTPStatus.SERVICE_UNAVAILABLE


class NoNodeAvailable(ServiceError):
    """On a Swarm, no node can take a new project; the message says why for each."""

    code = "no_node"
    status = HTTPStatus.SERVICE_UNAVAILABLE


class NodeRefusal(ServiceError):
    """On a Swarm, a refusal because of the project's node, which the answer names (`node`)."""

    status = HTTPStatus.CONFLICT

    def __init__(self, message: str, *, node: str) -> None:
        super().__init__(message)
        self.node = node

    def details(self) -> dict[str, Any]:
        return {"node": self.node}


class NodeFull(NodeRefusal):
    """The project's node has no room for the memory asked for."""

    code = "node_full"


class NodeDown(NodeRefusal):
    """The node holding the project's data is down: what needs the data waits for it."""

    code = "node_down"


class NodeUp(NodeRefusal):
    """A node that is ready cannot be forgotten: its data is there."""

    code = "node_up"


class SubnetsExhausted(ServiceError):
    """No subnet of BERTH_NETWORK_POOL is free for a project's network (raised in the worker: its operation fails)."""

    code = "subnets_exhausted"
    status = HTTPStatus.SERVICE_UNAVAILABLE


class QuotaExceeded(ServiceError):
    """The user holds as much as their quota allows (services/lifecycle/quotas.py)."""

    code = "quota_exceeded"
    status = HTTPStatus.FORBIDDEN

    def __init__(self, message: str, *, limit: str) -> None:
        super().__init__(message)
        self.limit = limit  # which quota: projects, backups or backup_bytes

    def details(self) -> dict[str, Any]:
        return {"limit": self.limit}


class NotPermitted(Forbidden):
    """The user may see the project but not act on it (another user's, without projects.change_project)."""


class BackupProtected(ServiceError):
    """A purge's final backup, inside the grace period it is kept for."""

    code = "backup_protected"
    status = HTTPStatus.CONFLICT
