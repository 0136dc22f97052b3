"""The machinery of one Docker Engine, shared by both runtimes: docker.py (one
engine) and swarm.py (one per node, next to the manager). With those two, the
only modules that import `docker`.

It speaks the SDK's low-level API: one HTTP call per engine request, so the
number of calls a pass makes is the number we wrote (the high-level
`containers.list()` inspects every container once more).
"""

import logging
import os
import tarfile
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import docker
import docker.errors
import docker.utils
import requests.exceptions

from projects.recipes import own_recipe

from .base import (
    INSTALL_LABEL,
    MANAGED_LABEL,
    PROJECT_LABEL,
    SERVICE_LABEL,
    Confinement,
    ContainerSpec,
    ContainerState,
    ContainerStats,
    ExecResult,
    ExecStream,
    FileSpec,
    ImageUnavailable,
    PortUnavailable,
    RuntimeFailure,
    RuntimeUnavailable,
    SampleTarget,
    ScratchSpec,
    StackNotFound,
    StackSample,
    copy_root,
    network_name,
    volume_name,
)
from .probes import ProbeFailed, api_up, db_stats
from .wire import exec_frames, tar_archive

logger = logging.getLogger(__name__)

NANOSECONDS = 1_000_000_000
PING_TIMEOUT_S = 3
# How long an image found on the engine is taken to be there still.
IMAGE_SEEN_S = 60.0
# Of a command's stderr only the tail is kept: enough for its last words and
# for a backup's manifest line, never a whole log in memory.
STDERR_KEEP = 8 * 1024 * 1024
PORT_ERRORS = ("port is already allocated", "address already in use", "bind for")


def engine_address() -> str:
    return os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"


class Engine:
    """One engine: its client, errors in Berth's terms, images, exec, file copy and throwaway containers."""

    def __init__(self, *, timeout_s: int = 30, pull_images: bool = True, base_url: str = "") -> None:
        self.timeout_s = timeout_s
        self.pull_images = pull_images
        # "" is the environment's engine (DOCKER_HOST); a Swarm node's is its own
        # address, with the environment's TLS settings (DOCKER_TLS_VERIFY, DOCKER_CERT_PATH).
        self.base_url = base_url
        self._api: docker.APIClient | None = None
        self._images_seen: dict[str, float] = {}

    @property
    def address(self) -> str:
        return self.base_url or engine_address()

    def _client(self, timeout_s: int) -> docker.DockerClient:
        if not self.base_url:
            return docker.from_env(timeout=timeout_s)
        tls = docker.utils.kwargs_from_env().get("tls") or False
        return docker.DockerClient(base_url=self.base_url, timeout=timeout_s, tls=tls)

    # --- plumbing --------------------------------------------------------

    @property
    def api(self) -> docker.APIClient:
        # Made on first use, never at import: the dashboard starts without an
        # engine. A failed attempt is not cached, so the next call retries.
        if self._api is None:
            try:
                self._api = self._client(self.timeout_s).api
            except docker.errors.DockerException as exc:
                raise RuntimeUnavailable(f"Docker Engine unreachable at {self.address}: {_reason(exc)}") from None
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
            raise RuntimeUnavailable(f"Docker Engine unreachable at {self.address} ({doing}): {_reason(exc)}") from None
        except requests.exceptions.ReadTimeout:
            raise RuntimeUnavailable(f"Docker Engine at {self.address} did not answer in time ({doing})") from None

    def ping(self) -> None:
        # A short timeout of its own: the dashboard pings while rendering, and a
        # hung engine must cost a page seconds, not the client's 30 s.
        with self._engine("checking the engine"):
            # APIClient.ping() takes no timeout, so the request it makes is made
            # here; types-docker leaves the SDK's private helpers out.
            self.api._result(self.api._get(self.api._url("/_ping"), timeout=PING_TIMEOUT_S))  # type: ignore[attr-defined]

    # --- images (manage.py images, up) ----------------------------------------

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

    def images_present(self, images: Iterable[str]) -> set[str]:
        """Which of `images` this engine has (a Swarm's check of each node)."""
        return set(self.images_labels(images))

    def images_labels(self, images: Iterable[str]) -> dict[str, dict[str, str]]:
        with self._engine("listing images"):
            labels = {tag: dict(image.get("Labels") or {}) for image in self.api.images() for tag in image.get("RepoTags") or ()}
        # The engine lists "postgres:17" for "postgres:17" and "docker.io/library/postgres:17" alike; a name without a tag is :latest.
        found = {w: w if ":" in w.rpartition("/")[2] else f"{w}:latest" for w in set(images)}
        return {w: labels[tag] for w, tag in found.items() if tag in labels}

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
            client = self._client(3600).api
            try:
                for event in client.build(path=str(context), tag=tag, buildargs=buildargs, rm=True, forcerm=True, decode=True):
                    if "error" in event:
                        raise RuntimeFailure(f"building {tag} failed: {event['error'].strip()}")
                    if line := (event.get("stream") or "").strip():
                        if line.startswith("Step "):
                            progress(f"{tag}: {line}")
            finally:
                client.close()

    def _files_put(self, c: ContainerSpec) -> None:
        # One archive per place the files land: under a read-only root the
        # engine takes a copy only onto a volume, and checks the archive's target.
        roots: dict[str, list[FileSpec]] = {}
        for f in c.files:
            root = copy_root(c, f.path)
            if root is None:
                raise RuntimeFailure(f"copying {f.path} into {c.name}: it is on no volume of the container, whose root is read-only")
            roots.setdefault(root, []).append(f)
        with self._engine(f"copying files into {c.name}"):
            for root, files in roots.items():
                self.api.put_archive(c.name, root, tar_archive(tuple(files), root=root))

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

    def container_stats(self, name: str) -> ContainerStats | None:
        """A container's CPU and memory now (None: gone or stopped), with one engine call."""
        # one-shot: the engine answers at once instead of waiting a second for
        # a second reading (CPU rates come from two of our samples instead).
        with self._engine(f"reading the stats of {name}"):
            try:
                found = self.api.stats(name, stream=False, one_shot=True)
            except docker.errors.NotFound:
                return None
        return _container_stats(found)

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
                    # A throwaway on a data volume that outlives it (a dump's, on the project's own; an
                    # upgrade's, on the new one) is stopped cleanly first. One on its own volume is killed:
                    # its data goes with it, and one stopped during initdb would wait out the stop timeout
                    # (the entrypoint's shell, PID 1 then, ignores the signal).
                    kept = [m for m in info.get("Mounts") or [] if m.get("Type") == "volume" and m.get("Name") != volume_name(name)]
                    if kept and (info.get("State") or {}).get("Running"):
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


def stack_sample(target: SampleTarget, stats: Callable[[str], ContainerStats | None], *, engine_calls: int) -> StackSample:
    """Runtime.stack_sample, given how to read one container's stats (RuntimeFailure: recorded as the sample's error)."""
    errors: list[str] = []

    def read(name: str) -> ContainerStats | None:
        try:
            return stats(name)
        except RuntimeFailure as exc:
            errors.append(str(exc))
            return None

    # The engine answers a stats request at its collector's next tick (up
    # to a second, one-shot or not, measured on 20.10): the two requests
    # wait for the same tick while the db and the api are asked here.
    with ThreadPoolExecutor(max_workers=2, thread_name_prefix="berth-stats") as pool:
        db, api = pool.submit(read, target.db_container), pool.submit(read, target.api_container)
        try:
            database = db_stats(target.db_probe)
        except ProbeFailed as exc:
            database = None
            errors.append(f"the db: {exc}")
        up = api_up(target.db_probe.host, target.api_port, target.api_probe)
        db_stats_, api_stats = db.result(), api.result()
    return StackSample(db=db_stats_, api=api_stats, database=database, api_up=up, engine_calls=engine_calls, error=(errors or [""])[0])


def all_at_once[T](work: Callable[[T], None], items: Iterable[T]) -> None:
    """`work` on every item in threads of its own (engine calls that wait: stops), re-raising the first error."""
    items = list(items)
    if len(items) <= 1:
        for item in items:
            work(item)
        return
    with ThreadPoolExecutor(max_workers=len(items)) as pool:
        for future in [pool.submit(work, item) for item in items]:
            future.result()


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
