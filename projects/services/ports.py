"""Host ports: allocated from the configured ranges, unique by constraint, skipping ports in use."""

import errno
import socket

from django.conf import settings
from django.db import IntegrityError, transaction

from projects.models import Project

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


def _first_free(low: int, high: int, reserved: set[int], variable: str) -> int:
    for port in range(low, high + 1):
        if port not in reserved and port_is_free_on_host(port):
            return port
    raise PortsExhausted(
        f"no free port left in {variable} {low}-{high}: each is reserved by a project or in use on the host; "
        f"purge deleted projects or widen {variable}"
    )


def project_insert_with_ports(project: Project) -> Project:
    """Save a new project with a free db and api port, retrying when another create wins a port."""
    for _ in range(ATTEMPTS):
        reserved = set(Project.objects.filter(db_port__isnull=False).values_list("db_port", flat=True))
        reserved |= set(Project.objects.filter(api_port__isnull=False).values_list("api_port", flat=True))
        project.db_port = _first_free(*settings.BERTH_DB_PORTS, reserved, "BERTH_DB_PORTS")
        project.api_port = _first_free(*settings.BERTH_API_PORTS, reserved, "BERTH_API_PORTS")
        try:
            with transaction.atomic():
                project.save(force_insert=True)
            return project
        except IntegrityError:
            # Another create took one of these ports between our read and our
            # insert; the unique constraint caught it. Read again and retry.
            project.pk = None
            continue
    raise PortsExhausted("could not reserve ports: too many projects were created at the same moment; try again")
