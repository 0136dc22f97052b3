"""What SwarmRuntime builds and reads that needs no engine: its labels, its nodes' settings, a service's spec and state.

Pure functions over our dataclasses and the engine's answers (dicts), so the
runtime (swarm.py) keeps to the calls it makes.
"""

import dataclasses
import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import docker.types

from .base import (
    INSTALL_LABEL,
    NODE_EVENT,
    PROJECT_LABEL,
    SERVICE_LABEL,
    ContainerSpec,
    ContainerState,
    EngineEvent,
    StackSpec,
    memory_bytes,
    object_prefix,
    own_volume_labels,
)
from .docker_common import NANOSECONDS

# Node labels an operator sets (`docker node update --label-add …`).
NODE_LABEL = "berth.node"  # the node's name in BERTH_SWARM_NODES (else its hostname is)
ADDRESS_LABEL = "berth.address"  # where its published ports are reached (else BERTH_PUBLIC_HOST)
MEMORY_LABEL = "berth.memory"  # the memory Berth may place there (else what the node reports)
DRAIN_LABEL = "berth.drain"  # true: an operator drained it for Berth (no new projects; those there stay)
CONFIG_LABEL = "berth.config"  # as on the single engine: a changed spec replaces the service
SWARM_SERVICE_LABEL = "com.docker.swarm.service.name"  # on a task's container
NODE_CACHE_S = 5.0
# Task states in which its container exists and runs (starting: healthcheck not passed yet).
LIVE_STATES = {"starting", "running"}
# States a task never leaves: its container has stopped (or never started).
ENDED_STATES = {"complete", "shutdown", "failed", "rejected", "orphaned", "remove"}
FAILED_STATES = {"failed", "rejected"}


@dataclass(frozen=True)
class SwarmNode:
    """A node as the manager sees it, named as in BERTH_SWARM_NODES."""

    name: str
    id: str
    address: str
    ready: bool
    active: bool
    memory_bytes: int
    labelled: bool  # carries berth.node: meant for Berth
    drained: bool  # berth.drain=true: no new projects


def swarm_node(n: dict[str, Any], *, public_host: str) -> SwarmNode:
    """A node as the manager lists it, with the labels an operator set (its name, address, memory, drain)."""
    labels = (n.get("Spec") or {}).get("Labels") or {}
    reported = ((n.get("Description") or {}).get("Resources") or {}).get("MemoryBytes") or 0
    return SwarmNode(
        name=labels.get(NODE_LABEL) or (n.get("Description") or {}).get("Hostname", ""),
        id=n["ID"],
        address=labels.get(ADDRESS_LABEL) or public_host,
        ready=(n.get("Status") or {}).get("State") == "ready",
        active=(n.get("Spec") or {}).get("Availability") == "active",
        memory_bytes=memory_bytes(labels[MEMORY_LABEL]) if labels.get(MEMORY_LABEL) else int(reported),
        labelled=NODE_LABEL in labels,
        drained=labels.get(DRAIN_LABEL, "").lower() in {"1", "true", "yes"},
    )


def parse_nodes(text: str) -> dict[str, str]:
    """BERTH_SWARM_NODES: `name=tcp://host:port,…` → {name: engine URL}; ValueError naming a bad entry."""
    nodes: dict[str, str] = {}
    for entry in filter(None, (e.strip() for e in text.split(","))):
        name, sep, url = entry.partition("=")
        if not sep or not name.strip() or "://" not in url:
            raise ValueError(f"BERTH_SWARM_NODES: {entry!r} is not name=tcp://host:port")
        nodes[name.strip()] = url.strip()
    return nodes





def service_template(
    spec: StackSpec, c: ContainerSpec, node_id: str, secrets: list[docker.types.SecretReference]
) -> tuple[docker.types.TaskTemplate, docker.types.EndpointSpec]:
    """One stack container as a Swarm task template, pinned to its node, and its endpoint: ports in host mode, no VIP."""
    cf = c.confinement
    healthcheck = None
    if c.healthcheck:
        h = c.healthcheck
        healthcheck = docker.types.Healthcheck(
            test=h.test,
            interval=int(h.interval_s * NANOSECONDS),
            timeout=int(h.timeout_s * NANOSECONDS),
            retries=h.retries,
            start_period=int(h.start_period_s * NANOSECONDS),
        )
    container = docker.types.ContainerSpec(
        c.image,
        args=c.command,  # the image's entrypoint stays; the command is its arguments, as `docker run` does
        env=[f"{k}={v}" for k, v in c.environment.items()],
        labels=c.labels,
        mounts=[
            *([docker.types.Mount(c.volume_mount, spec.volume, type="volume", labels=spec.labels)] if c.volume_mount else []),
            # Where a read-only root may be written (ContainerSpec.read_only): the
            # task's own anonymous volumes go with its container, as on one engine.
            *(docker.types.Mount(path, None, type="tmpfs", tmpfs_size=16 << 20) for path in c.tmpfs),
            *(docker.types.Mount(path, None, type="volume", labels=own_volume_labels(c)) for path in c.own_volumes),
        ],
        read_only=c.read_only,
        stop_grace_period=c.stop_timeout_s * NANOSECONDS,
        healthcheck=healthcheck,
        secrets=secrets or None,
        # No no-new-privileges here: a service spec at API 1.41 has no field
        # for it (DESIGN.md, "Confinement"); nodes can set it engine-wide.
        cap_drop=["ALL"],
        cap_add=list(cf.cap_add) or None,
        workdir=c.working_dir,
    )
    resources: dict[str, Any] = {"Limits": {"MemoryBytes": memory_bytes(c.mem_limit), "Pids": cf.pids_limit}}
    if cf.cpus:
        resources["Limits"]["NanoCPUs"] = int(cf.cpus * NANOSECONDS)
    template = docker.types.TaskTemplate(
        container,
        restart_policy=docker.types.RestartPolicy(condition="any", delay=NANOSECONDS),
        placement=docker.types.Placement(constraints=[f"node.id=={node_id}"]),
        log_driver=docker.types.DriverConfig("json-file", {"max-size": cf.log_max_size, "max-file": str(cf.log_max_file)}),
    )
    template["Resources"] = resources  # with Pids, which docker.types.Resources does not know
    ports: list[dict[str, Any]] = [{"Protocol": "tcp", "PublishedPort": c.host_port, "TargetPort": c.container_port, "PublishMode": "host"}]
    endpoint = docker.types.EndpointSpec(mode="dnsrr", ports=ports)
    return template, endpoint


def progress_prefixed(progress: Callable[[str], None], node: str) -> Callable[[str], None]:
    return lambda line: progress(f"{node}: {line}")


def config_digest(spec: StackSpec, c: ContainerSpec, node_id: str, secrets: list[str]) -> str:
    # The files' content is in the secrets' names (content-addressed).
    made_of = dataclasses.replace(c, files=tuple(dataclasses.replace(f, content=b"") for f in c.files))
    return hashlib.sha256(repr((made_of, spec.network, spec.volume, node_id, secrets)).encode()).hexdigest()[:16]


def pinned_to(service: dict[str, Any]) -> str:
    constraints = ((service["Spec"].get("TaskTemplate") or {}).get("Placement") or {}).get("Constraints") or []
    return next((c.partition("==")[2].strip() for c in constraints if c.replace(" ", "").startswith("node.id==")), "")


def service_state(service: dict[str, Any], tasks: list[dict[str, Any]], down: set[str]) -> ContainerState:
    """A service as a container: its current task's state, or stopped when it has no task to run."""
    spec = service["Spec"]
    labels = spec.get("Labels") or {}
    mine = [t for t in tasks if t.get("ServiceID") == service["ID"] and t.get("DesiredState") == "running"]
    task = max(mine, key=lambda t: t.get("UpdatedAt") or "", default=None)
    state = (task or {}).get("Status", {}).get("State", "")
    has_check = bool((spec.get("TaskTemplate") or {}).get("ContainerSpec", {}).get("Healthcheck"))
    if state == "running":
        status, health = "running", ("healthy" if has_check else None)
    elif state == "starting":
        status, health = "running", "starting"
    elif task is not None:
        status, health = "created", None  # scheduled, preparing, or pending (its node down)
    else:
        status, health = "exited", None  # 0 replicas: stopped
    ports = (service.get("Endpoint") or {}).get("Ports") or (spec.get("EndpointSpec") or {}).get("Ports") or []
    image = (spec.get("TaskTemplate") or {}).get("ContainerSpec", {}).get("Image", "").split("@")[0]
    return ContainerState(
        name=spec["Name"],
        project_id=labels.get(PROJECT_LABEL, ""),
        service=labels.get(SERVICE_LABEL, ""),
        status=status,
        health=health,
        image=image,
        host_ports=tuple(sorted(p["PublishedPort"] for p in ports if p.get("PublishedPort"))) if status == "running" else (),
        install=labels.get(INSTALL_LABEL, ""),
        node_down=pinned_to(service) in down,
    )


def engine_event(event: dict[str, Any]) -> EngineEvent | None:
    """A manager's service or node event as the watcher reads it; None for a service that is not a stack's."""
    attributes = (event.get("Actor") or {}).get("Attributes") or {}
    action = event.get("Action") or ""
    if event.get("Type") == "node":
        return EngineEvent(project_id="", service=NODE_EVENT, action=f"node {attributes.get('name', '')}: {action}")
    prefix, _, service = (attributes.get("name") or "").rpartition("_")
    if not (prefix.startswith(object_prefix("")) and service in {"db", "api"}):
        return None
    # A removed service is a destroyed container to the watcher; create and update re-read the stack.
    return EngineEvent(project_id=prefix.removeprefix(object_prefix("")), service=service, action="destroy" if action == "remove" else action)
