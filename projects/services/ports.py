"""Host ports: allocated from the configured ranges, unique by constraint, skipping ports in use.

Allocations take one lock first (the installation's row), so concurrent
creates choose one after another. Without it, on PostgreSQL every create
chose the same lowest free port, all but one lost it to the unique
constraint, and they did so again round after round until they gave up with
ports to spare.
"""

import errno
import socket

from django.conf import settings
from django.db import IntegrityError, transaction

from projects.models import Project, allocation_lock

from .errors import PortsExhausted

ATTEMPTS = 8


def port_is_free_on_host(port: int) -> bool:
    """True when nothing on this host holds the port on BERTH_PUBLISH_HOST."""
    host = settings.BERTH_PUBLISH_HOST
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((host, port))
        except OSError as exc:
            if exc.errno in (errno.EADDRINUSE, errno.EACCES):
                return False
            raise
    return True


def _first_free(low: int, high: int, reserved: set[int], variable: str, *, on_this_host: bool = True) -> int:
    for port in range(low, high + 1):
        if port not in reserved and (not on_this_host or port_is_free_on_host(port)):
            return port
    raise PortsExhausted(
        f"no free port left in {variable} {low}-{high}: each is reserved by a project or in use on the host; "
        f"purge deleted projects or widen {variable}"
    )


def project_insert_with_ports(project: Project) -> Project:
    """Save a new project with a free db and api port; PortsExhausted only when a range has none left.

    Ports are unique per node (`project.node`; "" is the single engine, whose
    ports are this host's and are checked free here too). Call it inside the
    create's transaction: the lock is held until that commits.
    """
    with transaction.atomic():
        allocation_lock()
        for _ in range(ATTEMPTS):
            same_node = Project.objects.filter(node=project.node)
            taken = [
                *same_node.filter(db_port__isnull=False).values_list("db_port", flat=True),
                *same_node.filter(api_port__isnull=False).values_list("api_port", flat=True),
            ]
            reserved = {port for port in taken if port is not None}
            local = not project.node  # a node's ports are on that node, not on this host
            project.db_port = _first_free(*settings.BERTH_DB_PORTS, reserved, "BERTH_DB_PORTS", on_this_host=local)
            project.api_port = _first_free(*settings.BERTH_API_PORTS, reserved, "BERTH_API_PORTS", on_this_host=local)
            try:
                with transaction.atomic():
                    project.save(force_insert=True)
                return project
            except IntegrityError:
                # Under the lock only a writer that skips it (a hand edit in the
                # admin) can take a port between our read and our insert; the
                # unique constraint caught it. Read again and retry.
                project.pk = None
                continue
    raise PortsExhausted("could not reserve ports: they were taken as fast as they were chosen; try again")


def project_ports_on_node(project: Project, *, node: str) -> tuple[int, int]:
    """The project's ports on `node` (a move): its own when no other project there holds them, else the first free there.

    Call it inside a transaction: the allocation lock is held until it commits.
    """
    allocation_lock()
    others = Project.objects.filter(node=node).exclude(pk=project.pk)
    taken = {p for pair in others.values_list("db_port", "api_port") for p in pair if p is not None}
    db_port = project.db_port if project.db_port is not None and project.db_port not in taken else _first_free(*settings.BERTH_DB_PORTS, taken, "BERTH_DB_PORTS", on_this_host=False)
    api_port = project.api_port if project.api_port is not None and project.api_port not in taken else _first_free(*settings.BERTH_API_PORTS, taken | {db_port}, "BERTH_API_PORTS", on_this_host=False)
    return db_port, api_port
