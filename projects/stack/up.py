"""Project networks: each gets a subnet Berth allocates from BERTH_NETWORK_POOL.

The engine's default address pools hold about 31 bridge networks; Berth's
pool (10.240.0.0/16 in /28s by default: 4,096 networks) is clear of them and
of the test swarm's ranges. A subnet is reserved like the ports — unique by a
database constraint, chosen under the allocation lock, kept until a purge —
and skips subnets other networks on the engine already use (another Berth,
anything else). A project made before subnets existed gets one the next time
its stack is brought up; its network, if it still exists, keeps the engine's
subnet until it is recreated.
"""

import ipaddress
import logging
from collections.abc import Iterable, Iterator

from django.conf import settings
from django.db import IntegrityError, transaction

from projects.models import Project
from projects.runtime import Runtime, StackSpec, SubnetUnavailable, get_runtime
from projects.stack.spec import stack_spec

from projects.services.errors import SubnetsExhausted
from projects.services.ports import allocation_lock

logger = logging.getLogger(__name__)

ATTEMPTS = 3


def pool_subnets() -> Iterator[ipaddress.IPv4Network]:
    pool, size = settings.BERTH_NETWORK_POOL
    return ipaddress.IPv4Network(pool).subnets(new_prefix=size)


def _first_free(reserved: set[str], engine: list[ipaddress.IPv4Network]) -> str:
    for subnet in pool_subnets():
        if str(subnet) not in reserved and not any(subnet.overlaps(used) for used in engine):
            return str(subnet)
    pool, size = settings.BERTH_NETWORK_POOL
    raise SubnetsExhausted(
        f"no free /{size} subnet left in BERTH_NETWORK_POOL {pool}: each is reserved by a project or used by another "
        "network on the engine; purge deleted projects or widen BERTH_NETWORK_POOL"
    )


def _engine_networks(runtime: Runtime) -> list[ipaddress.IPv4Network]:
    found = []
    for text in runtime.subnets_in_use():
        try:
            found.append(ipaddress.ip_network(text, strict=False))
        except ValueError:
            continue
    return [n for n in found if isinstance(n, ipaddress.IPv4Network)]


def project_subnet_allocate(project: Project, *, runtime: Runtime, avoid: Iterable[str] = ()) -> str:
    """Reserve a free subnet for `project` (replacing the one it has) and record it on the row; SubnetsExhausted if none is free."""
    # The engine is asked first: no transaction is held across an engine call.
    engine = _engine_networks(runtime) + [ipaddress.IPv4Network(a) for a in avoid]
    for _ in range(ATTEMPTS):
        try:
            with transaction.atomic():
                allocation_lock()
                taken = Project.objects.filter(network_subnet__isnull=False).values_list("network_subnet", flat=True)
                reserved = {cidr for cidr in taken if cidr is not None}
                subnet = _first_free(reserved - {project.network_subnet}, engine)
                Project.objects.filter(pk=project.pk).update(network_subnet=subnet)
        except IntegrityError:
            continue  # a writer that skipped the lock took it: choose again
        project.network_subnet = subnet
        return subnet
    raise SubnetsExhausted("could not reserve a subnet for the project's network: they were taken as fast as they were chosen; try again")


def project_stack_up(project: Project, *, start: bool = True, create_volume: bool = True) -> StackSpec:
    """Bring the stack up on the project's own subnet (allocated now if it has none); returns its spec.

    A subnet the engine refuses (another Berth, or anything else, made a network
    on it since) is replaced by a free one, and the network made on that.
    """
    runtime = get_runtime()
    if not project.network_subnet:
        project_subnet_allocate(project, runtime=runtime)
    refused: list[str] = []
    while True:
        spec = stack_spec(project)
        try:
            runtime.stack_up(spec, start=start, create_volume=create_volume)
            return spec
        except SubnetUnavailable:
            if len(refused) >= ATTEMPTS:
                raise
            logger.warning("project %s: subnet %s is taken on the engine; choosing another", project.public_id, spec.subnet)
            refused.append(spec.subnet)
            project_subnet_allocate(project, runtime=runtime, avoid=refused)
