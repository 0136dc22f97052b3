"""The warm pool: stacks made, started, bootstrapped and probed ahead of time, so a create is a claim.

BERTH_WARM_POOL says how many stacks of each PostgreSQL version and API
flavour to keep. A pooled stack is a Project row with no owner and status
`pooled`, with its own id, ports, subnet, passwords, keys and certificate,
made by an ordinary operation (`pool_fill`). Nobody sees it: the selectors
list only owned projects, and quotas count per owner.

- A claim (`pool_claim`, inside the create's transaction) gives one ready
  stack an owner, a name and a creation time, and records a succeeded
  `claim` Operation: no engine call, so it works while the engine is away.
  Rows are taken with SELECT … FOR UPDATE SKIP LOCKED on PostgreSQL; SQLite's
  IMMEDIATE transactions run one writer at a time. Either way the row's
  status moves off `pooled` in the claimer's transaction, so two requests
  never get the same stack.
- Only a stack that sync last saw healthy (or could not see: the engine did
  not answer) is claimed; one seen unhealthy, down or missing, and a fill
  that failed, are drained (`pool_drain`: the stack purged, ports and subnet
  released) and replaced.
- `pool_refill` converges the pool on the setting: drains what is broken or
  surplus, queues fills for what is missing. At most BERTH_WORKERS - 1 pool
  operations are in flight at once, so a user's operation always finds a
  worker, and a fill never takes a port from the last POOL_PORT_RESERVE of a
  range. It runs after every claim and from the sync watcher.
"""

import logging
from collections import Counter
from dataclasses import dataclass, field
from datetime import timedelta

from django.conf import settings
from django.contrib.auth.models import User
from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone

from projects.models import Operation, Project
from projects.runtime import get_runtime
from projects.stack.images import api_image, offer, postgres_image

from projects.services.settings.credentials import project_credentials_generate
from projects.services.errors import Forbidden, NoNodeAvailable, PortsExhausted, ServiceError
from projects.services.operations.queue import operation_enqueue
from projects.services.placement.nodes import node_place
from projects.services.ports import allocation_lock, project_insert_with_ports

logger = logging.getLogger(__name__)

S = Project.Status
H = Project.Health
# Health that may be claimed: seen healthy, or not seen because the engine did
# not answer (a claim needs no engine, so it serves through an outage).
CLAIMABLE_HEALTH = (H.HEALTHY, H.UNKNOWN)
# Health that makes a pooled stack broken: drained and replaced. `unhealthy`
# only once the stack has been pooled longer than BERTH_READY_TIMEOUT: the
# watcher can read a healthcheck still starting just after a fill proved the
# stack answers, and that stack is not broken (it is not claimed meanwhile).
BROKEN_HEALTH = (H.DOWN, H.MISSING)
POOL_KINDS = (Operation.Kind.POOL_FILL, Operation.Kind.POOL_DRAIN)


def pool_port_reserve(low: int, high: int) -> int:
    """Ports of a range the pool leaves to users' creates: a tenth of it, at least 2."""
    return max(2, (high - low + 1) // 10)


@dataclass(frozen=True)
class Pool:
    postgres_version: str
    api: str
    target: int
    ready: int = 0
    filling: int = 0


@dataclass
class Refill:
    filled: list[str] = field(default_factory=list)  # projects whose fill was queued
    drained: list[str] = field(default_factory=list)  # projects whose drain was queued
    held_back: str = ""  # why a fill or drain that was due was not queued (worker budget, ports)
    # Held back only until a pool operation ends: worth asking again soon.
    short: bool = False


def pool_targets() -> dict[tuple[str, str], int]:
    """(postgres_version, api) → stacks to keep, from BERTH_WARM_POOL; a bare count is the offer's defaults."""
    targets: dict[tuple[str, str], int] = {}
    offered = offer()
    for version, api, count in settings.BERTH_WARM_POOL:
        version = version or offered.default_postgres_version
        api = api or offered.default_api
        if version and api:
            targets[version, api] = targets.get((version, api), 0) + count
    return targets


def _pool_projects() -> QuerySet[Project]:
    return Project.objects.filter(owner__isnull=True).exclude(status=S.PURGED)


def pool_status() -> list[Pool]:
    """Each pool's target, ready stacks and stacks being filled; pools no longer wanted but still holding stacks too."""
    targets = pool_targets()
    rows = Project.objects.filter(owner__isnull=True, status__in=(S.POOLED, S.PROVISIONING))
    ready: Counter[tuple[str, str]] = Counter()
    filling: Counter[tuple[str, str]] = Counter()
    for version, api, status, health in rows.values_list("postgres_version", "api_flavour", "status", "health"):
        if status == S.PROVISIONING:
            filling[version, api] += 1
        elif health in CLAIMABLE_HEALTH:
            ready[version, api] += 1
    keys = sorted({*targets, *ready, *filling})
    return [Pool(v, a, targets.get((v, a), 0), ready[v, a], filling[v, a]) for v, a in keys]


def pool_status_for(*, user: User) -> list[Pool]:
    """The pool's state for an operator; Forbidden for anyone who is not staff."""
    if not user.is_staff:
        raise Forbidden("the warm pool is shown to staff only")
    return pool_status()


def pool_claim(*, owner: User, name: str | None, postgres_version: str, api: str) -> Operation | None:
    """Give `owner` a ready pooled stack of this version and flavour, or None when there is none.

    Call it inside the create's transaction (after its quota and name checks):
    the row leaves `pooled` in that transaction, so no other claim can take it.
    """
    candidates = Project.objects.filter(
        owner__isnull=True, status=S.POOLED, health__in=CLAIMABLE_HEALTH, postgres_version=postgres_version, api_flavour=api
    ).order_by("created_at", "id")
    # PostgreSQL: a row another claimer holds is skipped, not waited for.
    # SQLite ignores this; its IMMEDIATE transaction already runs alone.
    project = candidates.select_for_update(skip_locked=True).first()
    if project is None:
        return None
    now = timezone.now()
    project.owner = owner
    project.name = name or f"project-{project.public_id}"
    project.status = S.RUNNING
    # The project begins now for its owner (its keys' `iat` too); it first ran when it was filled.
    project.created_at = now
    project.save(update_fields=["owner", "name", "status", "created_at", "updated_at"])
    return Operation.objects.create(
        project=project, kind=Operation.Kind.CLAIM, state=Operation.State.SUCCEEDED, requested_by=owner,
        prior_status=S.POOLED, started_at=now, finished_at=now,
    )  # fmt: skip


def _budget() -> int:
    """Pool operations that may still be queued: BERTH_WORKERS - 1 at once (at least one)."""
    in_flight = Operation.objects.filter(kind__in=POOL_KINDS, state__in=Operation.IN_FLIGHT).count()
    return max(1, settings.BERTH_WORKERS - 1) - in_flight


def _ports_to_spare(node: str) -> bool:
    """Whether both port ranges keep their reserve on `node` after one more stack. Call under the allocation lock.

    Ports are unique per node ("" is the single engine): each node's ranges keep their own reserve.
    """
    on_node = Project.objects.filter(node=node)
    taken_db = on_node.filter(db_port__isnull=False).count()
    taken_api = on_node.filter(api_port__isnull=False).count()
    for (low, high), taken in ((settings.BERTH_DB_PORTS, taken_db), (settings.BERTH_API_PORTS, taken_api)):
        if (high - low + 1) - taken - 1 < pool_port_reserve(low, high):
            return False
    return True


def pool_fill_one(*, postgres_version: str, api: str) -> Operation | None:
    """Reserve a new pooled stack and queue its fill; None when the ports' reserve would be touched.

    On a Swarm the stack is placed as a create is (NoNodeAvailable when no node can take it): a claim keeps its node.
    """
    project = Project(owner=None, postgres_version=postgres_version, api_flavour=api)
    node = node_place(runtime=get_runtime(), images={postgres_image(postgres_version), api_image(api)})
    if node is not None:
        project.node, project.node_address = node.name, node.address
    project.name = f"pool-{project.public_id}"
    project_credentials_generate(project)
    with transaction.atomic():
        allocation_lock()
        if not _ports_to_spare(project.node):
            return None
        project_insert_with_ports(project)
        return operation_enqueue(project=project, kind=Operation.Kind.POOL_FILL, action="pool_fill", transitional=S.PROVISIONING)


def pool_drain_one(*, project: Project) -> Operation:
    """Queue the removal of one pool stack (its containers, network and volume; ports and subnet released)."""
    return operation_enqueue(project=project, kind=Operation.Kind.POOL_DRAIN, action="pool_drain", transitional=S.PURGING)


def pool_refill() -> Refill:
    """Converge the pool on BERTH_WARM_POOL: drain broken and surplus stacks, queue fills for missing ones."""
    refill = Refill()
    if not settings.BERTH_WARM_POOL and not _pool_projects().exists():
        return refill
    targets = pool_targets()
    offered = offer()
    budget = _budget()
    held: Counter[tuple[str, str]] = Counter()
    broken: Counter[tuple[str, str]] = Counter()
    ready: dict[tuple[str, str], list[Project]] = {}
    to_drain: list[Project] = []
    settled_before = timezone.now() - timedelta(seconds=settings.BERTH_READY_TIMEOUT)
    for project in _pool_projects().order_by("created_at", "id"):
        key = (project.postgres_version, project.api_flavour)
        held[key] += 1
        unhealthy_for_long = project.health == H.UNHEALTHY and project.updated_at < settled_before
        if project.status == S.FAILED or (project.status == S.POOLED and (project.health in BROKEN_HEALTH or unhealthy_for_long)):
            to_drain.append(project)
            broken[key] += 1
        elif project.status == S.POOLED:
            ready.setdefault(key, []).append(project)
    for key, stacks in ready.items():
        surplus = held[key] - broken[key] - targets.get(key, 0)
        if surplus > 0:
            to_drain.extend(stacks[-surplus:])  # the newest go: the oldest have waited longest to be claimed
    workers_busy = f"BERTH_WORKERS - 1 = {max(1, settings.BERTH_WORKERS - 1)} pool operations are in flight"
    for project in to_drain:
        if budget <= 0:
            refill.held_back, refill.short = workers_busy, True
            break
        try:
            pool_drain_one(project=project)
        except ServiceError as exc:  # claimed, or drained, a moment ago
            logger.info("pool: %s not drained: %s", project.public_id, exc)
            continue
        refill.drained.append(project.public_id)
        budget -= 1
    for (version, api), target in sorted(targets.items()):
        if version not in offered.postgres or api not in offered.api:
            logger.info("pool %s/%s: not offered here (see `manage.py images`); nothing is filled", version, api)
            continue
        for _ in range(target - held[version, api]):
            if budget <= 0:
                refill.held_back, refill.short = workers_busy, True
                return refill
            try:
                operation = pool_fill_one(postgres_version=version, api=api)
            except PortsExhausted as exc:
                operation, reason = None, f"it would take {exc}"
            except NoNodeAvailable as exc:
                operation, reason = None, str(exc)
            else:
                reason = "it would take the ports' reserve for users' creates"
            if operation is None:
                refill.held_back = f"pool {version}/{api}: not filled, {reason}"
                logger.info(refill.held_back)
                return refill
            refill.filled.append(operation.project.public_id)
            budget -= 1
    return refill


def pool_drain() -> list[str]:
    """Queue the removal of every pool stack that is not being filled (`manage.py pool --drain`); their ids."""
    drained = []
    for project in _pool_projects().filter(status__in=(S.POOLED, S.FAILED)):
        try:
            pool_drain_one(project=project)
        except ServiceError as exc:
            logger.info("pool: %s not drained: %s", project.public_id, exc)
            continue
        drained.append(project.public_id)
    return drained
