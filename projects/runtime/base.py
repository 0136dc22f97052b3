"""The runtime seam: what Berth asks of a container engine, in Berth's own terms.

Services talk to a `Runtime`; `DockerRuntime` is the real one and the only code
that imports `docker`; `FakeRuntime` keeps the same contract in memory for unit
tests. Both return the dataclasses below, never SDK objects, and raise the
errors below, whose messages a person can act on.
"""

from collections.abc import Callable, Collection, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

MANAGED_LABEL = "berth.managed"
PROJECT_LABEL = "berth.project"
SERVICE_LABEL = "berth.service"
# Which Berth made the object (its Installation's id): another Berth on the same
# engine carries another, and is neither reported nor touched.
INSTALL_LABEL = "berth.install"


# --- names of engine objects ------------------------------------------------
# Said once, here, below spec.py: ScratchSpec (in this module) derives its
# network and volume from the same pattern as a project's stack.


def network_name(prefix: str) -> str:
    return f"{prefix}_net"


def volume_name(prefix: str) -> str:
    return f"{prefix}_data"


# A data volume made by a major-version upgrade is named for its major
# (`project_<id>_data_pg17`), so it never collides with the volume it replaces,
# which is kept beside it until a rollback, a drop or the purge (Project.kept_*).
# The volume a project was created with keeps the plain name (volume_version "").
UPGRADED_VOLUME_INFIX = "_pg"
# On volumes an upgrade makes: the major whose initdb made the data directory.
POSTGRES_LABEL = "berth.postgres"


def data_volume_name(project_id: str, volume_version: str = "") -> str:
    """A project's data volume: the one it was created with, or the one an upgrade to `volume_version` made."""
    plain = volume_name(object_prefix(project_id))
    return f"{plain}{UPGRADED_VOLUME_INFIX}{volume_version}" if volume_version else plain


def object_prefix(project_id: str) -> str:
    """What every engine object of the project is named after: `project_<id>`."""
    return f"project_{project_id}"


def container_name(project_id: str, service: str) -> str:
    """A project's container for `service` (db, api, or a backup's throwaway)."""
    return f"{object_prefix(project_id)}_{service}"


def object_names(project_id: str, *, volume_version: str = "") -> dict[str, str]:
    """The stack's engine objects; `volume_version` picks the data volume (see data_volume_name)."""
    prefix = object_prefix(project_id)
    return {
        "network": network_name(prefix),
        "volume": data_volume_name(project_id, volume_version),
        "db": container_name(project_id, "db"),
        "api": container_name(project_id, "api"),
    }


def scratch_service(purpose: str, backup_id: str) -> str:
    """What a backup's throwaway container for `purpose` (dump, restore, verify) is named for, as `container_name`'s service."""
    return f"{purpose}_{backup_id}"


def memory_bytes(text: str) -> int:
    """`2g`, `512m`, `1024k` or bytes (the engine's notation: node labels, BERTH_*_MEMORY) → bytes."""
    text = text.strip().lower().removesuffix("b")
    factor = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}.get(text[-1:], 1)
    return int(float(text[:-1] if factor > 1 else text) * factor)


class RuntimeFailure(Exception):
    """Base of every error the runtime raises; str() is safe to show a person."""


class RuntimeUnavailable(RuntimeFailure):
    """The engine cannot be reached."""


class StackNotFound(RuntimeFailure):
    """The project's objects are not on the engine."""


class VolumeMissing(StackNotFound):
    """The project's data volume is not on the engine, and the caller did not allow a new, empty one."""


class PortUnavailable(RuntimeFailure):
    """A host port the project needs is taken by something else."""


class SubnetUnavailable(RuntimeFailure):
    """The engine already has a network on (or overlapping) the subnet asked for."""


class ImageUnavailable(RuntimeFailure):
    """An image is neither present nor pullable."""


class NotReady(RuntimeFailure):
    """The stack did not become ready in time."""


# --- what Berth asks for (built by spec.py) -------------------------------


@dataclass(frozen=True)
class HealthCheck:
    """The engine's own check on a container; Berth's readiness never waits on it (it probes).

    Every 5 s, 3 tries of up to 5 s each: a hung server is unhealthy after
    about 15 s (every 2 s with 5 retries took 10), at 2.5x fewer execs. Each
    check is an exec (~55 ms of the engine's CPU, ~22 ms in the container),
    so a create racing others paid for one every 2 s for as long as it took;
    at 5 s a create under 5 s pays none (BENCHMARKS.md, "Issue 20 item 6").
    The 5 s timeout and third try keep a busy machine, whose exec can take
    seconds to start, from calling a healthy server unhealthy (seen with 2
    tries of 3 s). The price: the engine reports "healthy" 5 s after a start
    instead of 2 s, which Berth's watcher reads as "no verdict yet".
    """

    test: list[str]
    interval_s: float = 5.0
    timeout_s: float = 5.0
    retries: int = 3
    start_period_s: float = 5.0


@dataclass(frozen=True)
class FileSpec:
    """A file the runtime copies into a container before starting it (keys, certificates, a pgpass).

    Copied through the engine, never bind-mounted from a host path, so it
    works wherever the container runs; rewritten on every `stack_up` that
    starts the container, right before the start (one that leaves it stopped,
    a restore, copies nothing: the next start does).
    """

    path: str  # absolute; its directory is created
    content: bytes = field(repr=False)
    mode: int = 0o600
    uid: int = 0
    gid: int = 0


@dataclass(frozen=True)
class Confinement:
    """What a container may do to its host: every container Berth starts carries one."""

    cap_add: tuple[str, ...] = ()  # all capabilities are dropped; these come back
    pids_limit: int = 256
    cpus: float = 1.0  # 0: no CPU limit
    log_max_size: str = "10m"  # json-file rotation
    log_max_file: int = 3
    no_new_privileges: bool = True


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
    confinement: Confinement = Confinement()
    files: tuple[FileSpec, ...] = ()
    working_dir: str | None = None  # None: the image's
    # A read-only root filesystem: the container writes only to its data volume
    # and to the directories below. `tmpfs`: in memory, empty at every start
    # (sockets, pid files). `own_volumes`: on disk, made with the container and
    # removed with it, the only places besides the data volume where files are
    # copied in (FileSpec, file_put): the engine refuses a copy onto a read-only
    # root, and one onto a tmpfs lands under it, hidden (Docker 20.10).
    read_only: bool = False
    tmpfs: tuple[str, ...] = ()
    own_volumes: tuple[str, ...] = ()


# On a container's own volumes (ContainerSpec.own_volumes): the container's
# labels but berth.managed, so that inventory and drift, which count the
# stack's objects, never see them; the container's removal takes them with it.
# The rest (berth.test, berth.bench) lets a test or a benchmark run find what it left.
OWN_VOLUME_LABEL = "berth.own-volume-of"


def own_volume_labels(c: ContainerSpec) -> dict[str, str]:
    return {**{k: v for k, v in c.labels.items() if k != MANAGED_LABEL}, OWN_VOLUME_LABEL: c.name}


def copy_root(c: ContainerSpec, path: str) -> str | None:
    """Where a file copied to `path` in `c` is unpacked: the volume it lands on, or / on a writable root;
    None when the copy would be refused or hidden (see ContainerSpec.read_only)."""

    def under(directory: str | None) -> bool:
        return directory is not None and path.startswith(directory.rstrip("/") + "/")

    if volume := next((d for d in (c.volume_mount, *c.own_volumes) if d is not None and under(d)), None):
        return volume
    return None if c.read_only or any(under(d) for d in c.tmpfs) else "/"


@dataclass(frozen=True)
class ApiProbe:
    """How to know the api answers: any HTTP status below 500 on this request."""

    path: str
    method: str = "GET"
    body: bytes | None = None
    content_type: str | None = None
    # A query the db's superuser (the bootstrap's role, on the published port)
    # runs once the api answers, for what an api still does in the background after it
    # answers: its one value is "" once the database sees the api wholly up,
    # else what it waits for. Empty: answering is enough.
    ready_sql: str = ""


# How a runtime runs DbProbe.bootstrap_sql in the db container: the SQL comes
# through the environment too (BERTH_SQL), so the command line is always this.
BOOTSTRAP_ARGV = ["sh", "-c", 'printf "%s" "$BERTH_SQL" | psql -X -q -v ON_ERROR_STOP=1', "berth-bootstrap"]
# The same, for SQL a service runs as the superuser to ask the server's judgement
# (services/settings/requests.py: ALTER SYSTEM of a new setting, then the old ones again).
SERVER_SQL_ARGV = [*BOOTSTRAP_ARGV[:3], "berth-server-sql"]


@dataclass(frozen=True)
class DbProbe:
    host: str
    port: int
    user: str
    password: str
    dbname: str
    # SQL run with psql inside the db container, as the server's superuser, once
    # it answers; idempotent (roles, grants, schema-reload hooks). Secrets reach
    # it through `bootstrap_env` (psql's \getenv), never through argv.
    bootstrap_sql: str = ""
    bootstrap_env: dict[str, str] = field(default_factory=dict, repr=False)


@dataclass(frozen=True)
class SampleTarget:
    """What `stack_sample` reads of one running project: its two containers, its db and its api.

    `db_probe` carries the server's admin credentials (pg_stat_* and the
    database size are read as the superuser); nothing secret reaches argv.
    """

    project_id: str
    db_container: str
    api_container: str
    db_probe: "DbProbe"
    api_port: int
    api_probe: "ApiProbe"


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
    subnet: str = ""  # the network's IPv4 subnet, allocated by Berth; "" lets the engine choose (before 0005)
    # The Swarm node (its name in BERTH_SWARM_NODES) the stack is pinned to, data
    # and all; "" on a single engine, which has no nodes.
    node: str = ""

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
    install: str = ""  # its berth.install label; "" on objects made before installations were labelled
    node_down: bool = False  # on a Swarm: the node it is pinned to is down (never on a single engine)

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
    installs: dict[str, str] = field(default_factory=dict)  # network or volume name -> its berth.install label, if any
    nodes_down: tuple[str, ...] = ()  # on a Swarm: nodes whose volumes and throwaways could not be read


@dataclass(frozen=True)
class ContainerStats:
    """One container's resource use at one moment (the engine's one-shot stats)."""

    cpu_seconds: float  # cumulative CPU time since the container started: a rate needs two samples
    memory_bytes: int  # in use, page cache that can be dropped left out (as `docker stats` shows it)
    memory_limit_bytes: int


@dataclass(frozen=True)
class DbStats:
    """What one short query over the published port says of a project's database."""

    size_bytes: int  # every database's the tenant may use (`databases`), summed
    connections: int  # client backends on the whole server: what counts against max_connections
    max_connections: int
    commits: int  # cumulative (pg_stat_database): rates come from two samples
    rollbacks: int
    blocks_hit: int
    blocks_read: int
    databases: tuple[tuple[str, int], ...] = ()  # (name, size in bytes), by name


@dataclass(frozen=True)
class StackSample:
    """One project's sample: None where that part could not be read (a stopped container, a db that refused)."""

    db: ContainerStats | None = None
    api: ContainerStats | None = None
    database: DbStats | None = None
    api_up: bool = False
    engine_calls: int = 0  # what reading it cost, counted by the runtime
    error: str = ""  # the first thing that could not be read, for the log


@dataclass(frozen=True)
class NodeState:
    """A node a project may be placed on (a Swarm's; a single engine has none)."""

    name: str  # as in BERTH_SWARM_NODES
    address: str  # where its published ports are reached
    ready: bool  # the manager sees it up
    active: bool  # the swarm's availability is active (not paused or drained)
    labelled: bool  # carries berth.node: meant for Berth's projects
    drained: bool  # an operator drained it for Berth (label berth.drain): no new projects
    memory_bytes: int  # what Berth may place there: its berth.memory label, else what it reports
    missing_images: frozenset[str] = frozenset()  # of the images asked about, those it lacks

    @property
    def placeable(self) -> bool:
        return self.ready and self.active and self.labelled and not self.drained and not self.missing_images


@dataclass(frozen=True)
class EngineEvent:
    project_id: str
    service: str  # db, api; NODE_EVENT for a Swarm node's change (project_id "": every project there)
    action: str  # die, start, stop, destroy, health_status: healthy, …


NODE_EVENT = "node"


@dataclass(frozen=True)
class ScratchSpec:
    """A throwaway postgres container: no network at all (loopback only), no published port.

    Backups use them to dump a project whose db is not running (mounting the
    project's volume: `own_volume=False`) and to verify a dump by restoring it
    (on a volume made and removed with it: `own_volume=True`). Berth reaches
    them with exec only, so they need no network, and making none means a
    backup (a purge's final one included) never waits on an address pool. An
    own volume is `<name>_data`, so `scratch_remove(name)` finds everything
    from the name alone.
    """

    name: str
    image: str
    environment: dict[str, str]
    command: list[str] | None
    labels: dict[str, str]
    volume_mount: str
    mem_limit: str
    volume: str = ""  # the volume to mount; "" means <name>_data, made for it
    own_volume: bool = True
    confinement: Confinement = Confinement()
    node: str = ""  # the project's node on a Swarm (where its volume is); "" on a single engine

    @property
    def volume_name(self) -> str:
        return self.volume or volume_name(self.name)


@dataclass(frozen=True)
class ExecResult:
    # None when the engine cannot tell: the container stopped or vanished mid-command.
    exit_code: int | None
    stderr: str


class ExecStream:
    """A command's stdout as it comes (iterate it), then its exit code and stderr (`result()`).

    Always `close()` it (or use it as a context manager): closing before the
    end abandons the command's output, and the command sees a broken pipe.
    """

    def __init__(self, chunks: Iterator[bytes], finish: Callable[[], ExecResult], close: Callable[[], None] = lambda: None) -> None:
        self._chunks = chunks
        self._finish = finish
        self._close = close
        self._result: ExecResult | None = None

    def __iter__(self) -> Iterator[bytes]:
        return self._chunks

    def result(self) -> ExecResult:
        """Exit code and stderr; call after the chunks are consumed."""
        if self._result is None:
            self._result = self._finish()
        return self._result

    def read_all(self) -> tuple[bytes, ExecResult]:
        """Collect stdout (for small outputs) and the result."""
        with self:
            out = b"".join(self)
            return out, self.result()

    def close(self) -> None:
        self._close()

    def __enter__(self) -> "ExecStream":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Runtime(Protocol):
    def ping(self) -> None:
        """Raise RuntimeUnavailable when the engine does not answer."""

    def stack_up(self, spec: StackSpec, *, start: bool = True, create_volume: bool = True) -> None:
        """Create whatever of the stack is missing; start the containers if `start`.

        With `create_volume=False` the data volume must exist already: a missing
        one raises VolumeMissing before anything is created (a new volume is an
        empty database, which a project that holds data never gets by accident).
        """

    def stack_wait_ready(self, spec: StackSpec, *, timeout_s: float) -> tuple[str, ...]:
        """Return once the db answers a real query and the api answers HTTP; else NotReady.

        Returns what the bootstrap healed on the way (spec.HEAL_SQL: "<kind> <what was found and done>" each), () mostly.
        """

    def stack_stop(self, spec: StackSpec) -> None:
        """Stop the containers (keeping them); missing containers are fine."""

    def stack_remove_containers(self, project_id: str) -> None:
        """Remove the containers, keep network and volume; nothing there is fine."""

    def stack_purge(self, project_id: str, *, given_up: Collection[str] = ()) -> None:
        """Remove containers, network and volume; nothing there is fine.

        `given_up`: on a Swarm, nodes an operator forgot (ForgottenNode): not
        called, and a volume there is left to them. A single engine has none.
        """

    def stack_state(self, project_id: str, *, volume: str = "") -> StackState:
        """The project's containers (its backups' throwaways included), and whether its own network and data volume exist.

        `network` and `volume` are the stack's objects by name: a throwaway's own
        volume, labelled with the project too, is not its data volume. `volume`
        names the data volume when it is not the plain one (an upgraded project's).
        """

    def volume_create(self, name: str, labels: dict[str, str]) -> None:
        """Create a volume with these labels; one that exists already is fine (it is kept as it is)."""

    def volume_remove(self, name: str) -> None:
        """Remove a Berth-labelled volume (no container may use it); nothing there is fine."""

    def stack_sample(self, target: SampleTarget) -> StackSample:
        """CPU and memory of the project's two containers (one engine call each: the engine has no call for
        several), one short query to its db over the published port, one HTTP request to its api.

        Never raises for a part that cannot be read: that part is None (or api_up False) and `error` says why.
        """

    def containers(self) -> tuple[ContainerState, ...]:
        """Every Berth-labelled container, of every project: one engine call."""

    def subnets_in_use(self) -> list[str]:
        """The subnets of every network on the engine, Berth's or not, with one call."""

    def inventory(self) -> EngineInventory:
        """Every Berth-labelled container, network and volume."""

    def container_logs(self, project_id: str, service: str, *, tail: int = 200) -> str:
        """The last `tail` lines of the project's `service` container; "" when it does not exist."""

    def events(self, *, timeout_s: float | None = None, since: float | None = None) -> Iterator[EngineEvent]:
        """Container events of Berth-labelled containers as they happen, from `since` (a Unix time) if given.

        With `timeout_s` the stream ends by itself; a follower passes the previous
        window's end as `since`, so no event falls between two windows.
        """

    def exec_stream(
        self, container: str, argv: list[str], *, environment: dict[str, str] | None = None, idle_timeout_s: float = 600
    ) -> ExecStream:
        """Run `argv` in a running container; StackNotFound if it is missing, RuntimeFailure if it is not running.

        Stdout streams; a read that waits longer than `idle_timeout_s` fails with RuntimeFailure.
        """

    def file_put(self, container: str, path: str, chunks: Iterable[bytes], *, size: int) -> None:
        """Write a file of exactly `size` bytes into a container (any state), streamed; its directory must exist."""

    def scratch_up(self, spec: ScratchSpec) -> None:
        """Create and start a throwaway container (see ScratchSpec); ImageUnavailable, StackNotFound (a missing volume)."""

    def scratch_remove(self, name: str) -> None:
        """Remove a throwaway container, its network and its own volume; nothing there is fine."""

    def nodes(self, *, images: Iterable[str] = ()) -> tuple[NodeState, ...]:
        """The nodes projects are placed on, each with which of `images` it lacks (of the nodes that answer); () on a single engine."""

    def images_labels(self, images: Iterable[str]) -> dict[str, dict[str, str]]:
        """Which of `images` the engine has, each with its labels (one call); on a Swarm, those every node that answers has,
        {} for one whose labels differ between nodes."""

    def image_pull(self, image: str, *, progress: Callable[[str], None]) -> None:
        """Pull `image`, reporting progress lines; ImageUnavailable when it cannot be pulled."""

    def image_build(self, context: Path, tag: str, *, buildargs: dict[str, str], progress: Callable[[str], None]) -> None:
        """Build the Dockerfile in `context` as `tag`, reporting progress lines; RuntimeFailure when it fails."""
