"""FakeRuntime: the Runtime contract in memory, for unit tests.

It keeps the same rules as the engine where Berth depends on them: names are
unique, a missing image fails before anything is created, a published port is
exclusive, stop keeps containers, purge removes everything. Faults are
injected with `fail_with` and by editing `containers` behind Berth's back.
"""

import json
import re
from collections import Counter
from collections.abc import Callable, Collection, Iterable, Iterator
from dataclasses import replace
from pathlib import Path

from .base import (
    INSTALL_LABEL,
    PROJECT_LABEL,
    SERVICE_LABEL,
    ContainerSpec,
    ContainerState,
    ContainerStats,
    DbStats,
    EngineEvent,
    EngineInventory,
    ExecResult,
    ExecStream,
    ImageUnavailable,
    NodeState,
    PortUnavailable,
    RuntimeFailure,
    SampleTarget,
    ScratchSpec,
    StackNotFound,
    StackSample,
    StackSpec,
    StackState,
    SubnetUnavailable,
    VolumeMissing,
    container_name,
    copy_root,
    network_name,
    object_names,
    volume_name,
)

# What a command run in a fake container answers: stdout (bytes or chunks), exit code, stderr.
ExecAnswer = tuple[bytes | list[bytes], int | None, str]
# (runtime, container name, argv, environment) -> ExecAnswer
ExecHandler = Callable[["FakeRuntime", str, list[str], dict[str, str]], ExecAnswer]


class FakeRuntime:
    def __init__(self, *, images: set[str] | None = None, pullable: set[str] | None = None) -> None:
        # None means every image is present; `pullable` are those a pull fetches.
        self.images = images
        self.pullable = pullable or set()
        self.built: list[tuple[str, dict[str, str]]] = []  # (tag, buildargs) of image_build
        self.image_labels: dict[str, dict[str, str]] = {}  # an image's labels (berth.recipe from its build)
        self.containers_by_name: dict[str, ContainerState] = {}
        self.networks: dict[str, str] = {}
        self.volumes: dict[str, str] = {}
        self.installs: dict[str, str] = {}  # network or volume name -> its berth.install label
        self.subnets: dict[str, str] = {}  # network name -> its subnet
        self.foreign_subnets: set[str] = set()  # subnets of networks someone else made on the engine
        self.taken_ports: set[int] = set()  # ports something outside Berth holds
        self.calls: Counter[str] = Counter()
        self.purged_given_up: frozenset[str] = frozenset()  # stack_purge's given_up, last call
        self.pending_events: list[EngineEvent] = []
        self._failures: dict[str, RuntimeFailure] = {}
        # Commands have no engine to run in: `fake_postgres` plays the ones
        # Berth runs in a db container; a test may set its own handler (and
        # call fake_postgres for what it does not change).
        self.exec_handler: ExecHandler = fake_postgres
        self.files: dict[tuple[str, str], bytes] = {}  # (container, path) -> content, from file_put
        self.mounts: dict[str, str] = {}  # container name -> the volume at its PGDATA
        # container name -> its spec, for the engine's rule on copies into a read-only root (base.copy_root)
        self.container_specs: dict[str, ContainerSpec] = {}
        # A volume's database as fake_postgres sees it: qualified table name -> rows.
        self.databases: dict[str, dict[str, int]] = {}
        # Extensions installed in a volume's database, and those an image offers (absent: FAKE_EXTENSIONS).
        self.extensions_used: dict[str, list[str]] = {}
        self.extensions_available: dict[str, list[str]] = {}
        # What stack_sample reads of a project's db (project id -> DbStats); a
        # project without an entry gets counters that grow with every sample.
        self.db_stats: dict[str, DbStats] = {}
        self.samples_taken: Counter[str] = Counter()
        self.specs: dict[str, StackSpec] = {}  # project id -> the spec of its last stack_up or stack_wait_ready
        self.server_sql: list[str] = []  # SQL a service ran as the superuser (SERVER_SQL_ARGV), in order
        # What the next stack_wait_ready of a project reports its bootstrap healed (spec.HEAL_SQL), then ().
        self.healed: dict[str, tuple[str, ...]] = {}
        # A Swarm's nodes (placement); () is a single engine. Their missing_images are what they lack of any image.
        self.node_list: tuple[NodeState, ...] = ()

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

    def stack_up(self, spec: StackSpec, *, start: bool = True, create_volume: bool = True) -> None:
        self._call("stack_up")
        self.specs[spec.project_id] = spec
        for c in spec.containers:
            if self.images is not None and c.image not in self.images:
                raise ImageUnavailable(f"image {c.image} is not on the engine and could not be pulled")
        if spec.volume not in self.volumes and not create_volume:
            raise VolumeMissing(f"the data volume {spec.volume} is not on the engine")
        if spec.network not in self.networks and spec.subnet:
            if spec.subnet in self.foreign_subnets or spec.subnet in self.subnets.values():
                raise SubnetUnavailable(f"creating network {spec.network}: subnet {spec.subnet} is taken on the engine")
            self.subnets[spec.network] = spec.subnet
        self.networks.setdefault(spec.network, spec.project_id)
        self.volumes.setdefault(spec.volume, spec.project_id)
        for name in (spec.network, spec.volume):
            self.installs.setdefault(name, spec.labels.get(INSTALL_LABEL, ""))
        for c in spec.containers:
            known = self.containers_by_name.get(c.name)
            if known is not None and (known.image != c.image or (c.volume_mount and self.mounts.get(c.name) != spec.volume)):
                # Made from another spec: replaced, like DockerRuntime's digest check does.
                del self.containers_by_name[c.name]
            if c.volume_mount:
                self.mounts[c.name] = spec.volume
            if c.name not in self.containers_by_name:
                self.containers_by_name[c.name] = ContainerState(
                    name=c.name, project_id=spec.project_id, service=c.service, status="created",
                    image=c.image, host_ports=(c.host_port,), install=c.labels.get(INSTALL_LABEL, ""),
                )  # fmt: skip
        for c in spec.containers:
            self.container_specs[c.name] = c
        if start:
            for c in spec.containers:
                for f in c.files:
                    self._copy_check(c.name, f.path)
                if c.host_port in self.taken_ports:
                    raise PortUnavailable(f"starting {c.name}: a host port is already in use ({c.host_port})")
                health = "healthy" if c.healthcheck else None
                self.set_status(c.name, "running", health)

    def stack_wait_ready(self, spec: StackSpec, *, timeout_s: float) -> tuple[str, ...]:
        self._call("stack_wait_ready")
        self.specs[spec.project_id] = spec
        return self.healed.pop(spec.project_id, ())

    def stack_stop(self, spec: StackSpec) -> None:
        self._call("stack_stop")
        for c in spec.containers:
            if c.name in self.containers_by_name:
                self.set_status(c.name, "exited")

    def stack_remove_containers(self, project_id: str) -> None:
        self._call("stack_remove_containers")
        for name in [n for n, c in self.containers_by_name.items() if c.project_id == project_id]:
            del self.containers_by_name[name]

    def stack_purge(self, project_id: str, *, given_up: Collection[str] = ()) -> None:
        self._call("stack_purge")
        self.purged_given_up = frozenset(given_up)
        for store in (self.containers_by_name, self.networks, self.volumes):
            for name in [n for n, v in store.items() if (getattr(v, "project_id", v)) == project_id]:
                del store[name]
        for network in [n for n in self.subnets if n not in self.networks]:
            del self.subnets[network]

    def stack_state(self, project_id: str, *, volume: str = "") -> StackState:
        self._call("stack_state")
        return StackState(
            project_id=project_id,
            containers=tuple(c for c in self.containers_by_name.values() if c.project_id == project_id),
            network=object_names(project_id)["network"] in self.networks,
            volume=(volume or object_names(project_id)["volume"]) in self.volumes,
        )

    def volume_create(self, name: str, labels: dict[str, str]) -> None:
        self._call("volume_create")
        if name not in self.volumes:
            self.volumes[name] = labels.get(PROJECT_LABEL, "")
            self.installs[name] = labels.get(INSTALL_LABEL, "")

    def volume_remove(self, name: str) -> None:
        self._call("volume_remove")
        if any(c in self.containers_by_name for c, v in self.mounts.items() if v == name):
            raise RuntimeFailure(f"removing volume {name}: volume is in use")
        if self.volumes.pop(name, None) is not None:
            self.databases.pop(name, None)
            self.installs.pop(name, None)

    def subnets_in_use(self) -> list[str]:
        self._call("subnets_in_use")
        return [*self.subnets.values(), *self.foreign_subnets]

    def stack_sample(self, target: SampleTarget) -> StackSample:
        self._call("stack_sample")
        n = self.samples_taken[target.project_id] = self.samples_taken[target.project_id] + 1

        def stats(name: str, memory: int, limit: int) -> ContainerStats | None:
            state = self.containers_by_name.get(name)
            return ContainerStats(cpu_seconds=0.5 * n, memory_bytes=memory, memory_limit_bytes=limit) if state and state.running else None

        db = stats(target.db_container, 48 * 2**20, 512 * 2**20)
        api = stats(target.api_container, 64 * 2**20, 256 * 2**20)
        database = None
        if db is not None:
            database = self.db_stats.get(target.project_id) or DbStats(
                size_bytes=FAKE_DATABASE_BYTES, connections=3, max_connections=100, databases=(("app", FAKE_DATABASE_BYTES),),
                commits=10 * n, rollbacks=n // 2, blocks_hit=990 * n, blocks_read=10 * n,
            )  # fmt: skip
        api_state = self.containers_by_name.get(target.api_container)
        error = "" if db is not None else f"{target.db_container} is not running"
        return StackSample(db=db, api=api, database=database, api_up=bool(api_state and api_state.running), engine_calls=2, error=error)

    def containers(self) -> tuple[ContainerState, ...]:
        self._call("containers")
        return tuple(self.containers_by_name.values())

    def inventory(self) -> EngineInventory:
        self._call("inventory")
        return EngineInventory(
            containers=tuple(self.containers_by_name.values()), networks=dict(self.networks), volumes=dict(self.volumes),
            installs={name: self.installs.get(name, "") for name in [*self.networks, *self.volumes]},
        )  # fmt: skip

    def container_logs(self, project_id: str, service: str, *, tail: int = 200) -> str:
        self._call("container_logs")
        name = container_name(project_id, service)
        return f"{name} log line\n" if name in self.containers_by_name else ""

    def events(self, *, timeout_s: float | None = None, since: float | None = None) -> Iterator[EngineEvent]:
        self._call("events")
        while self.pending_events:
            yield self.pending_events.pop(0)

    def exec_stream(
        self, container: str, argv: list[str], *, environment: dict[str, str] | None = None, idle_timeout_s: float = 600
    ) -> ExecStream:
        self._call("exec_stream")
        state = self.containers_by_name.get(container)
        if state is None:
            raise StackNotFound(f"running {argv[0]} in {container}: container {container} does not exist")
        if not state.running:
            raise RuntimeFailure(f"running {argv[0]} in {container}: container {container} is not running")
        stdout, code, stderr = self.exec_handler(self, container, list(argv), dict(environment or {}))
        chunks = [stdout] if isinstance(stdout, bytes) else list(stdout)
        return ExecStream(iter(chunks), lambda: ExecResult(exit_code=code, stderr=stderr))

    def file_put(self, container: str, path: str, chunks: Iterable[bytes], *, size: int) -> None:
        self._call("file_put")
        if container not in self.containers_by_name:
            raise StackNotFound(f"copying {path} into {container}: no such container")
        self._copy_check(container, path)
        data = b"".join(chunks)
        if len(data) != size:
            raise RuntimeFailure(f"copying {path} into {container}: the file ended after {len(data)} of its {size} bytes")
        self.files[(container, path)] = data

    def _copy_check(self, container: str, path: str) -> None:
        # As the engine: a copy onto a read-only root is refused, one onto a tmpfs is hidden (a stack's containers only).
        c = self.container_specs.get(container)
        if c is not None and copy_root(c, path) is None:
            raise RuntimeFailure(f"copying {path} into {container}: container rootfs is marked read-only")

    def scratch_up(self, spec: ScratchSpec) -> None:
        self._call("scratch_up")
        if self.images is not None and spec.image not in self.images:
            raise ImageUnavailable(f"image {spec.image} is not on the engine and could not be pulled")
        project_id = spec.labels.get(PROJECT_LABEL, "")
        if spec.volume_name not in self.volumes:
            if not spec.own_volume:
                raise StackNotFound(f"volume {spec.volume_name} does not exist: there is no data to read")
            self.volumes[spec.volume_name] = project_id
        self.mounts[spec.name] = spec.volume_name
        self.containers_by_name[spec.name] = ContainerState(
            name=spec.name, project_id=project_id, service=spec.labels.get(SERVICE_LABEL, ""), status="running", image=spec.image,
            install=spec.labels.get(INSTALL_LABEL, ""),
        )  # fmt: skip

    def scratch_remove(self, name: str) -> None:
        self._call("scratch_remove")
        self.containers_by_name.pop(name, None)
        self.networks.pop(network_name(name), None)
        if self.volumes.pop(volume_name(name), None) is not None:
            self.databases.pop(volume_name(name), None)
        self.mounts.pop(name, None)
        for key in [k for k in self.files if k[0] == name]:
            del self.files[key]

    def nodes(self, *, images: Iterable[str] = ()) -> tuple[NodeState, ...]:
        if not self.node_list:
            return ()  # a single engine, as DockerRuntime: no engine call
        self._call("nodes")
        wanted = frozenset(images)
        return tuple(replace(n, missing_images=n.missing_images & wanted) for n in self.node_list)

    def images_labels(self, images: Iterable[str]) -> dict[str, dict[str, str]]:
        self._call("images_labels")
        present = set(images) if self.images is None else set(images) & self.images
        return {image: dict(self.image_labels.get(image, {})) for image in present}

    def image_pull(self, image: str, *, progress: Callable[[str], None]) -> None:
        self._call("image_pull")
        if image not in self.pullable:
            raise ImageUnavailable(f"image {image} could not be pulled: no registry answers")
        progress(f"{image}: pulled")
        if self.images is not None:
            self.images.add(image)

    def image_build(self, context: Path, tag: str, *, buildargs: dict[str, str], progress: Callable[[str], None]) -> None:
        self._call("image_build")
        progress(f"{tag}: built")
        self.built.append((tag, buildargs))
        self.image_labels[tag] = {"berth.recipe": buildargs["BERTH_RECIPE"]} if "BERTH_RECIPE" in buildargs else {}
        if self.images is not None:
            self.images.add(tag)


FAKE_DUMP_MAGIC = b"PGDMP-fake "
FAKE_DATABASE_BYTES = 8 * 1024 * 1024  # what pg_database_size says of a small database
FAKE_EXTENSIONS = ["pg_stat_statements", "pgcrypto", "plpgsql", "uuid-ossp"]


FAKE_TIME_ZONES = frozenset({"UTC", "Etc/UTC", "Europe/Paris", "America/New_York"})


def fake_postgres(runtime: FakeRuntime, container: str, argv: list[str], environment: dict[str, str]) -> ExecAnswer:
    """Play the commands Berth runs in a postgres container, over `runtime.databases[<its volume>]`.

    A "dump" is the magic bytes and the tables as JSON, padded to a realistic
    size; a restore of anything else fails like pg_restore does.
    """
    volume = runtime.mounts.get(container, "")
    database = runtime.databases.setdefault(volume, {})
    manifest = json.dumps({"server_version": "fake", "roles": ["anon", environment.get("PGUSER", "app")], "tables": database})
    program = argv[3] if argv[:2] == ["sh", "-c"] and len(argv) > 3 else argv[0]
    if program == "pg_isready":
        return b"", 0, ""
    if program == "berth-bootstrap":
        return b"", 0, ""
    if program == "psql" and "pg_available_extensions" in argv[-1]:
        image = runtime.containers_by_name[container].image
        return json.dumps(runtime.extensions_available.get(image, FAKE_EXTENSIONS)).encode(), 0, ""
    if program == "psql" and "datistemplate" in argv[-1]:  # the databases a dump holds: the project's own alone
        return json.dumps([environment.get("PGDATABASE", "app")]).encode(), 0, ""
    if program == "psql" and "pg_extension" in argv[-1]:
        return json.dumps(runtime.extensions_used.get(volume, ["plpgsql"])).encode(), 0, ""
    if program == "berth-dump":
        # The dump script refuses before writing when the database is larger than the room Berth has for it.
        if int(environment.get("BERTH_DUMP_ROOM", FAKE_DATABASE_BYTES)) < FAKE_DATABASE_BYTES:
            return b"", 75, f"BERTH-NO-ROOM {FAKE_DATABASE_BYTES}\n"
        dump = FAKE_DUMP_MAGIC + json.dumps({"tables": database}).encode()
        return dump.ljust(1024), 0, f"BERTH-MANIFEST {manifest}\n"
    if program == "berth-restore":
        data = runtime.files.pop((container, argv[4]), b"")
        try:
            assert data.startswith(FAKE_DUMP_MAGIC)
            tables = json.loads(data[len(FAKE_DUMP_MAGIC) :])["tables"]
        except (AssertionError, ValueError, KeyError):
            return b"", 1, "pg_restore: error: input file does not appear to be a valid archive"
        runtime.databases[volume] = dict(tables)
        return b"", 0, ""
    if program == "psql":
        return manifest.encode(), 0, ""
    if program == "berth-server-sql":
        # ALTER SYSTEM as the server judges it: a time zone it does not know is refused.
        for number, line in enumerate(environment.get("BERTH_SQL", "").splitlines(), 1):
            if (zone := re.fullmatch(r"ALTER SYSTEM SET timezone = '(.*)';", line)) and zone[1] not in FAKE_TIME_ZONES:
                return b"", 3, f'psql:<stdin>:{number}: ERROR:  invalid value for parameter "TimeZone": "{zone[1]}"\n'
        runtime.server_sql.append(environment.get("BERTH_SQL", ""))
        return b"", 0, ""
    if program == "rm":
        for path in argv[2:]:
            runtime.files.pop((container, path), None)
        return b"", 0, ""
    return b"", 127, f"fake runtime: {program}: command not found"
