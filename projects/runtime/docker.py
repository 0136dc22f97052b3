"""DockerRuntime: Berth on one Docker Engine (BERTH_RUNTIME=docker, the default).

With docker_common.py (what it shares with the Swarm runtime) and swarm.py,
the only modules that import `docker`.
"""

import dataclasses
import hashlib
import time
from collections.abc import Collection, Iterable, Iterator, Mapping
from typing import Any

import docker
import docker.errors
import docker.types

from .base import (
    INSTALL_LABEL,
    MANAGED_LABEL,
    PROJECT_LABEL,
    SERVICE_LABEL,
    ContainerSpec,
    ContainerState,
    EngineEvent,
    EngineInventory,
    SampleTarget,
    StackSample,
    NodeState,
    StackSpec,
    StackState,
    SubnetUnavailable,
    VolumeMissing,
    container_name,
    object_names,
    own_volume_labels,
)
from .docker_common import NANOSECONDS, Engine, _confinement, _container_state, _label_filter, _managed, _reason, all_at_once, engine_address, stack_sample
from .probes import wait_ready

# A digest of everything a container was created from: a container whose spec
# changed (a new api role, limits, a certificate's path) is recreated by the
# next stack_up, which is how existing projects take a new contract on start.
CONFIG_LABEL = "berth.config"

__all__ = ["DockerRuntime", "engine_address"]


def _writable(c: ContainerSpec) -> dict[str, Any]:
    """create_host_config's arguments for where a container with a read-only root may write (ContainerSpec.read_only)."""
    return {
        "read_only": c.read_only or None,
        # Small runtime state only: a tmpfs counts against the container's memory limit.
        "tmpfs": {path: "size=16m" for path in c.tmpfs} or None,
        # Anonymous (removed with the container, v=True), labelled so a test run's leftovers are found.
        "mounts": [docker.types.Mount(path, None, type="volume", labels=own_volume_labels(c)) for path in c.own_volumes] or None,
    }


class DockerRuntime(Engine):
    def nodes(self, *, images: Iterable[str] = ()) -> tuple[NodeState, ...]:
        return ()  # one engine: nothing to place

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
                    self._files_put(container)
                # Each container starts as soon as it is made: the db's initdb
                # runs while the api is being created. The api does not wait
                # for the db: it retries its connection (stack/postgraphile.py, RETRY_ON_INIT_FAIL),
                # so the two come up in parallel.
                with self._engine(f"starting {container.name}"):
                    self.api.start(container.name)

    def _network_exists(self, name: str) -> bool:
        # networks(names=…) matches by prefix; confirm the exact name.
        return any(n["Name"] == name for n in self.api.networks(names=[name]))

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
                self.api.remove_container(c.name, force=True, v=True)  # v: its own volumes go with it
            binds: dict[str, Mapping[str, str]] | None = {spec.volume: {"bind": c.volume_mount, "mode": "rw"}} if c.volume_mount else None
            host_config = self.api.create_host_config(
                port_bindings={c.container_port: (c.publish_host, c.host_port)},
                binds=binds,
                mem_limit=c.mem_limit,
                restart_policy={"Name": "unless-stopped"},
                network_mode=spec.network,
                **_confinement(c.confinement),
                **_writable(c),
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

    def stack_wait_ready(self, spec: StackSpec, *, timeout_s: float) -> tuple[str, ...]:
        return wait_ready(self, spec, timeout_s=timeout_s)

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

        all_at_once(stop, spec.containers)

    def stack_remove_containers(self, project_id: str) -> None:
        # One list call (not stack_state's three): delete is on the path a person waits on.
        with self._engine(f"listing project {project_id}'s containers"):
            found = self.api.containers(all=True, filters={"label": _label_filter(project_id)})
        states = list(map(_container_state, found))
        # All at once: the api holds nothing and is removed at once; the db is
        # stopped cleanly first, its fast shutdown ending the api's sessions.
        all_at_once(lambda c: self._stop_then_remove(c.name, running=c.running and c.service != "api"), states)

    def _stop_then_remove(self, name: str, *, running: bool) -> None:
        # A forced removal SIGKILLs: a postgres killed so must recover on its
        # next start ("not properly shut down"). A running server is stopped
        # first, with the container's own stop timeout (what the engine uses
        # when none is given), so it checkpoints and exits cleanly.
        with self._engine(f"stopping {name}"):
            try:
                if running:
                    self.api.stop(name)
                self.api.remove_container(name, force=True, v=True)  # v: its own volumes go with it (never a named one)
            except docker.errors.NotFound:
                pass

    def stack_purge(self, project_id: str, *, given_up: Collection[str] = ()) -> None:
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
        return stack_sample(target, self.container_stats, engine_calls=2)

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


def _config_digest(spec: StackSpec, c: ContainerSpec) -> str:
    # Files are rewritten on every stack_up, so their content is not part of
    # what the container was made from; only where they go.
    made_of = dataclasses.replace(c, files=tuple(dataclasses.replace(f, content=b"") for f in c.files))
    return hashlib.sha256(repr((made_of, spec.network, spec.volume)).encode()).hexdigest()[:16]
