"""The drift report: everything on the engine that does not match Berth's records, with its fix.

Read-only on both sides: it changes no row and removes no object. Each entry
says what the engine shows, what Berth expected, and the action that repairs it
(`start`/`stop`/`delete` converge; objects without a project are left to a
person, because Berth never removes what it cannot account for).
"""

from collections import defaultdict
from dataclasses import dataclass, field

from projects.models import Project, installation_id
from projects.runtime import ContainerState, EngineInventory, Runtime, RuntimeFailure, get_runtime
from projects.runtime.base import object_names, object_prefix

from projects.services.operations.steps import volume_gone_fix
from projects.services.fleet.watcher import DriftKind, belongs_here, observed_health, project_drift

S = Project.Status
# Statuses whose project has a data volume on the engine (or is about to).
HAS_VOLUME = {S.RUNNING, S.STOPPED, S.DELETED, S.STARTING, S.STOPPING, S.DELETING, S.RESTORING, S.UPGRADING, S.POOLED}


@dataclass(frozen=True)
class DriftEntry:
    kind: str  # "orphan", "project", "ports", "volume" or "node" (on a Swarm: its node is down)
    subject: str  # a project id, or the name of an engine object
    problem: str
    fix: str


@dataclass
class DriftReport:
    entries: list[DriftEntry] = field(default_factory=list)
    projects_checked: int = 0
    objects_checked: int = 0
    engine_error: str = ""

    def of(self, subject: str) -> list[DriftEntry]:
        return [e for e in self.entries if e.subject == subject or e.subject.startswith(f"{object_prefix(subject)}_")]


def _orphan(kind: str, name: str, project_id: str, remove: str, *, purged: bool = False) -> DriftEntry:
    if purged:  # left by a purge that could not reach it (a node an operator forgot)
        owner = f"project {project_id}, which is purged"
    else:
        owner = f"project {project_id}, which Berth has no record of" if project_id else "no project label"
    return DriftEntry(
        "orphan",
        name,
        f"Berth-labelled {kind} with {owner}",
        f"nothing automatic: inspect it, then `{remove} {name}` if it is not needed",
    )


def drift_report(*, runtime: Runtime | None = None) -> DriftReport:
    """Compare every object of this installation with every project; three engine calls, three queries."""
    runtime = runtime or get_runtime()
    report = DriftReport()
    try:
        inventory: EngineInventory = runtime.inventory()
    except RuntimeFailure as exc:
        report.engine_error = str(exc)
        return report
    fields = ("id", "public_id", "status", "health", "db_port", "api_port", "deleted_at", "first_running_at", "volume_version", "node")
    projects = {p.public_id: p for p in Project.objects.only(*fields)}
    report.projects_checked = len(projects)
    # Only this installation's objects (and unlabelled ones of its projects):
    # another Berth on the same engine is not drift, and never an orphan.
    this_install = installation_id()

    def ours(install: str, project_id: str) -> bool:
        return belongs_here(install, project_id, mine=this_install, projects=projects)

    containers: dict[str, list[ContainerState]] = defaultdict(list)
    for c in inventory.containers:
        if ours(c.install, c.project_id):
            containers[c.project_id].append(c)
    networks: dict[str, list[str]] = defaultdict(list)
    for name, project_id in inventory.networks.items():
        if ours(inventory.installs.get(name, ""), project_id):
            networks[project_id].append(name)
    volumes: dict[str, list[str]] = defaultdict(list)
    for name, project_id in inventory.volumes.items():
        if ours(inventory.installs.get(name, ""), project_id):
            volumes[project_id].append(name)
    report.objects_checked = sum(map(len, containers.values())) + sum(map(len, networks.values())) + sum(map(len, volumes.values()))
    for project_id, project in sorted(projects.items()):
        if project.node and project.node in inventory.nodes_down and project.status != S.PURGED:
            # Its volume is on that node, which cannot be read: unknown, not missing.
            report.entries.append(
                DriftEntry("node", project_id, f"{project.status}, but its node {project.node} is down: its data volume waits there", "none automatic: it is back with its node")
            )
            continue
        report.entries.extend(_project_entries(project, containers[project_id], volumes[project_id], networks[project_id]))

    # Objects no project accounts for: a purged project's leftovers count too.
    for project_id, mine in sorted(containers.items()):
        if project_id not in projects:
            report.entries.extend(_orphan("container", c.name, project_id, "docker rm -f") for c in sorted(mine, key=lambda c: c.name))
    for project_id, names in sorted(networks.items()):
        if project_id not in projects or projects[project_id].status == S.PURGED:
            report.entries.extend(_orphan("network", n, project_id, "docker network rm", purged=project_id in projects) for n in sorted(names))
    for project_id, names in sorted(volumes.items()):
        if project_id not in projects or projects[project_id].status == S.PURGED:
            report.entries.extend(_orphan("volume", n, project_id, "docker volume rm", purged=project_id in projects) for n in sorted(names))
    return report


def _ran(project: Project) -> bool:
    """Whether the project ever ran and is not purged: its volume holds data, whatever its status."""
    return project.first_running_at is not None and project.status not in (S.PURGING, S.PURGED)


def _project_entries(project: Project, containers: list[ContainerState], volumes: list[str], networks: list[str]) -> list[DriftEntry]:
    entries: list[DriftEntry] = []
    pid = project.public_id
    if project.status == S.PURGED:
        if containers:
            listed = ", ".join(sorted(c.name for c in containers))
            entries.append(DriftEntry("project", pid, f"purged, but containers exist: {listed}", "nothing automatic: remove them by hand (`docker rm -f`)"))
        return entries  # its network and volume, if any, are reported as orphans

    # An upgraded project mounts the volume its upgrade made; the volume it
    # kept for a rollback is its own too (never an orphan), just not mounted.
    names = object_names(pid, volume_version=project.volume_version)
    if names["volume"] not in volumes and (project.status in HAS_VOLUME or _ran(project)):
        # One entry says it all: the containers' drift would offer `start`,
        # which now refuses (a project that ran) or makes an empty database.
        action = "restore" if project.is_deleted else "start"
        if _ran(project):
            fix = f"nothing automatic: {action} refuses to make an empty database for it; {volume_gone_fix(project, action=action)}"
        else:
            fix = f"{action} creates an empty database (the project never ran, so no data of it is lost)"
        entries.append(DriftEntry("volume", pid, f"{project.status}, but its data volume {names['volume']} is missing", fix))
    else:
        drift = project_drift(project, observed_health(containers, previous=project.health), containers)
        # Sync compares ports only for a healthy stack, as one set; here each
        # container is checked on its own, whatever the health.
        if drift and drift.kind != DriftKind.PORTS:
            entries.append(DriftEntry("project", drift.project_id, drift.problem, drift.fix))
    expected = {"db": project.db_port, "api": project.api_port}
    for c in containers:
        wrong = [p for p in c.host_ports if p != expected.get(c.service)]
        if wrong:
            entries.append(
                DriftEntry(
                    "ports",
                    pid,
                    f"{c.name} publishes port {', '.join(map(str, wrong))}, the project's {c.service} port is {expected.get(c.service)}",
                    "delete then restore recreates the containers on the project's ports (the volume is kept), then start",
                )
            )
    if containers and names["network"] not in networks:
        entries.append(
            DriftEntry(
                "project",
                pid,
                f"its network {names['network']} is missing",
                "delete, restore, then start: the containers are recreated on a new network (the volume is kept)",
            )
        )
    return entries
