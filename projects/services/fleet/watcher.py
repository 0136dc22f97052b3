"""Sync: keep each project's observed `health` true to what the engine runs.

Sync only observes. It never removes anything and never changes `status`
(stale operations are settled by operations.py); what does not match a
project's status is reported as drift, with the action that would fix it.
The watcher also asks the warm pool to converge after each pass it made with
the engine answering (services/pool/requests.py queues the operations).
"""

import logging
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Container, Iterable
from dataclasses import dataclass, field, replace
from enum import StrEnum

from django.db import close_old_connections
from django.utils import timezone

from projects.models import Project, installation_id
from projects.runtime import NODE_EVENT, ContainerState, EngineEvent, Runtime, RuntimeFailure, get_runtime
from projects.services.fleet.metrics import metrics_thread, watch_pass_record
from projects.services.operations.queue import operation_recover_stale
from projects.services.placement.nodes import forgotten_lapse
from projects.services.pool.requests import Refill, pool_refill

logger = logging.getLogger(__name__)

H = Project.Health
S = Project.Status
SERVICES = ("db", "api")
# Projects in these statuses have an operation in flight: what the engine
# shows is a moment of a change, not drift.
TRANSITIONAL = {S.PROVISIONING, S.STOPPING, S.STARTING, S.DELETING, S.RESTORING, S.PURGING, S.UPGRADING}
# Engine events that can change a project's health ("kill" and "oom" only
# announce a "die"). Healthchecks alone make three exec_* events per container
# every interval: following those would re-read every stack for nothing.
# "update": a Swarm service's spec changed (replicas 0 is a stop).
HEALTH_EVENTS = frozenset({"create", "start", "restart", "die", "stop", "destroy", "pause", "unpause", "health_status", "update"})
# The longest one event stream stays open: a stop request waits at most this.
EVENT_WINDOW_S = 5.0
# Sync sees containers, not volumes: the fix it offers holds either way (the
# drift report, which sees volumes, says which case it is).
ON_THE_VOLUME = "on its data volume (and refuses if that is gone)"
# What each settled status expects to observe.
EXPECTED_HEALTH: dict[str, set[str]] = {S.RUNNING: {H.HEALTHY}, S.STOPPED: {H.DOWN}, S.POOLED: {H.HEALTHY}}


class DriftKind(StrEnum):
    STATUS = "status"  # the stack contradicts the project's status (missing, stopped, running, left behind)
    PORTS = "ports"  # the stack runs as expected, but on ports that are not the project's


@dataclass(frozen=True)
class Drift:
    project_id: str
    problem: str
    fix: str
    kind: DriftKind = DriftKind.STATUS


@dataclass
class SyncReport:
    checked: int = 0
    changed: int = 0
    drift: list[Drift] = field(default_factory=list)
    engine_error: str = ""
    recovered: list[str] = field(default_factory=list)  # operations failed because their worker died


def observed_health(containers: Iterable[ContainerState], *, previous: str | None = None) -> str:
    """One project's health from its containers, as the engine lists them.

    `previous` is the health recorded so far: a healthcheck still in its start
    period says nothing new, so a project last seen healthy (an operation has
    just proved it answers) stays healthy until the check has a verdict.
    """
    by_service = {c.service: c for c in containers}
    if any(s not in by_service for s in SERVICES):
        return H.MISSING
    states = [by_service[s] for s in SERVICES]
    if by_service["db"].node_down:
        # Its data is on that node: nothing runs it elsewhere (DESIGN.md, "Runtimes").
        return H.NODE_DOWN
    if not by_service["db"].running:
        # The database is the project: without it the api only answers errors.
        return H.DOWN
    if all(c.running and c.health in (None, "healthy") for c in states):
        return H.HEALTHY
    if previous == H.HEALTHY and all(c.running and c.health in (None, "healthy", "starting") for c in states):
        return H.HEALTHY
    return H.UNHEALTHY


def belongs_here(install: str, project_id: str, *, mine: str, projects: Container[str]) -> bool:
    """Whether an engine object labelled `install` is this installation's.

    Its own label says so; an object without one (made before installations
    were labelled) is adopted when its project is one of ours, and gets the
    label when it is recreated. Anything else is another Berth's: never
    reported, never touched.
    """
    return install == mine or (install == "" and project_id in projects)


def project_drift(project: Project, health: str, containers: list[ContainerState]) -> Drift | None:
    """How observation contradicts the project's status, and the action that repairs it."""
    status = project.status
    # Only the stack counts: a backup's throwaway containers belong to their
    # operation and go with it (a final backup runs while the project is deleted).
    containers = [c for c in containers if c.service in SERVICES]
    if status in TRANSITIONAL or status == S.FAILED:
        return None
    if status in (S.DELETED, S.PURGED):
        # Any container at all is drift here, even one of two.
        if not containers:
            return None
        fix = "delete removes them (the volume is kept)" if status == S.DELETED else "none automatic: remove them by hand"
        return Drift(project.public_id, f"{status}, but containers exist", fix)
    if health == H.NODE_DOWN:
        if status == S.STOPPED:
            return None
        return Drift(
            project.public_id,
            f"{status}, but the node holding its data is down",
            "none automatic: it runs again when its node is back (or move it: a verified backup restored onto another node)",
        )
    if health in EXPECTED_HEALTH[status]:
        published = {p for c in containers for p in c.host_ports}
        expected = {port for port in (project.db_port, project.api_port) if port is not None}
        if published and published != expected:
            return Drift(
                project.public_id,
                f"containers publish ports {sorted(published)}, the project has {sorted(expected)}",
                "delete then restore recreates the containers on the project's ports",
                DriftKind.PORTS,
            )
        return None
    if status == S.RUNNING:
        problem = {
            H.MISSING: "running, but its containers are missing",
            H.DOWN: "running, but its database container is stopped",
            H.UNHEALTHY: "running, but a container is unhealthy or stopped",
        }[H(health)]
        return Drift(project.public_id, problem, f"start recreates or restarts them {ON_THE_VOLUME}")
    if status == S.POOLED:
        # Berth's own stack: nobody is waiting on it, and the pool replaces it.
        return Drift(project.public_id, f"pooled, but {health}", "none needed: the pool's refill drains and replaces it")
    if status == S.STOPPED:
        if health == H.MISSING:
            return Drift(project.public_id, "stopped, but its containers are missing", f"start recreates them {ON_THE_VOLUME}")
    return Drift(project.public_id, "stopped, but its containers are running", "stop stops them")


def projects_sync(*, runtime: Runtime | None = None) -> SyncReport:
    """One pass over every project: one engine call for all containers, a handful of queries.

    It first fails the operations dead workers left in flight (DESIGN.md: the one
    case where sync changes a status), engine or no engine.
    """
    runtime = runtime or get_runtime()
    report = SyncReport()
    for operation in operation_recover_stale():
        report.recovered.append(operation.public_id)
    now = timezone.now()
    live = Project.objects.exclude(status=S.PURGED)
    try:
        containers = runtime.containers()
    except RuntimeFailure as exc:
        report.engine_error = str(exc)
        report.changed = live.exclude(health=H.UNKNOWN).update(health=H.UNKNOWN, observed_at=now)
        logger.warning("sync: %s; every project's health is now unknown", exc)
        return report

    mine = installation_id()
    by_project: dict[str, list[ContainerState]] = defaultdict(list)
    for c in containers:
        if c.install in (mine, ""):  # "": adopted below if its project is ours
            by_project[c.project_id].append(c)

    changed: list[Project] = []
    known: set[str] = set()
    seen_up: set[str] = set()  # on a Swarm: nodes where a project's db was seen (not down)
    fields = ("id", "public_id", "status", "health", "db_port", "api_port", "node")
    for project in Project.objects.only(*fields).iterator(chunk_size=2000):
        known.add(project.public_id)
        if project.status == S.PURGED and project.public_id not in by_project:
            continue
        report.checked += 1
        stack = by_project.get(project.public_id, [])
        health = observed_health(stack, previous=project.health)
        if project.node and health not in (H.NODE_DOWN, H.MISSING):
            seen_up.add(project.node)
        if health != project.health:
            project.health = health
            project.observed_at = now
            changed.append(project)
        if drift := project_drift(project, health, stack):
            report.drift.append(drift)
    Project.objects.bulk_update(changed, ["health", "observed_at"], batch_size=500)
    # Every other row was observed now too, and did not change: one statement.
    live.update(observed_at=now)
    report.changed = len(changed)
    if lapsed := forgotten_lapse(seen_up):
        logger.info("sync: %d forgotten node(s) seen up again: no longer forgotten", lapsed)

    for project_id, stack in sorted(by_project.items()):
        ours = [c for c in stack if belongs_here(c.install, project_id, mine=mine, projects=known)]
        if project_id not in known and ours:
            names = ", ".join(sorted(c.name for c in ours))
            report.drift.append(
                Drift(project_id or "?", f"Berth-labelled containers without a project: {names}", "none automatic: inspect, then remove by hand")
            )
    return report


def project_observe(project_id: str, *, runtime: Runtime | None = None, event: EngineEvent | None = None) -> str | None:
    """Re-read one project's containers (after an engine event) and record its health.

    Not while an operation changes it (a create, a start…): its events are that
    operation's own, which records the health it leaves, and reading the engine
    for each of them cost as much engine CPU as a healthcheck (BENCHMARKS.md,
    "Issue 20 item 6"). The next full pass reads it like every other.
    """
    if event is not None and Project.objects.filter(public_id=project_id, status__in=TRANSITIONAL).exists():
        return None
    runtime = runtime or get_runtime()
    containers = list(runtime.stack_state(project_id).containers)
    if event is not None and event.action in ("die", "destroy"):
        # The engine sends "die" before its container list stops saying
        # "running": the event itself is the truth for that container.
        containers = [
            replace(c, status="exited", health=None) if c.service == event.service else c
            for c in containers
            if not (event.action == "destroy" and c.service == event.service)
        ]
    project = Project.objects.filter(public_id=project_id).exclude(status=S.PURGED)
    health = observed_health(containers, previous=project.values_list("health", flat=True).first())
    updated = project.update(health=health, observed_at=timezone.now())
    return health if updated else None


def pool_converge(log: Callable[[str], None]) -> Refill:
    """Ask the warm pool to converge; a failure is logged, never the end of the watch."""
    try:
        refill = pool_refill()
    except Exception as exc:
        logger.exception("pool refill failed")
        log(f"pool refill failed: {exc}")
        return Refill()
    if refill.filled or refill.drained:
        log(f"pool: {len(refill.filled)} fill(s) and {len(refill.drained)} drain(s) queued")
    return refill


# How soon the watcher asks the pool again while a fill waits for a pool operation to end.
POOL_RETRY_S = 1.0


def sync_watch(*, stop: threading.Event, full_pass_s: float = 30.0, runtime: Runtime | None = None, log: Callable[[str], None] = logger.info) -> None:
    """Follow the engine's events and correct health as they come; a full pass every `full_pass_s`.

    An unreachable engine is reported and retried with backoff; it never ends the watch.
    Metrics are sampled beside it, in a thread of their own (services/fleet/metrics.py):
    a slow sample never delays a health change.
    """
    runtime = runtime or get_runtime()
    sampler = metrics_thread(stop=stop, runtime=runtime, log=log)
    try:
        _watch(stop=stop, full_pass_s=full_pass_s, runtime=runtime, log=log)
    finally:
        stop.set()
        if sampler is not None:
            sampler.join(timeout=10)


def _watch(*, stop: threading.Event, full_pass_s: float, runtime: Runtime, log: Callable[[str], None]) -> None:
    backoff = 1.0
    drift_seen: set[Drift] = set()
    while not stop.is_set():
        close_old_connections()
        # Events are read from the moment before the pass: whatever happens
        # while it runs is replayed by the engine, not lost.
        since = time.time()
        started = time.monotonic()
        report = projects_sync(runtime=runtime)
        # One engine call a pass (`containers()`), whatever the number of projects.
        watch_pass_record(kind="sync", seconds=time.monotonic() - started, engine_calls=1, projects=report.checked)
        for operation_id in report.recovered:
            log(f"operation {operation_id}: its worker died; failed, its project can be retried")
        if report.engine_error:
            log(f"engine unreachable, retrying in {backoff:.0f} s: {report.engine_error}")
            stop.wait(backoff)
            backoff = min(backoff * 2, 30.0)
            continue
        backoff = 1.0
        # Each drift is logged when it appears and when it is gone, not every
        # pass: a log that repeats itself every 30 s is a log nobody reads.
        for drift in report.drift:
            if drift not in drift_seen:
                log(f"drift: {drift.project_id}: {drift.problem} (fix: {drift.fix})")
        for drift in drift_seen - set(report.drift):
            log(f"drift resolved: {drift.project_id}: {drift.problem}")
        drift_seen = set(report.drift)
        log(f"full pass: {report.checked} project(s) checked, {report.changed} changed, {len(report.drift)} drift")
        refill = pool_converge(log)
        deadline = time.monotonic() + full_pass_s
        try:
            # The event stream ends by itself at the deadline, so a full pass
            # still runs when no event comes.
            while not stop.is_set() and (left := deadline - time.monotonic()) > 0:
                # Short windows keep a stop request prompt; each starts
                # where the previous one ended (it may overlap, never gap).
                # A pool waiting for its operations to end is asked again soon.
                window_start, window = time.time(), min(left, POOL_RETRY_S if refill.short else EVENT_WINDOW_S)
                for event in runtime.events(timeout_s=window, since=since):
                    if event.service == NODE_EVENT:
                        # A Swarm node went down or came back: every project on it
                        # may have changed, and a full pass reads them all at once.
                        log(f"{event.action}: a full pass now")
                        deadline = time.monotonic()
                        break
                    if event.action.split(":")[0] not in HEALTH_EVENTS:
                        continue
                    health = project_observe(event.project_id, runtime=runtime, event=event)
                    if health:
                        log(f"{event.project_id}: {event.service} {event.action} → {health}")
                    if stop.is_set():
                        break
                since = window_start + window
                # Claims take stacks between passes: a few queries every window keep the pool full.
                refill = pool_converge(log)
        except RuntimeFailure as exc:
            # Back to a full pass, which reports the engine and backs off if it is
            # gone; the pause keeps a broken event stream from spinning.
            log(f"engine error while following events: {exc}")
            stop.wait(1.0)
