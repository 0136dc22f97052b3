"""DockerRuntime: the only module in Berth that imports `docker`.

It speaks the SDK's low-level API: one HTTP call per engine request, so the
number of calls a pass makes is the number we wrote (the high-level
`containers.list()` inspects every container once more).
"""

import dataclasses
import hashlib
import logging
import os
import tarfile
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import docker
import docker.errors
import docker.types
import requests.exceptions

from .base import (
    BOOTSTRAP_ARGV,
    INSTALL_LABEL,
    MANAGED_LABEL,
    PROJECT_LABEL,
    SERVICE_LABEL,
    Confinement,
    ContainerSpec,
    ContainerState,
    ContainerStats,
    EngineEvent,
    EngineInventory,
    ExecResult,
    ExecStream,
    FileSpec,
    ImageUnavailable,
    NotReady,
    PortUnavailable,
    RuntimeFailure,
    RuntimeUnavailable,
    SampleTarget,
    ScratchSpec,
    StackNotFound,
    StackSample,
    StackSpec,
    StackState,
    SubnetUnavailable,
    VolumeMissing,
    container_name,
    network_name,
    object_names,
    volume_name,
)
from .images import own_recipe
from .probes import ProbeFailed, api_answers, api_up, db_accepts, db_answers, db_stats
from .wire import exec_frames, tar_archive

logger = logging.getLogger(__name__)

NANOSECONDS = 1_000_000_000
PING_TIMEOUT_S = 3
PROBE_INTERVAL_S = 0.02
# How long an image found on the engine is taken to be there still.
IMAGE_SEEN_S = 60.0
# Of a command's stderr only the tail is kept: enough for its last words and
# for a backup's manifest line, never a whole log in memory.
STDERR_KEEP = 8 * 1024 * 1024
PORT_ERRORS = ("port is already allocated", "address already in use", "bind for")
# A digest of everything a container was created from: a container whose spec
# changed (a new api role, limits, a certificate's path) is recreated by the
# next stack_up, which is how existing projects take a new contract on start.
CONFIG_LABEL = "berth.config"


def engine_address() -> str:
    return os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"


class DockerRuntime:
    def __init__(self, *, timeout_s: int = 30, pull_images: bool = True) -> None:
        self.timeout_s = timeout_s
        self.pull_images = pull_images
        self._api: docker.APIClient | None = None
        self._images_seen: dict[str, float] = {}

    # --- plumbing --------------------------------------------------------

    @property
    def api(self) -> docker.APIClient:
        # Made on first use, never at import: the dashboard starts without an
        # engine. A failed attempt is not cached, so the next call retries.
        if self._api is None:
            try:
                self._api = docker.from_env(timeout=self.timeout_s).api
            except docker.errors.DockerException as exc:
                raise RuntimeUnavailable(f"Docker Engine unreachable at {engine_address()}: {_reason(exc)}") from None
        return self._api

    @contextmanager
    def _engine(self, doing: str) -> Iterator[None]:
        """Translate SDK and transport errors into Berth's, naming what we were doing."""
        try:
            yield
        except RuntimeFailure:
            raise
        except docker.errors.ImageNotFound as exc:
            raise ImageUnavailable(f"{doing}: image not found: {_reason(exc)}") from None
        except docker.errors.APIError as exc:
            text = _reason(exc)
            if any(marker in text.lower() for marker in PORT_ERRORS):
                raise PortUnavailable(f"{doing}: a host port is already in use ({text})") from None
            raise RuntimeFailure(f"{doing}: the engine refused: {text}") from None
        except (requests.exceptions.ConnectionError, docker.errors.DockerException, ConnectionError) as exc:
            self._api = None
            raise RuntimeUnavailable(f"Docker Engine unreachable at {engine_address()} ({doing}): {_reason(exc)}") from None
        except requests.exceptions.ReadTimeout:
            raise RuntimeUnavailable(f"Docker Engine at {engine_address()} did not answer in time ({doing})") from None

    def ping(self) -> None:
        # A short timeout of its own: the dashboard pings while rendering, and a
        # hung engine must cost a page seconds, not the client's 30 s.
        with self._engine("checking the engine"):
            # APIClient.ping() takes no timeout, so the request it makes is made
            # here; types-docker leaves the SDK's private helpers out.
            self.api._result(self.api._get(self.api._url("/_ping"), timeout=PING_TIMEOUT_S))  # type: ignore[attr-defined]

    # --- stacks ------------------------------------------------------------

    def stack_up(self, spec: StackSpec, *, start: bool = True, create_volume: bool = True) -> None:
        # Images first, then the volume: a missing image (or a data volume that
        # must not be made afresh) fails before anything is created.
        for image in {spec.db.image, spec.api.image}:
            self._image_ensure(image)
        with self._engine(f"creating volume {spec.volume}"):
            try:
                self.api.inspect_volume(spec.volume)
            except docker.errors.NotFound:
                if not create_volume:
                    raise VolumeMissing(f"the data volume {spec.volume} is not on the engine") from None
                self.api.create_volume(spec.volume, labels=spec.labels)
        with self._engine(f"creating network {spec.network}"):
            if not self._network_exists(spec.network):
                # A subnet of Berth's own pool: the engine's default pools hold
                # about 31 networks. (Without one, the engine chooses.)
                ipam = docker.types.IPAMConfig(pool_configs=[docker.types.IPAMPool(subnet=spec.subnet)]) if spec.subnet else None
                try:
                    self.api.create_network(spec.network, driver="bridge", labels=spec.labels, ipam=ipam)
                except docker.errors.APIError as exc:
                    if "overlap" in _reason(exc).lower():
                        raise SubnetUnavailable(f"creating network {spec.network}: subnet {spec.subnet} is taken on the engine ({_reason(exc)})") from None
                    raise
        with self._engine(f"reading project {spec.project_id}'s containers"):
            # One list call, not an inspect per container; by name, so an
            # unlabelled container of an older Berth is found (and adopted) too.
            names = [c.name for c in spec.containers]
            found = self.api.containers(all=True, filters={"name": names})
        made_of = {n.lstrip("/"): (c.get("Labels") or {}).get(CONFIG_LABEL, "") for c in found for n in c.get("Names") or ()}
        for container in spec.containers:
            self._container_ensure(spec, container, made_of.get(container.name))
            if start:
                # Files go in right before the start that needs them, not into
                # a container that stays stopped (a restore): put_archive into
                # a created container is the slowest call of a restore (the
                # engine mounts its filesystem), and only stack_up starts one.
                if container.files:
                    self._files_put(container.name, container.files)
                # Each container starts as soon as it is made: the db's initdb
                # runs while the api is being created. The api does not wait
                # for the db: it retries its connection (spec.POSTGRAPHILE_RC),
                # so the two come up in parallel.
                with self._engine(f"starting {container.name}"):
                    self.api.start(container.name)

    def _network_exists(self, name: str) -> bool:
        # networks(names=…) matches by prefix; confirm the exact name.
        return any(n["Name"] == name for n in self.api.networks(names=[name]))

    def _image_ensure(self, image: str) -> None:
        # An image seen lately is not asked about again: images are not
        # removed under Berth, and a create on one that was anyway fails with
        # ImageUnavailable, as it would have here. Two calls off every action.
        if time.monotonic() - self._images_seen.get(image, -IMAGE_SEEN_S) < IMAGE_SEEN_S:
            return
        with self._engine(f"checking image {image}"):
            try:
                self.api.inspect_image(image)  # type: ignore[no-untyped-call]  # types-docker leaves it unannotated
                self._images_seen[image] = time.monotonic()
                return
            except docker.errors.ImageNotFound:
                pass
            if not self.pull_images:
                raise ImageUnavailable(f"image {image} is not on the engine (pulling is off: BERTH_PULL_IMAGES=0)")
            if own_recipe(image) is not None:
                # Never pulled: a registry's image of that name is someone else's.
                raise ImageUnavailable(f"image {image} is not on the engine: `manage.py images build {image}` builds it")
            self.image_pull(image, progress=lambda line: logger.info("%s", line))

    # --- images (manage.py images, up) ----------------------------------------

    def images_present(self, images: Iterable[str]) -> set[str]:
        wanted = set(images)
        with self._engine("listing images"):
            tags = {tag for image in self.api.images() for tag in image.get("RepoTags") or ()}
        # The engine lists "postgres:17" for "postgres:17" and "docker.io/library/postgres:17" alike.
        return {w for w in wanted if w in tags or (":" not in w.rpartition("/")[2] and f"{w}:latest" in tags)}

    def image_pull(self, image: str, *, progress: Callable[[str], None]) -> None:
        repository, _, tag = image.rpartition(":") if ":" in image.split("/")[-1] else (image, "", "latest")
        with self._engine(f"pulling {image}"):
            try:
                done: set[str] = set()
                for event in self.api.pull(repository, tag=tag, stream=True, decode=True):
                    if "error" in event:
                        raise ImageUnavailable(f"image {image} is not on the engine and could not be pulled: {event['error']}")
                    # One line per layer as it completes, not every byte count.
                    status, layer = event.get("status", ""), event.get("id", "")
                    if status in {"Pull complete", "Already exists"} and layer not in done:
                        done.add(layer)
                        progress(f"{image}: layer {layer} {status.lower()} ({len(done)} so far)")
                    elif status.startswith(("Digest:", "Status:")):
                        progress(f"{image}: {status}")
            except docker.errors.DockerException as exc:
                raise ImageUnavailable(f"image {image} is not on the engine and could not be pulled: {_reason(exc)}") from None

    def image_build(self, context: Path, tag: str, *, buildargs: dict[str, str], progress: Callable[[str], None]) -> None:
        with self._engine(f"building {tag}"):
            # A build of minutes must not hit the client's 30 s read timeout between two lines.
            client = docker.from_env(timeout=3600).api
            try:
                for event in client.build(path=str(context), tag=tag, buildargs=buildargs, rm=True, forcerm=True, decode=True):
                    if "error" in event:
                        raise RuntimeFailure(f"building {tag} failed: {event['error'].strip()}")
                    if line := (event.get("stream") or "").strip():
                        if line.startswith("Step "):
                            progress(f"{tag}: {line}")
            finally:
                client.close()

    def _container_ensure(self, spec: StackSpec, c: ContainerSpec, made_of: str | None) -> None:
        """Create `c` unless a container of its name made from the same spec exists; `made_of` is the existing one's digest."""
        digest = _config_digest(spec, c)
        with self._engine(f"creating {c.name}"):
            if made_of is not None:
                if made_of == digest:
                    return  # already there: start (if asked) is enough to converge
                # Made from an older spec: replace it (the data is on the volume),
                # stopping it first so Postgres shuts down cleanly.
                self.api.stop(c.name, timeout=c.stop_timeout_s)
                self.api.remove_container(c.name, force=True)
            binds: dict[str, Mapping[str, str]] | None = {spec.volume: {"bind": c.volume_mount, "mode": "rw"}} if c.volume_mount else None
            host_config = self.api.create_host_config(
                port_bindings={c.container_port: (c.publish_host, c.host_port)},
                binds=binds,
                mem_limit=c.mem_limit,
                restart_policy={"Name": "unless-stopped"},
                network_mode=spec.network,
                **_confinement(c.confinement),
            )
            healthcheck = None
            if c.healthcheck:
                healthcheck = {
                    "test": c.healthcheck.test,
                    "interval": int(c.healthcheck.interval_s * NANOSECONDS),
                    "timeout": int(c.healthcheck.timeout_s * NANOSECONDS),
                    "retries": c.healthcheck.retries,
                    "start_period": int(c.healthcheck.start_period_s * NANOSECONDS),
                }
            self.api.create_container(
                c.image,
                command=c.command,
                name=c.name,
                environment=c.environment,
                labels={**c.labels, CONFIG_LABEL: digest},
                ports=[c.container_port],
                host_config=host_config,
                healthcheck=healthcheck,
                stop_timeout=c.stop_timeout_s,
                volumes=[c.volume_mount] if c.volume_mount else None,
                working_dir=c.working_dir,
            )

    def _files_put(self, container: str, files: tuple[FileSpec, ...]) -> None:
        with self._engine(f"copying files into {container}"):
            self.api.put_archive(container, "/", tar_archive(files))

    def stack_wait_ready(self, spec: StackSpec, *, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        self._wait(deadline, spec, "db", lambda: db_accepts(spec))
        if spec.db_probe.bootstrap_sql:
            self._wait(deadline, spec, "db", lambda: self._db_bootstrap(spec))
        self._wait(deadline, spec, "db", lambda: db_answers(spec))
        self._wait(deadline, spec, "api", lambda: api_answers(spec))

    def _db_bootstrap(self, spec: StackSpec) -> None:
        p = spec.db_probe
        try:
            _, result = self.exec_stream(
                spec.db.name, BOOTSTRAP_ARGV, environment={**p.bootstrap_env, "BERTH_SQL": p.bootstrap_sql}, idle_timeout_s=30
            ).read_all()
        except RuntimeFailure as exc:
            raise ProbeFailed(f"bootstrap: {exc}") from None
        if result.exit_code != 0:
            tail = result.stderr.strip().splitlines()
            raise ProbeFailed(f"bootstrap exited {result.exit_code}: {tail[-1] if tail else 'no message'}")

    def _wait(self, deadline: float, spec: StackSpec, service: str, probe: Callable[[], None]) -> None:
        last_error = ""
        checked_at = time.monotonic()
        while True:
            try:
                probe()
                return
            except ProbeFailed as exc:
                last_error = str(exc)
            now = time.monotonic()
            if now >= deadline:
                raise NotReady(f"the {service} did not become ready in time: {last_error}")
            if now - checked_at >= 1.0:
                # A container that exited will never answer: fail now, with its last words.
                checked_at = now
                state = self.stack_state(spec.project_id).container(service)
                if state is None or state.status in {"exited", "dead"}:
                    tail = self.container_logs(spec.project_id, service, tail=5).strip().splitlines()
                    words = f": {tail[-1]}" if tail else ""
                    raise NotReady(f"the {service} container {'is missing' if state is None else 'exited'}{words}")
            # Each probe is a refused connect or one small query: polling this
            # often costs little and answers within 20 ms of the service.
            time.sleep(PROBE_INTERVAL_S)

    def stack_stop(self, spec: StackSpec) -> None:
        # Both at once: the db's fast shutdown (SIGTERM on Berth's images,
        # SIGINT on the official ones) ends the api's sessions itself, so it
        # need not wait for the api to go first.
        def stop(c: ContainerSpec) -> None:
            with self._engine(f"stopping {c.name}"):
                try:
                    self.api.stop(c.name, timeout=c.stop_timeout_s)
                except docker.errors.NotFound:
                    pass

        _all_at_once(stop, spec.containers)

    def stack_remove_containers(self, project_id: str) -> None:
        # One list call (not stack_state's three): delete is on the path a person waits on.
        with self._engine(f"listing project {project_id}'s containers"):
            found = self.api.containers(all=True, filters={"label": _label_filter(project_id)})
        states = list(map(_container_state, found))
        # All at once: the api holds nothing and is removed at once; the db is
        # stopped cleanly first, its fast shutdown ending the api's sessions.
        _all_at_once(lambda c: self._stop_then_remove(c.name, running=c.running and c.service != "api"), states)

    def _stop_then_remove(self, name: str, *, running: bool) -> None:
        # A forced removal SIGKILLs: a postgres killed so must recover on its
        # next start ("not properly shut down"). A running server is stopped
        # first, with the container's own stop timeout (what the engine uses
        # when none is given), so it checkpoints and exits cleanly.
        with self._engine(f"stopping {name}"):
            try:
                if running:
                    self.api.stop(name)
                self.api.remove_container(name, force=True)
            except docker.errors.NotFound:
                pass

    def stack_purge(self, project_id: str) -> None:
        self.stack_remove_containers(project_id)
        label = _label_filter(project_id)
        with self._engine(f"removing project {project_id}'s network"):
            for network in self.api.networks(filters={"label": label}):
                try:
                    self.api.remove_network(network["Id"])
                except docker.errors.NotFound:
                    pass
        with self._engine(f"removing project {project_id}'s volume"):
            for volume in self.api.volumes(filters={"label": label}).get("Volumes") or []:
                try:
                    self.api.remove_volume(volume["Name"])
                except docker.errors.NotFound:
                    pass

    def stack_state(self, project_id: str, *, volume: str = "") -> StackState:
        label = _label_filter(project_id)
        with self._engine(f"reading project {project_id}"):
            containers = tuple(_container_state(c) for c in self.api.containers(all=True, filters={"label": label}))
            networks = self.api.networks(filters={"label": label})
            volumes = self.api.volumes(filters={"label": label}).get("Volumes") or []
        # By name: a backup throwaway's own volume carries the project's labels too.
        names = object_names(project_id)
        return StackState(
            project_id=project_id,
            containers=containers,
            network=any(n["Name"] == names["network"] for n in networks),
            volume=any(v["Name"] == (volume or names["volume"]) for v in volumes),
        )

    def volume_create(self, name: str, labels: dict[str, str]) -> None:
        with self._engine(f"creating volume {name}"):
            try:
                self.api.inspect_volume(name)
            except docker.errors.NotFound:
                self.api.create_volume(name, labels=labels)

    def volume_remove(self, name: str) -> None:
        # Only what carries Berth's label: a same-named volume someone else made is left alone.
        with self._engine(f"removing volume {name}"):
            try:
                if _managed(self.api.inspect_volume(name).get("Labels")):
                    self.api.remove_volume(name)
            except docker.errors.NotFound:
                pass

    def subnets_in_use(self) -> list[str]:
        with self._engine("listing the engine's networks"):
            networks = self.api.networks()
        return [c["Subnet"] for n in networks for c in (n.get("IPAM") or {}).get("Config") or [] if c.get("Subnet")]

    def stack_sample(self, target: SampleTarget) -> StackSample:
        errors: list[str] = []

        def stats(name: str) -> ContainerStats | None:
            try:
                return self._container_stats(name)
            except RuntimeFailure as exc:
                errors.append(str(exc))
                return None

        # The engine answers a stats request at its collector's next tick (up
        # to a second, one-shot or not, measured on 20.10): the two requests
        # wait for the same tick while the db and the api are asked here.
        with ThreadPoolExecutor(max_workers=2, thread_name_prefix="berth-stats") as pool:
            db, api = pool.submit(stats, target.db_container), pool.submit(stats, target.api_container)
            try:
                database = db_stats(target.db_probe)
            except ProbeFailed as exc:
                database = None
                errors.append(f"the db: {exc}")
            up = api_up(target.db_probe.host, target.api_port, target.api_probe)
            db_stats_, api_stats = db.result(), api.result()
        return StackSample(db=db_stats_, api=api_stats, database=database, api_up=up, engine_calls=2, error=(errors or [""])[0])

    def _container_stats(self, name: str) -> ContainerStats | None:
        # one-shot: the engine answers at once instead of waiting a second for
        # a second reading (CPU rates come from two of our samples instead).
        with self._engine(f"reading the stats of {name}"):
            try:
                found = self.api.stats(name, stream=False, one_shot=True)
            except docker.errors.NotFound:
                return None
        return _container_stats(found)

    def containers(self) -> tuple[ContainerState, ...]:
        """Every Berth-labelled container, with one engine call."""
        with self._engine("listing containers"):
            found = self.api.containers(all=True, filters={"label": f"{MANAGED_LABEL}=true"})
        return tuple(_container_state(c) for c in found)

    def inventory(self) -> EngineInventory:
        label = f"{MANAGED_LABEL}=true"
        with self._engine("listing Berth's objects"):
            containers = self.containers()
            found_networks = self.api.networks(filters={"label": label})
            found_volumes = self.api.volumes(filters={"label": label}).get("Volumes") or []
        networks = {n["Name"]: (n.get("Labels") or {}).get(PROJECT_LABEL, "") for n in found_networks}
        volumes = {v["Name"]: (v.get("Labels") or {}).get(PROJECT_LABEL, "") for v in found_volumes}
        installs = {o["Name"]: (o.get("Labels") or {}).get(INSTALL_LABEL, "") for o in [*found_networks, *found_volumes]}
        return EngineInventory(containers=containers, networks=networks, volumes=volumes, installs=installs)

    def container_logs(self, project_id: str, service: str, *, tail: int = 200) -> str:
        name = container_name(project_id, service)
        with self._engine(f"reading logs of {name}"):
            try:
                return self.api.logs(name, tail=tail).decode("utf-8", errors="replace")
            except docker.errors.NotFound:
                return ""

    def events(self, *, timeout_s: float | None = None, since: float | None = None) -> Iterator[EngineEvent]:
        until = time.time() + timeout_s if timeout_s else None
        with self._engine("following events"):
            # The Engine takes fractional seconds; types-docker's overloads say int.
            stream = self.api.events(  # type: ignore[call-overload]
                decode=True, since=since, until=until, filters={"type": "container", "label": f"{MANAGED_LABEL}=true"}
            )
            for event in stream:
                labels = (event.get("Actor") or {}).get("Attributes") or {}
                if labels.get(PROJECT_LABEL):
                    yield EngineEvent(
                        project_id=labels[PROJECT_LABEL],
                        service=labels.get(SERVICE_LABEL, ""),
                        action=event.get("Action") or event.get("status") or "",
                    )

    # --- commands, files and throwaway containers (backups) ------------------

    def exec_stream(
        self, container: str, argv: list[str], *, environment: dict[str, str] | None = None, idle_timeout_s: float = 600
    ) -> ExecStream:
        doing = f"running {argv[0]} in {container}"
        with self._engine(doing):
            try:
                exec_id = self.api.exec_create(container, argv, stdout=True, stderr=True, environment=environment)["Id"]
            except docker.errors.NotFound:
                raise StackNotFound(f"{doing}: container {container} does not exist") from None
            except docker.errors.APIError as exc:
                if exc.status_code == 409:
                    raise RuntimeFailure(f"{doing}: container {container} is not running") from None
                raise
            # The SDK's exec_start(stream=True) reads with poll() and no
            # timeout, so a wedged command would hang the worker for ever: we
            # read the multiplexed frames ourselves, with a timeout.
            # The SDK's private helpers, which types-docker leaves out.
            response = self.api._post_json(  # type: ignore[attr-defined]
                self.api._url("/exec/{0}/start", exec_id),  # type: ignore[attr-defined]
                headers={"Connection": "Upgrade", "Upgrade": "tcp"},
                data={"Tty": False, "Detach": False},
                stream=True,
            )
            sock = self.api._get_raw_response_socket(response)  # type: ignore[attr-defined]
        raw = getattr(sock, "_sock", sock)
        raw.settimeout(idle_timeout_s)
        stderr = bytearray()

        def chunks() -> Iterator[bytes]:
            try:
                for stream, data in exec_frames(raw):
                    if stream == 2:
                        stderr.extend(data)
                        del stderr[:-STDERR_KEEP]
                    else:
                        yield data
            except TimeoutError:
                raise RuntimeFailure(f"{doing}: no output for {idle_timeout_s:.0f} s; the command was abandoned") from None
            except OSError:
                return  # the connection dropped (the container died): result() says how it ended

        def finish() -> ExecResult:
            for _ in stream:  # stdout nobody read ends here
                pass
            return ExecResult(exit_code=self._exec_exit_code(exec_id), stderr=stderr.decode("utf-8", errors="replace"))

        stream = chunks()
        return ExecStream(stream, finish, close=response.close)

    def _exec_exit_code(self, exec_id: str) -> int | None:
        # The output ends a moment before the engine records the exit code.
        deadline = time.monotonic() + 10
        while True:
            try:
                with self._engine("reading a command's exit code"):
                    info = self.api.exec_inspect(exec_id)
            except RuntimeFailure:
                return None  # the container (and its exec) is gone
            if not info.get("Running"):
                code = info.get("ExitCode")
                return code if isinstance(code, int) else None
            if time.monotonic() >= deadline:
                return None
            time.sleep(0.05)

    def file_put(self, container: str, path: str, chunks: Iterable[bytes], *, size: int) -> None:
        directory, _, name = path.rpartition("/")
        doing = f"copying {name} into {container}"
        info = tarfile.TarInfo(name)
        info.size, info.mode, info.mtime = size, 0o644, int(time.time())

        def archive() -> Iterator[bytes]:
            # One file as a tar stream, built as it is sent: the file is never
            # held in memory nor copied to a temporary archive.
            yield info.tobuf(format=tarfile.GNU_FORMAT)
            sent = 0
            for chunk in chunks:
                sent += len(chunk)
                if sent > size:
                    raise RuntimeFailure(f"{doing}: the file is longer than its {size} bytes")
                yield chunk
            if sent != size:
                raise RuntimeFailure(f"{doing}: the file ended after {sent} of its {size} bytes")
            yield b"\0" * ((-size) % tarfile.BLOCKSIZE) + b"\0" * (2 * tarfile.BLOCKSIZE)

        with self._engine(doing):
            try:
                self.api.put_archive(container, directory or "/", archive())
            except docker.errors.NotFound as exc:
                raise StackNotFound(f"{doing}: {_reason(exc)}") from None

    def scratch_up(self, spec: ScratchSpec) -> None:
        # Everything that can refuse comes first (image, the data's volume), so a refusal leaves nothing behind.
        self._image_ensure(spec.image)
        with self._engine(f"preparing volume {spec.volume_name}"):
            try:
                self.api.inspect_volume(spec.volume_name)
            except docker.errors.NotFound:
                if not spec.own_volume:
                    raise StackNotFound(f"volume {spec.volume_name} does not exist: there is no data to read") from None
                self.api.create_volume(spec.volume_name, labels=spec.labels)
        with self._engine(f"creating {spec.name}"):
            try:
                # A leftover of an attempt that died, perhaps still serving the project's data.
                self.api.stop(spec.name)
                self.api.remove_container(spec.name, force=True)
            except docker.errors.NotFound:
                pass
            host_config = self.api.create_host_config(
                binds={spec.volume_name: {"bind": spec.volume_mount, "mode": "rw"}},
                mem_limit=spec.mem_limit,
                # No network: Berth talks to it with exec only, over its loopback.
                network_mode="none",
                **_confinement(spec.confinement),
            )
            self.api.create_container(
                spec.image,
                command=spec.command,
                name=spec.name,
                environment=spec.environment,
                labels=spec.labels,
                host_config=host_config,
                volumes=[spec.volume_mount],
                stop_timeout=10,
            )
            self.api.start(spec.name)

    def scratch_remove(self, name: str) -> None:
        # Only what carries Berth's label: a same-named object someone else made is left alone.
        with self._engine(f"removing {name}"):
            try:
                info = self.api.inspect_container(name)
                if _managed(info["Config"].get("Labels")):
                    # A dump's throwaway runs a server on the project's own data directory: stop it cleanly too.
                    if (info.get("State") or {}).get("Running"):
                        self.api.stop(name)
                    self.api.remove_container(name, force=True, v=True)
            except docker.errors.NotFound:
                pass
        network, volume = network_name(name), volume_name(name)
        # Throwaways made by earlier versions had a network of their own.
        with self._engine(f"removing network {network}"):
            for found in self.api.networks(names=[network]):
                if found["Name"] == network and _managed(found.get("Labels")):
                    try:
                        self.api.remove_network(found["Id"])
                    except docker.errors.NotFound:
                        pass
        with self._engine(f"removing volume {volume}"):
            try:
                if _managed(self.api.inspect_volume(volume).get("Labels")):
                    self.api.remove_volume(volume, force=True)
            except docker.errors.NotFound:
                pass


def _confinement(c: Confinement) -> dict[str, Any]:
    """create_host_config's arguments for a Confinement."""
    return {
        "cap_drop": ["ALL"],
        "cap_add": list(c.cap_add) or None,
        "pids_limit": c.pids_limit,
        "nano_cpus": int(c.cpus * NANOSECONDS) or None,
        "security_opt": ["no-new-privileges"] if c.no_new_privileges else None,
        "log_config": {"type": "json-file", "config": {"max-size": c.log_max_size, "max-file": str(c.log_max_file)}},
    }


def _config_digest(spec: StackSpec, c: ContainerSpec) -> str:
    # Files are rewritten on every stack_up, so their content is not part of
    # what the container was made from; only where they go.
    made_of = dataclasses.replace(c, files=tuple(dataclasses.replace(f, content=b"") for f in c.files))
    return hashlib.sha256(repr((made_of, spec.network, spec.volume)).encode()).hexdigest()[:16]


def _all_at_once[T](work: Callable[[T], None], items: Iterable[T]) -> None:
    """`work` on every item in threads of its own (engine calls that wait: stops), re-raising the first error."""
    items = list(items)
    if len(items) <= 1:
        for item in items:
            work(item)
        return
    with ThreadPoolExecutor(max_workers=len(items)) as pool:
        for future in [pool.submit(work, item) for item in items]:
            future.result()


def _managed(labels: dict[str, str] | None) -> bool:
    return (labels or {}).get(MANAGED_LABEL) == "true"


def _label_filter(project_id: str) -> list[str]:
    return [f"{MANAGED_LABEL}=true", f"{PROJECT_LABEL}={project_id}"]


def _container_state(c: dict[str, Any]) -> ContainerState:
    labels = c.get("Labels") or {}
    status_text = c.get("Status") or ""
    health = None
    if "(healthy)" in status_text:
        health = "healthy"
    elif "(unhealthy)" in status_text:
        health = "unhealthy"
    elif "(health: starting)" in status_text:
        health = "starting"
    return ContainerState(
        name=(c.get("Names") or ["/?"])[0].lstrip("/"),
        project_id=labels.get(PROJECT_LABEL, ""),
        service=labels.get(SERVICE_LABEL, ""),
        status=c.get("State") or "unknown",
        health=health,
        image=c.get("Image") or "",
        install=labels.get(INSTALL_LABEL, ""),
        host_ports=tuple(sorted({p["PublicPort"] for p in c.get("Ports") or [] if p.get("PublicPort")})),
    )


def _container_stats(found: dict[str, Any]) -> ContainerStats | None:
    memory = found.get("memory_stats") or {}
    cpu = (found.get("cpu_stats") or {}).get("cpu_usage") or {}
    if not memory.get("usage") and not cpu.get("total_usage"):
        return None  # a stopped container's stats are empty
    detail = memory.get("stats") or {}
    # As `docker stats` counts it: the page cache the kernel can drop is not "in use"
    # (inactive_file on cgroup v2, total_inactive_file on v1).
    cache = detail.get("inactive_file", detail.get("total_inactive_file", 0))
    return ContainerStats(
        cpu_seconds=int(cpu.get("total_usage") or 0) / NANOSECONDS,
        memory_bytes=max(0, int(memory.get("usage") or 0) - int(cache or 0)),
        memory_limit_bytes=int(memory.get("limit") or 0),
    )


def _reason(exc: BaseException) -> str:
    if isinstance(exc, docker.errors.APIError) and exc.explanation:
        return str(exc.explanation)
    return str(exc) or type(exc).__name__
