"""Placement on a Swarm: which node a new project goes to, and what each node carries.

The rule (DESIGN.md, "Runtimes"): among the nodes that are ready, active,
labelled for Berth (`berth.node`), not drained (`berth.drain`) and hold the
project's images, the one with the most free memory: its `berth.memory` label
(else the memory it reports) minus the memory limits of the projects Berth
placed there (every project not deleted counts: a stopped one may start). Ties
go to the node named first. A single engine has no nodes: nothing to place.
"""

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

from django.conf import settings
from django.contrib.auth.models import User
from django.db import transaction
from django.utils import timezone

from projects.models import ForgottenNode, Operation, Project
from projects.runtime import Runtime, RuntimeFailure, get_runtime
from projects.runtime.base import NodeState, memory_bytes
from projects.stack.images import api_image, postgres_image

from projects.services.errors import Forbidden, InvalidInput, NodeDown, NodeFull, NodeUp, NoNodeAvailable, NotFound
from projects.services.operations.queue import operation_enqueue


@dataclass(frozen=True)
class NodeLoad:
    node: NodeState
    projects: int  # Berth's projects placed there, not deleted
    placed_bytes: int  # their memory limits

    @property
    def free_bytes(self) -> int:
        return self.node.memory_bytes - self.placed_bytes

    @property
    def state(self) -> str:
        if not self.node.ready:
            return "down"
        if self.node.drained or not self.node.active:
            return "drained"
        return "ready"


def project_memory_bytes(db_memory: str = "", api_memory: str = "") -> int:
    """The memory limits of one project's containers (db and api): its own (changed after creation), else the settings'."""
    return memory_bytes(db_memory or settings.BERTH_DB_MEMORY) + memory_bytes(api_memory or settings.BERTH_API_MEMORY)


def node_loads(*, runtime: Runtime, images: Iterable[str] = ()) -> list[NodeLoad]:
    """Every node with what Berth placed there; [] on a single engine."""
    nodes = runtime.nodes(images=images)
    if not nodes:
        return []
    counts: Counter[str] = Counter()
    placed: Counter[str] = Counter()
    for node, db_memory, api_memory in Project.objects.filter(deleted_at__isnull=True).exclude(node="").values_list("node", "db_memory", "api_memory"):
        counts[node] += 1
        placed[node] += project_memory_bytes(db_memory, api_memory)
    return [NodeLoad(node=n, projects=counts[n.name], placed_bytes=placed[n.name]) for n in nodes]


@dataclass(frozen=True)
class NodesOverview:
    loads: list[NodeLoad]
    error: str = ""  # the swarm could not be read
    forgotten: dict[str, datetime] = field(default_factory=dict)  # node name -> when an operator forgot it


def nodes_overview() -> NodesOverview:
    """Every node with its projects, free memory and state (the staff view); empty on a single engine."""
    forgotten = dict(ForgottenNode.objects.values_list("name", "forgotten_at"))
    try:
        return NodesOverview(loads=node_loads(runtime=get_runtime()), forgotten=forgotten)
    except RuntimeFailure as exc:
        return NodesOverview(loads=[], error=str(exc), forgotten=forgotten)


def node_place(*, runtime: Runtime, images: Iterable[str]) -> NodeState | None:
    """The node a new project goes to; None on a single engine; NoNodeAvailable saying why each node cannot."""
    try:
        loads = node_loads(runtime=runtime, images=images)
    except RuntimeFailure as exc:
        raise NoNodeAvailable(f"the swarm cannot be read to place the project: {exc}") from None
    if not loads:
        return None
    need = project_memory_bytes()
    fits = [load for load in loads if load.node.placeable and load.free_bytes >= need]
    if fits:
        return max(fits, key=lambda load: (load.free_bytes, [-ord(c) for c in load.node.name])).node
    raise NoNodeAvailable("no node can take a new project: " + "; ".join(f"{load.node.name}: {_why_not(load, need)}" for load in loads))


def node_assert_room(*, project: Project, db_memory: str, api_memory: str) -> None:
    """NodeFull (409, naming the node) when a memory increase does not fit on the project's node; nothing on a single engine.

    Only the growth is asked for: the project's current limits are already in
    what its node carries.
    """
    if not project.node:
        return
    growth = project_memory_bytes(db_memory, api_memory) - project_memory_bytes(project.db_memory, project.api_memory)
    if growth <= 0:
        return
    try:
        loads = {load.node.name: load for load in node_loads(runtime=get_runtime())}
    except RuntimeFailure as exc:
        raise NodeFull(f"the swarm cannot be read to check node {project.node}'s room: {exc}", node=project.node) from None
    load = loads.get(project.node)
    if load is None or load.free_bytes < growth:
        free = "unknown" if load is None else f"{max(load.free_bytes, 0) // 2**20} MiB"
        raise NodeFull(
            f"node {project.node} has {free} free, and the change needs {growth // 2**20} MiB more; "
            f"ask for less, or move the project to a node with room first (POST /v1/projects/{project.public_id}/move)",
            node=project.node,
        )


def node_assert_up(*, project: Project, doing: str, unless_forgotten: bool = False) -> None:
    """NodeDown (409, naming the node) when the project's data is on a node that is down; nothing on a single engine.

    `unless_forgotten`: a node an operator forgot (node_forget) does not
    refuse; seen ready, the forgetting lapses (its data is there after all).
    """
    if not project.node:
        return
    try:
        ready = _node_ready(project.node)
    except RuntimeFailure as exc:
        raise NodeDown(f"cannot {doing} project {project.public_id}: the swarm cannot be read ({exc})", node=project.node) from None
    if ready:
        forgotten_lapse([project.node])
        return
    if unless_forgotten and node_forgotten(project.node):
        return
    raise NodeDown(
        f"cannot {doing} project {project.public_id}: its data volume is on node {project.node}, which is down; "
        f"it waits for the node to come back, or for an operator to forget the node (POST /v1/nodes/{project.node}/forget)",
        node=project.node,
    )


def project_node_down(project: Project) -> bool:
    """Whether the project's data is on a Swarm node that is down (or gone from the swarm); False on a single engine.

    A swarm that cannot be read says nothing either way: False (the stack's own read reports that error).
    """
    if not project.node:
        return False
    try:
        return not _node_ready(project.node)
    except RuntimeFailure:
        return False


def _node_ready(name: str) -> bool:
    """Whether the swarm has the node and sees it ready (one node list); RuntimeFailure when the swarm cannot be read."""
    return any(n.name == name and n.ready for n in get_runtime().nodes())


def node_forgotten(name: str) -> bool:
    return ForgottenNode.objects.filter(name=name).exists()


def forgotten_lapse(ready: Iterable[str]) -> int:
    """Forget no more the nodes seen ready: a later outage needs a new decision. The number lapsed."""
    names = [name for name in ready if name]
    return ForgottenNode.objects.filter(name__in=names).delete()[0] if names else 0


@dataclass(frozen=True)
class Forgetting:
    node: str
    forgotten_at: datetime
    projects: list[str]  # the public ids of its projects not purged: purge no longer waits for the node


def node_forget(*, name: str, confirm: str | None, requested_by: User | None) -> Forgetting:
    """Give up on a down node (staff; `confirm` repeats its name): its projects can be purged without their volume there.

    Nothing is removed now. A purge then removes what is left elsewhere and
    leaves the volume, and the final backup that cannot be taken, to the node.
    A node that is ready cannot be forgotten (NodeUp): its data is there.
    """
    if requested_by is None or not requested_by.is_staff:
        raise Forbidden("forgetting a node is for staff")
    runtime = get_runtime()
    try:
        nodes = {n.name: n for n in runtime.nodes()}
    except RuntimeFailure as exc:
        raise NodeDown(f"the swarm cannot be read to forget node {name}: {exc}", node=name) from None
    if not nodes:
        raise NotFound("this Berth runs on a single engine (BERTH_RUNTIME=docker): there are no nodes to forget")
    placed = Project.objects.exclude(status=Project.Status.PURGED).filter(node=name)
    if name not in nodes and not placed.exists():
        raise NotFound(f"no node {name!r}; the nodes are {', '.join(sorted(nodes))}")
    if confirm != name:
        raise InvalidInput("confirm", f"must be the node's name ({name}) to give up the data on it")
    if name in nodes and nodes[name].ready:
        raise NodeUp(f"node {name} is ready: its projects' data is there, so there is nothing to forget", node=name)
    now = timezone.now()
    with transaction.atomic():
        ForgottenNode.objects.update_or_create(name=name, defaults={"forgotten_at": now, "forgotten_by": requested_by})
        projects = list(placed.order_by("public_id").values_list("public_id", flat=True))
    return Forgetting(node=name, forgotten_at=now, projects=projects)


def project_move(*, project: Project, node: str, requested_by: User | None = None) -> Operation:
    """Queue moving the project's data to `node` (staff only): a verified backup restored there; the old volume stays until purge."""
    if requested_by is None or not requested_by.is_staff:
        raise Forbidden("moving a project to another node is for staff")
    if not project.node:
        raise InvalidInput("node", "this Berth runs on a single engine (BERTH_RUNTIME=docker): there is no other node")
    if node == project.node:
        raise InvalidInput("node", f"project {project.public_id} is on node {node} already")
    try:
        loads = {load.node.name: load for load in node_loads(runtime=get_runtime(), images=_images(project))}
    except RuntimeFailure as exc:
        raise NoNodeAvailable(f"the swarm cannot be read to move the project: {exc}") from None
    target = loads.get(node)
    if target is None:
        raise InvalidInput("node", f"no node {node!r}; the nodes are {', '.join(sorted(loads))}")
    need = project_memory_bytes(project.db_memory, project.api_memory)
    if not target.node.placeable or target.free_bytes < need:
        raise InvalidInput("node", f"node {node} cannot take it: {_why_not(target, need)}")
    node_assert_up(project=project, doing="move")
    return operation_enqueue(
        project=project, kind=Operation.Kind.MOVE, action="move", transitional=Project.Status.RESTORING, requested_by=requested_by,
        target_node=node,
    )  # fmt: skip


def _images(project: Project) -> set[str]:
    return {postgres_image(project.postgres_version), api_image(project.api_flavour)}


def _why_not(load: NodeLoad, need: int) -> str:
    n = load.node
    if not n.ready:
        return "down"
    if not n.labelled:
        return "not labelled berth.node"
    if n.drained or not n.active:
        return "drained"
    if n.missing_images:
        return "lacks " + ", ".join(sorted(n.missing_images))
    return f"{load.free_bytes >> 20} MiB free of the {need >> 20} MiB a project needs"
