"""FakeRuntime: the Runtime contract in memory, for unit tests.

It keeps the same rules as the engine where Berth depends on them: names are
unique, a missing image fails before anything is created, a published port is
exclusive, stop keeps containers, purge removes everything. Faults are
injected with `fail_with` and by editing `containers` behind Berth's back.
"""

from collections import Counter
from collections.abc import Iterator
from dataclasses import replace

from .base import (
    ContainerState,
    EngineEvent,
    EngineInventory,
    ImageUnavailable,
    PortUnavailable,
    RuntimeFailure,
    StackSpec,
    StackState,
)


class FakeRuntime:
    def __init__(self, *, images: set[str] | None = None) -> None:
        # None means every image is present.
        self.images = images
        self.containers_by_name: dict[str, ContainerState] = {}
        self.networks: dict[str, str] = {}
        self.volumes: dict[str, str] = {}
        self.taken_ports: set[int] = set()  # ports something outside Berth holds
        self.calls: Counter[str] = Counter()
        self.pending_events: list[EngineEvent] = []
        self._failures: dict[str, RuntimeFailure] = {}

    # --- fault injection ---------------------------------------------------

    def fail_with(self, method: str, error: RuntimeFailure) -> None:
        """Make every later call of `method` raise `error` until `heal(method)`."""
        self._failures[method] = error

    def heal(self, method: str | None = None) -> None:
        if method is None:
            self._failures.clear()
        else:
            self._failures.pop(method, None)

    def _call(self, method: str) -> None:
        self.calls[method] += 1
        if method in self._failures:
            raise self._failures[method]
        if "*" in self._failures:
            raise self._failures["*"]

    def set_status(self, name: str, status: str, health: str | None = None) -> None:
        self.containers_by_name[name] = replace(self.containers_by_name[name], status=status, health=health)

    # --- the contract --------------------------------------------------------

    def ping(self) -> None:
        self._call("ping")

    def stack_up(self, spec: StackSpec, *, start: bool = True) -> None:
        self._call("stack_up")
        for c in spec.containers:
            if self.images is not None and c.image not in self.images:
                raise ImageUnavailable(f"image {c.image} is not on the engine and could not be pulled")
        self.networks.setdefault(spec.network, spec.project_id)
        self.volumes.setdefault(spec.volume, spec.project_id)
        for c in spec.containers:
            if c.name not in self.containers_by_name:
                self.containers_by_name[c.name] = ContainerState(
                    name=c.name, project_id=spec.project_id, service=c.service, status="created",
                    image=c.image, host_ports=(c.host_port,),
                )  # fmt: skip
        if start:
            for c in spec.containers:
                if c.host_port in self.taken_ports:
                    raise PortUnavailable(f"starting {c.name}: a host port is already in use ({c.host_port})")
                health = "healthy" if c.healthcheck else None
                self.set_status(c.name, "running", health)

    def stack_wait_ready(self, spec: StackSpec, *, timeout_s: float) -> None:
        self._call("stack_wait_ready")

    def stack_stop(self, spec: StackSpec) -> None:
        self._call("stack_stop")
        for c in spec.containers:
            if c.name in self.containers_by_name:
                self.set_status(c.name, "exited")

    def stack_remove_containers(self, project_id: str) -> None:
        self._call("stack_remove_containers")
        for name in [n for n, c in self.containers_by_name.items() if c.project_id == project_id]:
            del self.containers_by_name[name]

    def stack_purge(self, project_id: str) -> None:
        self._call("stack_purge")
        for store in (self.containers_by_name, self.networks, self.volumes):
            for name in [n for n, v in store.items() if (getattr(v, "project_id", v)) == project_id]:
                del store[name]

    def stack_state(self, project_id: str) -> StackState:
        self._call("stack_state")
        return StackState(
            project_id=project_id,
            containers=tuple(c for c in self.containers_by_name.values() if c.project_id == project_id),
            network=project_id in self.networks.values(),
            volume=project_id in self.volumes.values(),
        )

    def containers(self) -> tuple[ContainerState, ...]:
        self._call("containers")
        return tuple(self.containers_by_name.values())

    def inventory(self) -> EngineInventory:
        self._call("inventory")
        return EngineInventory(
            containers=tuple(self.containers_by_name.values()), networks=dict(self.networks), volumes=dict(self.volumes)
        )

    def container_logs(self, project_id: str, service: str, *, tail: int = 200) -> str:
        self._call("container_logs")
        name = f"project_{project_id}_{service}"
        return f"{name} log line\n" if name in self.containers_by_name else ""

    def events(self, *, timeout_s: float | None = None, since: float | None = None) -> Iterator[EngineEvent]:
        self._call("events")
        while self.pending_events:
            yield self.pending_events.pop(0)
