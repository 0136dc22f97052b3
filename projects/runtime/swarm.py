"""SwarmRuntime: Berth on a Docker Swarm (BERTH_RUNTIME=swarm).

A project's db and api are two Swarm services with one replica each, pinned
to the project's node (`node.id==…`, never a label several nodes carry: a db
rescheduled onto another node starts on a new, empty volume). What Swarm
cannot do here, the runtime does on the node's own engine (BERTH_SWARM_NODES):
the data volume, exec, file copy, logs of throwaways, and backups' throwaway
containers, which are plain containers on the project's node.

Swarm sees tasks, not containers. A `ContainerState` here is a service and
its current task: `name` is the service's (what exec_stream takes), running
while a task of it runs; 0 replicas is stopped. Services use
`endpoint_mode=dnsrr` and ports published in `mode=host` on the node: no
ingress routing mesh and no virtual IPs are needed.

With docker_common.py (shared with docker.py) and docker.py, the only modules
that import `docker`.
"""

import dataclasses
import hashlib
import logging
import time
from collections.abc import Callable, Collection, Iterable, Iterator
from pathlib import Path
from typing import Any

import docker
import docker.errors
import docker.types

from .base import (
    INSTALL_LABEL,
    MANAGED_LABEL,
    PROJECT_LABEL,
    ContainerSpec,
    ContainerState,
    ContainerStats,
    EngineEvent,
    EngineInventory,
    ExecStream,
    ImageUnavailable,
    NodeState,
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
    object_names,
)
from .docker_common import PORT_ERRORS, Engine, _container_state, _label_filter, _reason, stack_sample
from .probes import wait_ready
from .swarm_specs import (
    CONFIG_LABEL,
    ENDED_STATES,
    FAILED_STATES,
    LIVE_STATES,
    NODE_CACHE_S,
    SWARM_SERVICE_LABEL,
    SwarmNode,
    config_digest,
    engine_event,
    pinned_to,
    progress_prefixed,
    service_state,
    service_template,
    swarm_node,
)

logger = logging.getLogger(__name__)


class SwarmRuntime:
    def __init__(
        self, *, nodes: dict[str, str], manager: str = "", public_host: str = "127.0.0.1", timeout_s: int = 30, pull_images: bool = False
    ) -> None:
        if not nodes:
            raise RuntimeUnavailable("BERTH_RUNTIME=swarm needs BERTH_SWARM_NODES (name=tcp://host:port,…): the engine of every node")
        self.manager = Engine(base_url=manager, timeout_s=timeout_s, pull_images=False)  # "": DOCKER_HOST
        self.engines = {name: Engine(base_url=url, timeout_s=timeout_s, pull_images=pull_images) for name, url in nodes.items()}
        self.public_host = public_host
        self._nodes: tuple[float, dict[str, SwarmNode]] = (0.0, {})

    @property
    def mapi(self) -> Any:
        # The manager's client, as Any: types-docker leaves the SDK's swarm calls
        # (services, tasks, create_service, …) unannotated or wrongly typed.
        return self.manager.api

    # --- nodes -------------------------------------------------------------

    def swarm_nodes(self, *, fresh: bool = False) -> dict[str, SwarmNode]:
        """The nodes of BERTH_SWARM_NODES that the manager knows, by name (one call, cached for seconds)."""
        read_at, known = self._nodes
        if fresh or time.monotonic() - read_at > NODE_CACHE_S:
            with self.manager._engine("listing the swarm's nodes"):
                found = self.mapi.nodes()
            parsed = (swarm_node(n, public_host=self.public_host) for n in found)
            known = {node.name: node for node in parsed if node.name in self.engines}
            self._nodes = (time.monotonic(), known)
        return known

    def nodes(self, *, images: Iterable[str] = ()) -> tuple[NodeState, ...]:
        wanted = set(images)
        found = []
        for node in self.swarm_nodes(fresh=True).values():
            missing: set[str] = set()
            if wanted and node.ready:
                try:
                    missing = wanted - self.engines[node.name].images_present(wanted)
                except RuntimeUnavailable:
                    missing = wanted  # its engine does not answer: nothing can be checked, nothing placed
            found.append(
                NodeState(
                    name=node.name, address=node.address, ready=node.ready, active=node.active, labelled=node.labelled,
                    drained=node.drained, memory_bytes=node.memory_bytes, missing_images=frozenset(missing),
                )
            )  # fmt: skip
        return tuple(sorted(found, key=lambda n: n.name))

    def _node(self, name: str) -> SwarmNode:
        if not name:
            raise RuntimeFailure("the stack has no node: on a Swarm every project is placed on one")
        node = self.swarm_nodes().get(name) or self.swarm_nodes(fresh=True).get(name)
        if node is None:
            raise RuntimeFailure(f"node {name} is not in the swarm (or not in BERTH_SWARM_NODES)")
        return node

    def _node_by_id(self, node_id: str) -> SwarmNode | None:
        nodes = self.swarm_nodes()
        if not any(n.id == node_id for n in nodes.values()):
            nodes = self.swarm_nodes(fresh=True)
        return next((n for n in nodes.values() if n.id == node_id), None)

    def _reachable(self) -> Iterator[tuple[str, Engine]]:
        """The engines of the nodes the manager sees ready (no call each: a down node would cost a timeout)."""
        nodes = self.swarm_nodes()
        for name, engine in self.engines.items():
            if name in nodes and nodes[name].ready:
                yield name, engine

    def _down_ids(self) -> set[str]:
        return {n.id for n in self.swarm_nodes().values() if not n.ready}

    def ping(self) -> None:
        self.manager.ping()

    # --- stacks ------------------------------------------------------------

    def stack_up(self, spec: StackSpec, *, start: bool = True, create_volume: bool = True) -> None:
        node = self._node(spec.node)
        engine = self.engines[node.name]
        if not node.ready:
            raise RuntimeFailure(f"node {node.name} is down: project {spec.project_id}'s data is there, and it waits for the node")
        # Everything that can refuse first (images, the data volume, ports), so a refusal leaves nothing.
        for image in sorted({spec.db.image, spec.api.image}):
            try:
                engine._image_ensure(image)
            except ImageUnavailable as exc:
                raise ImageUnavailable(f"node {node.name} lacks image {image}: {exc}") from None
        with engine._engine(f"checking volume {spec.volume} on node {node.name}"):
            try:
                engine.api.inspect_volume(spec.volume)
                volume_there = True
            except docker.errors.NotFound:
                volume_there = False
        if not volume_there and not create_volume:
            raise VolumeMissing(f"the data volume {spec.volume} is not on node {node.name}")
        self._ports_check(spec, node, engine)
        if not volume_there:
            with engine._engine(f"creating volume {spec.volume} on node {node.name}"):
                engine.api.create_volume(spec.volume, labels=spec.labels)
        self._network_ensure(spec)
        for c in spec.containers:
            self._service_ensure(spec, c, node, replicas=1 if start else 0)
        if start:
            self._wait_tasks(spec, node)

    def _ports_check(self, spec: StackSpec, node: SwarmNode, engine: Engine) -> None:
        """A host port of the stack already published on the node by something else is PortUnavailable now, not a task failing for ever."""
        mine = {spec.db.name, spec.api.name}
        with engine._engine(f"listing ports on node {node.name}"):
            taken = {
                p["PublicPort"]
                for c in engine.api.containers()
                if (c.get("Labels") or {}).get(SWARM_SERVICE_LABEL) not in mine
                for p in c.get("Ports") or []
                if p.get("PublicPort")
            }
        for c in spec.containers:
            if c.host_port in taken:
                raise PortUnavailable(f"port {c.host_port} for {c.name} is already in use on node {node.name}")

    def _network_ensure(self, spec: StackSpec) -> None:
        with self.manager._engine(f"creating network {spec.network}"):
            if any(n["Name"] == spec.network for n in self.mapi.networks(names=[spec.network])):
                return
            ipam = docker.types.IPAMConfig(pool_configs=[docker.types.IPAMPool(subnet=spec.subnet)]) if spec.subnet else None
            if spec.subnet and spec.subnet in self.subnets_in_use():
                raise SubnetUnavailable(f"creating network {spec.network}: subnet {spec.subnet} is taken in the swarm")
            try:
                # Attachable: backups' throwaways need none, but an operator's debugging container may join.
                self.mapi.create_network(spec.network, driver="overlay", attachable=True, labels=spec.labels, ipam=ipam)
            except docker.errors.APIError as exc:
                if "overlap" in _reason(exc).lower():
                    raise SubnetUnavailable(f"creating network {spec.network}: subnet {spec.subnet} is taken ({_reason(exc)})") from None
                raise

    def _secrets_ensure(self, spec: StackSpec, c: ContainerSpec) -> list[docker.types.SecretReference]:
        """The container's files as Swarm secrets (immutable: named by their content), mounted where the file goes."""
        refs = []
        with self.manager._engine(f"storing the files of {c.name}"):
            existing = {s["Spec"]["Name"]: s["ID"] for s in self.mapi.secrets(filters={"label": _label_filter(spec.project_id)})}
            for f in c.files:
                name = f"{c.name}_{hashlib.sha256(f.path.encode() + b'\0' + f.content).hexdigest()[:16]}"
                if name not in existing:
                    existing[name] = self.mapi.create_secret(name, f.content, labels={**c.labels})["ID"]
                refs.append(docker.types.SecretReference(existing[name], name, filename=f.path, uid=str(f.uid), gid=str(f.gid), mode=f.mode))
        return refs

    def _service_ensure(self, spec: StackSpec, c: ContainerSpec, node: SwarmNode, *, replicas: int) -> None:
        secrets = self._secrets_ensure(spec, c) if c.files else []
        digest = config_digest(spec, c, node.id, [s["SecretName"] for s in secrets])
        found = self._service(c.name)
        if found is not None:
            labels = found["Spec"].get("Labels") or {}
            if labels.get(CONFIG_LABEL) == digest:
                current = ((found["Spec"].get("Mode") or {}).get("Replicated") or {}).get("Replicas", 0)
                if replicas and current != replicas:
                    self._scale(c.name, replicas)
                return
            # Made from an older spec: replace it once its task's container is
            # gone (two servers on one data directory must never overlap).
            self._services_remove([c.name], node_names=[node.name])
        template, endpoint = service_template(spec, c, node.id, secrets)
        with self.manager._engine(f"creating service {c.name}"):
            self.mapi.create_service(
                template,
                name=c.name,
                labels={**c.labels, CONFIG_LABEL: digest},
                mode=docker.types.ServiceMode("replicated", replicas=replicas),
                networks=[docker.types.NetworkAttachmentConfig(spec.network, aliases=[c.name])],
                endpoint_spec=endpoint,
            )

    def _service(self, name: str) -> dict[str, Any] | None:
        with self.manager._engine(f"reading service {name}"):
            # services(filters={"name"}) matches by prefix; confirm the exact name.
            return next((s for s in self.mapi.services(filters={"name": name}) if s["Spec"]["Name"] == name), None)

    def _scale(self, name: str, replicas: int) -> None:
        with self.manager._engine(f"scaling {name} to {replicas}"):
            for _ in range(5):
                found = self._service(name)
                if found is None:
                    return
                try:
                    self.mapi.update_service(
                        found["ID"], found["Version"]["Index"], mode=docker.types.ServiceMode("replicated", replicas=replicas), fetch_current_spec=True
                    )
                    return
                except docker.errors.APIError as exc:
                    if "out of sequence" not in _reason(exc):  # someone updated it meanwhile: read it again
                        raise

    def _tasks(self, names: list[str], *, desired_running: bool = False) -> list[dict[str, Any]]:
        if not names:
            return []
        filters: dict[str, Any] = {"service": names}
        if desired_running:
            filters["desired-state"] = "running"
        with self.manager._engine("listing tasks"):
            return [t for t in self.mapi.tasks(filters=filters) if t.get("ServiceID")]

    def _wait_tasks(self, spec: StackSpec, node: SwarmNode, *, timeout_s: float = 60) -> None:
        """Until a task of each service has its container started (as `docker start` returns): a failure says why."""
        deadline = time.monotonic() + timeout_s
        names = [c.name for c in spec.containers]
        while True:
            tasks = self._tasks(names)
            by_service = {s["ID"]: s["Spec"]["Name"] for s in self._services_of(spec.project_id)}
            started = {by_service.get(t["ServiceID"]) for t in tasks if t["DesiredState"] == "running" and t["Status"]["State"] in LIVE_STATES}
            if started >= set(names):
                return
            for t in tasks:
                err = (t.get("Status") or {}).get("Err") or ""
                if t["Status"]["State"] in FAILED_STATES and err:
                    name = by_service.get(t["ServiceID"], "?")
                    if any(marker in err.lower() for marker in PORT_ERRORS):
                        self._scale(name, 0)  # not a task failing on a taken port for ever
                        raise PortUnavailable(f"starting {name} on node {node.name}: a host port is already in use ({err})")
                    if "no such image" in err.lower():
                        self._scale(name, 0)
                        raise ImageUnavailable(f"starting {name}: node {node.name} lacks its image ({err})")
            if time.monotonic() >= deadline:
                pending = [(by_service.get(t["ServiceID"]), t["Status"]["State"], t["Status"].get("Err") or t["Status"].get("Message")) for t in tasks if t["DesiredState"] == "running"]
                raise RuntimeFailure(f"the tasks of project {spec.project_id} did not start on node {node.name} in {timeout_s:.0f} s: {pending}")
            time.sleep(0.2)

    def _services_of(self, project_id: str) -> list[dict[str, Any]]:
        with self.manager._engine(f"listing project {project_id}'s services"):
            return list(self.mapi.services(filters={"label": _label_filter(project_id)}))

    def stack_wait_ready(self, spec: StackSpec, *, timeout_s: float) -> tuple[str, ...]:
        # The probes reach the published ports at the node's address.
        host = self._node(spec.node).address
        return wait_ready(self, dataclasses.replace(spec, db_probe=dataclasses.replace(spec.db_probe, host=host)), timeout_s=timeout_s)

    def stack_stop(self, spec: StackSpec) -> None:
        found = [c.name for c in reversed(spec.containers) if self._service(c.name) is not None]
        for name in found:
            self._scale(name, 0)
        # Stopped means the containers have ended (postgres shut down cleanly),
        # unless the node is down: then nothing there can be waited for.
        node = self.swarm_nodes().get(spec.node)
        if node is None or node.ready:
            self._wait_ended(found, timeout_s=max(c.stop_timeout_s for c in spec.containers) + 30)

    def _wait_ended(self, names: list[str], *, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while any(t["Status"]["State"] not in ENDED_STATES and t["DesiredState"] != "running" for t in self._tasks(names)):
            if time.monotonic() >= deadline:
                raise RuntimeFailure(f"{', '.join(names)} did not stop in {timeout_s:.0f} s")
            time.sleep(0.2)

    def _services_remove(self, names: list[str], *, node_names: list[str] | None = None) -> None:
        """Remove the services and wait until their task containers are gone from the nodes that answer."""
        for name in names:
            with self.manager._engine(f"removing service {name}"):
                try:
                    self.mapi.remove_service(name)
                except docker.errors.NotFound:
                    pass
        wanted = set(names)
        for node_name, engine in self._reachable():
            if node_names is not None and node_name not in node_names:
                continue
            deadline = time.monotonic() + 60
            while True:
                with engine._engine(f"waiting for the containers of {', '.join(names)} on node {node_name}"):
                    left = [c for c in engine.api.containers(all=True, filters={"label": SWARM_SERVICE_LABEL}) if c["Labels"].get(SWARM_SERVICE_LABEL) in wanted]
                if not left:
                    break
                if time.monotonic() >= deadline:
                    raise RuntimeFailure(f"the containers of {', '.join(names)} are still on node {node_name} after 60 s")
                time.sleep(0.25)

    def stack_remove_containers(self, project_id: str) -> None:
        names = object_names(project_id)
        services = {s["Spec"]["Name"] for s in self._services_of(project_id)}
        # The api first: the database's shutdown then has no client to end.
        self._services_remove([n for n in (names["api"], names["db"]) if n in services])
        for _, engine in self._reachable():
            with engine._engine(f"listing project {project_id}'s throwaways"):
                throwaways = [c for c in engine.api.containers(all=True, filters={"label": _label_filter(project_id)}) if SWARM_SERVICE_LABEL not in c["Labels"]]
            for c in throwaways:
                engine.scratch_remove(c["Names"][0].lstrip("/"))
        with self.manager._engine(f"removing project {project_id}'s secrets"):
            for secret in self.mapi.secrets(filters={"label": _label_filter(project_id)}):
                try:
                    self.mapi.remove_secret(secret["ID"])
                except docker.errors.NotFound:
                    pass

    def stack_purge(self, project_id: str, *, given_up: Collection[str] = ()) -> None:
        self.stack_remove_containers(project_id)
        label = _label_filter(project_id)
        with self.manager._engine(f"removing project {project_id}'s network"):
            for network in self.mapi.networks(filters={"label": label}):
                # A task's endpoint leaves the network a moment after its container.
                for attempt in range(40):
                    try:
                        self.mapi.remove_network(network["Id"])
                        break
                    except docker.errors.NotFound:
                        break
                    except docker.errors.APIError as exc:
                        if "active endpoints" not in _reason(exc) or attempt == 39:
                            raise
                        time.sleep(0.25)
        down = []
        for name, engine in self.engines.items():
            if name in given_up and not ((node := self.swarm_nodes(fresh=True).get(name)) and node.ready):
                logger.warning("purge of %s: node %s was forgotten; a volume of the project there is left to it", project_id, name)
                continue
            try:
                with engine._engine(f"removing project {project_id}'s volume on node {name}"):
                    for volume in engine.api.volumes(filters={"label": label}).get("Volumes") or []:
                        try:
                            engine.api.remove_volume(volume["Name"])
                        except docker.errors.NotFound:
                            pass
            except RuntimeUnavailable:
                down.append(name)
        if down:
            raise RuntimeUnavailable(f"node {', '.join(down)} does not answer: project {project_id}'s volume there waits for it")

    def stack_state(self, project_id: str, *, volume: str = "") -> StackState:
        services = self._services_of(project_id)
        tasks = self._tasks([s["Spec"]["Name"] for s in services], desired_running=True)
        containers = [service_state(s, tasks, self._down_ids()) for s in services]
        with self.manager._engine(f"reading project {project_id}'s network"):
            networks = self.mapi.networks(filters={"label": _label_filter(project_id)})
        names = object_names(project_id)
        found_volume = False
        for _, engine in self._reachable():
            with engine._engine(f"reading project {project_id}"):
                containers += [_container_state(c) for c in engine.api.containers(all=True, filters={"label": _label_filter(project_id)}) if SWARM_SERVICE_LABEL not in c["Labels"]]
                wanted = volume or names["volume"]
                found_volume |= any(v["Name"] == wanted for v in engine.api.volumes(filters={"label": _label_filter(project_id)}).get("Volumes") or [])
        return StackState(project_id=project_id, containers=tuple(containers), network=any(n["Name"] == names["network"] for n in networks), volume=found_volume)

    def volume_create(self, name: str, labels: dict[str, str]) -> None:
        """On the node of the project the labels name (its db service is pinned there): a volume is local to its node."""
        project_id = labels.get(PROJECT_LABEL, "")
        node = next((pinned_to(s) for s in self._services_of(project_id) if pinned_to(s)), "") if project_id else ""
        found = self._node_by_id(node) if node else None
        if found is None:
            raise RuntimeFailure(f"volume {name}: on a Swarm a volume is made on its project's node, and project {project_id or '?'} has no stack placed")
        engine = self.engines[found.name]
        with engine._engine(f"creating volume {name} on node {found.name}"):
            try:
                engine.api.inspect_volume(name)
            except docker.errors.NotFound:
                engine.api.create_volume(name, labels=labels)

    def volume_remove(self, name: str) -> None:
        """On every node that answers, if Berth made it there."""
        for node_name, engine in self._reachable():
            with engine._engine(f"removing volume {name} on node {node_name}"):
                try:
                    if (engine.api.inspect_volume(name).get("Labels") or {}).get(MANAGED_LABEL) == "true":
                        engine.api.remove_volume(name)
                except docker.errors.NotFound:
                    pass

    def stack_sample(self, target: SampleTarget) -> StackSample:
        """As on one engine, each container's stats read on the node its running task is on, and the db and
        api probed at the node's address (as stack_wait_ready does).

        Seven engine calls, not two: the db service (its node) on the manager,
        then for each container its service and tasks there and its stats on
        the node.
        """
        try:
            service = self._service(target.db_container)
            node = self._node_by_id(pinned_to(service)) if service is not None else None
        except RuntimeFailure as exc:
            return StackSample(engine_calls=1, error=str(exc))
        if node is not None:
            target = dataclasses.replace(target, db_probe=dataclasses.replace(target.db_probe, host=node.address))

        def stats(name: str) -> ContainerStats | None:
            try:
                engine, container_id = self._locate(name)
            except RuntimeUnavailable:
                raise
            except RuntimeFailure:
                return None  # no running task: stopped, as a stopped container's empty stats
            return engine.container_stats(container_id)

        return stack_sample(target, stats, engine_calls=7)

    def containers(self) -> tuple[ContainerState, ...]:
        """Every Berth service (with its current task) and throwaway: two manager calls and one per node."""
        with self.manager._engine("listing services"):
            services = self.mapi.services(filters={"label": f"{MANAGED_LABEL}=true"})
            tasks = [t for t in self.mapi.tasks(filters={"desired-state": "running"}) if t.get("ServiceID")]
        found = [service_state(s, tasks, self._down_ids()) for s in services]
        for _, engine in self._reachable():
            with engine._engine("listing containers"):
                found += [_container_state(c) for c in engine.api.containers(all=True, filters={"label": f"{MANAGED_LABEL}=true"}) if SWARM_SERVICE_LABEL not in c["Labels"]]
        return tuple(found)

    def subnets_in_use(self) -> list[str]:
        subnets: set[str] = set()
        for engine in [self.manager, *(e for _, e in self._reachable())]:
            with engine._engine("listing networks"):
                subnets |= {c["Subnet"] for n in engine.api.networks() for c in (n.get("IPAM") or {}).get("Config") or [] if c.get("Subnet")}
        return sorted(subnets)

    def inventory(self) -> EngineInventory:
        label = f"{MANAGED_LABEL}=true"
        containers = self.containers()
        with self.manager._engine("listing Berth's networks"):
            found_networks = self.mapi.networks(filters={"label": label})
        found_volumes: list[dict[str, Any]] = []
        for _, engine in self._reachable():
            with engine._engine("listing Berth's volumes"):
                found_volumes += engine.api.volumes(filters={"label": label}).get("Volumes") or []
        networks = {n["Name"]: (n.get("Labels") or {}).get(PROJECT_LABEL, "") for n in found_networks}
        volumes = {v["Name"]: (v.get("Labels") or {}).get(PROJECT_LABEL, "") for v in found_volumes}
        installs = {o["Name"]: (o.get("Labels") or {}).get(INSTALL_LABEL, "") for o in [*found_networks, *found_volumes]}
        down = tuple(sorted(name for name in self.engines if name not in dict(self._reachable())))
        return EngineInventory(containers=containers, networks=networks, volumes=volumes, installs=installs, nodes_down=down)

    def container_logs(self, project_id: str, service: str, *, tail: int = 200) -> str:
        name = container_name(project_id, service)
        if service in {"db", "api"}:
            if self._service(name) is None:
                return ""
            with self.manager._engine(f"reading logs of {name}"):
                try:
                    logs = self.mapi.service_logs(name, stdout=True, stderr=True, tail=tail)
                    return b"".join(logs).decode("utf-8", errors="replace")
                except docker.errors.NotFound:
                    return ""
        for _, engine in self._reachable():
            with engine._engine(f"reading logs of {name}"):
                try:
                    return engine.api.logs(name, tail=tail).decode("utf-8", errors="replace")
                except docker.errors.NotFound:
                    continue
        return ""

    def events(self, *, timeout_s: float | None = None, since: float | None = None) -> Iterator[EngineEvent]:
        """Service events (and node events, as every project's) from the manager: a Swarm has no cluster-wide container events."""
        until = time.time() + timeout_s if timeout_s else None
        with self.manager._engine("following events"):
            stream = self.mapi.events(
                decode=True, since=since, until=until, filters={"type": ["service", "node"]}
            )
            for event in stream:
                if (translated := engine_event(event)) is not None:
                    yield translated

    # --- commands, files and throwaway containers (backups) ------------------

    def _locate(self, container: str) -> tuple[Engine, str]:
        """The engine and container id behind a service's running task, or a throwaway's name on its node."""
        service = self._service(container)
        if service is not None:
            for t in self._tasks([container], desired_running=True):
                status = t.get("Status") or {}
                container_id = (status.get("ContainerStatus") or {}).get("ContainerID")
                node = self._node_by_id(t.get("NodeID", ""))
                if status.get("State") in LIVE_STATES and container_id and node is not None:
                    return self.engines[node.name], container_id
            raise RuntimeFailure(f"container {container} is not running")
        for _, engine in self._reachable():
            with engine._engine(f"finding {container}"):
                try:
                    engine.api.inspect_container(container)
                    return engine, container
                except docker.errors.NotFound:
                    continue
        raise StackNotFound(f"container {container} does not exist")

    def exec_stream(
        self, container: str, argv: list[str], *, environment: dict[str, str] | None = None, idle_timeout_s: float = 600
    ) -> ExecStream:
        engine, target = self._locate(container)
        return engine.exec_stream(target, argv, environment=environment, idle_timeout_s=idle_timeout_s)

    def file_put(self, container: str, path: str, chunks: Iterable[bytes], *, size: int) -> None:
        engine, target = self._locate(container)
        engine.file_put(target, path, chunks, size=size)

    def scratch_up(self, spec: ScratchSpec) -> None:
        node = self._node(spec.node)
        try:
            self.engines[node.name].scratch_up(spec)
        except ImageUnavailable as exc:
            raise ImageUnavailable(f"node {node.name} lacks image {spec.image}: {exc}") from None

    def scratch_remove(self, name: str) -> None:
        for _, engine in self._reachable():
            engine.scratch_remove(name)

    # --- images: every node needs them (no registry is assumed) --------------

    def images_labels(self, images: Iterable[str]) -> dict[str, dict[str, str]]:
        """The images every node of BERTH_SWARM_NODES has; {} for one built differently on two nodes (one node's stale)."""
        wanted = set(images)
        found = [engine.images_labels(wanted) for _, engine in self._reachable()]
        return {i: v if all(f[i] == v for f in found) else {} for i, v in found[0].items() if all(i in f for f in found)} if found else {}

    def image_pull(self, image: str, *, progress: Callable[[str], None]) -> None:
        for name, engine in self._reachable():
            try:
                engine.image_pull(image, progress=progress_prefixed(progress, name))
            except ImageUnavailable as exc:
                raise ImageUnavailable(f"node {name}: {exc}") from None

    def image_build(self, context: Path, tag: str, *, buildargs: dict[str, str], progress: Callable[[str], None]) -> None:
        for name, engine in self._reachable():
            engine.image_build(context, tag, buildargs=buildargs, progress=progress_prefixed(progress, name))
