"""The runtime seam: what Berth asks of a container engine, in Berth's own terms.

Services talk to a `Runtime`; `DockerRuntime` is the real one and the only code
that imports `docker`; `FakeRuntime` keeps the same contract in memory for unit
tests. Both return the dataclasses below, never SDK objects, and raise the
errors below, whose messages a person can act on.
"""

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Protocol

MANAGED_LABEL = "berth.managed"
PROJECT_LABEL = "berth.project"
SERVICE_LABEL = "berth.service"


class RuntimeFailure(Exception):
    """Base of every error the runtime raises; str() is safe to show a person."""


class RuntimeUnavailable(RuntimeFailure):
    """The engine cannot be reached."""


class StackNotFound(RuntimeFailure):
    """The project's objects are not on the engine."""


class PortUnavailable(RuntimeFailure):
    """A host port the project needs is taken by something else."""


class ImageUnavailable(RuntimeFailure):
    """An image is neither present nor pullable."""


class NotReady(RuntimeFailure):
    """The stack did not become ready in time."""


# --- what Berth asks for (built by spec.py) -------------------------------


@dataclass(frozen=True)
class HealthCheck:
    test: list[str]
    interval_s: float = 2.0
    timeout_s: float = 3.0
    retries: int = 5
    start_period_s: float = 5.0


@dataclass(frozen=True)
class ContainerSpec:
    name: str
    service: str  # "db" | "api"
    image: str
    environment: dict[str, str]
    command: list[str] | None
    container_port: int
    host_port: int
    publish_host: str
    labels: dict[str, str]
    mem_limit: str
    volume_mount: str | None = None  # path inside the container for the data volume
    healthcheck: HealthCheck | None = None
    stop_timeout_s: int = 10


@dataclass(frozen=True)
class ApiProbe:
    """How to know the api answers: any HTTP status below 500 on this request."""

    path: str
    method: str = "GET"
    body: bytes | None = None
    content_type: str | None = None


@dataclass(frozen=True)
class DbProbe:
    host: str
    port: int
    user: str
    password: str
    dbname: str
    # SQL run once the database answers, idempotent (roles, schema-reload hooks).
    bootstrap_sql: str = ""


@dataclass(frozen=True)
class StackSpec:
    project_id: str
    network: str
    volume: str
    labels: dict[str, str]  # on the network and the volume; containers add berth.service
    db: ContainerSpec
    api: ContainerSpec
    db_probe: DbProbe
    api_probe: ApiProbe

    @property
    def containers(self) -> tuple[ContainerSpec, ContainerSpec]:
        return (self.db, self.api)


# --- what the engine reports ----------------------------------------------


@dataclass(frozen=True)
class ContainerState:
    name: str
    project_id: str
    service: str
    status: str  # the engine's: created, running, exited, restarting, paused, dead
    health: str | None = None  # healthy, unhealthy, starting, or None without a healthcheck
    image: str = ""
    host_ports: tuple[int, ...] = ()

    @property
    def running(self) -> bool:
        return self.status == "running"


@dataclass(frozen=True)
class StackState:
    project_id: str
    containers: tuple[ContainerState, ...] = ()
    network: bool = False
    volume: bool = False

    def container(self, service: str) -> ContainerState | None:
        return next((c for c in self.containers if c.service == service), None)


@dataclass(frozen=True)
class EngineInventory:
    """Every Berth-labelled object on the engine, read with one call per kind."""

    containers: tuple[ContainerState, ...] = ()
    networks: dict[str, str] = field(default_factory=dict)  # name -> project id
    volumes: dict[str, str] = field(default_factory=dict)  # name -> project id


@dataclass(frozen=True)
class EngineEvent:
    project_id: str
    service: str
    action: str  # die, start, stop, destroy, health_status: healthy, …


class Runtime(Protocol):
    def ping(self) -> None:
        """Raise RuntimeUnavailable when the engine does not answer."""

    def stack_up(self, spec: StackSpec, *, start: bool = True) -> None:
        """Create whatever of the stack is missing; start the containers if `start`."""

    def stack_wait_ready(self, spec: StackSpec, *, timeout_s: float) -> None:
        """Return once the db answers a real query and the api answers HTTP; else NotReady."""

    def stack_stop(self, spec: StackSpec) -> None:
        """Stop the containers (keeping them); missing containers are fine."""

    def stack_wait_stopped(self, spec: StackSpec, *, timeout_s: float) -> None:
        """Return once the db refuses connections on its published port."""

    def stack_remove_containers(self, project_id: str) -> None:
        """Remove the containers, keep network and volume; nothing there is fine."""

    def stack_purge(self, project_id: str) -> None:
        """Remove containers, network and volume; nothing there is fine."""

    def stack_state(self, project_id: str) -> StackState: ...

    def inventory(self) -> EngineInventory:
        """Every Berth-labelled container, network and volume."""

    def container_logs(self, project_id: str, service: str, *, tail: int = 200) -> str: ...

    def events(self, *, timeout_s: float | None = None, since: float | None = None) -> Iterator[EngineEvent]:
        """Container events of Berth-labelled containers as they happen, from `since` (a Unix time) if given.

        With `timeout_s` the stream ends by itself; a follower passes the previous
        window's end as `since`, so no event falls between two windows.
        """
