"""Errors a service raises when it refuses a request; nothing has changed when one is raised."""


class ServiceError(Exception):
    """Base: `code` is a stable machine-readable word, str() a sentence for a person."""

    code = "error"


class InvalidInput(ServiceError):
    code = "invalid"

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


class NameTaken(InvalidInput):
    """The owner already has a project (not purged) with this name."""

    code = "name_taken"


class InvalidTransition(ServiceError):
    code = "wrong_state"


class OperationInFlight(ServiceError):
    code = "operation_in_flight"

    def __init__(self, operation) -> None:
        super().__init__(
            f"operation {operation.public_id} ({operation.kind}, {operation.state}) is already in flight for this project"
        )
        self.operation = operation


class PortsExhausted(ServiceError):
    code = "ports_exhausted"
