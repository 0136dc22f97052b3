"""More project networks than the engine's default address pools hold (issue 15, item 1).

The engine's default pools (172.17-31/16 and 192.168/16 in /20s) hold about
31 bridge networks; Berth's own pool holds thousands. The stacks here are
created but never started: a network is what is under test, and that is cheap.
"""

import ipaddress

import pytest
from django.conf import settings

from projects.models import Project
from projects.stack.up import project_stack_up
from projects.services.ports import project_insert_with_ports
from tests.engine import TEST_LABEL

pytestmark = [pytest.mark.integration, pytest.mark.django_db]

PROJECTS = 40


def test_more_project_networks_than_the_engines_default_pools_hold_all_succeed(user, docker_engine):
    projects = []
    for n in range(PROJECTS):
        project = Project(owner=user, name=f"dense-{n}", postgres_version="17", api_flavour="postgraphile", status=Project.Status.STOPPED)
        project.db_password, project.jwt_secret = f"pw-dense-{n:04d}-0123456789", "j" * 48
        project.admin_password, project.authenticator_password = "pw-admin-0123456789", "pw-auth-0123456789"  # what project_create sets
        project_insert_with_ports(project)
        project_stack_up(project, start=False)
        projects.append(project)

    pool = ipaddress.IPv4Network(settings.BERTH_NETWORK_POOL[0])
    mine = {n["Name"]: n for n in docker_engine.api.networks(filters={"label": TEST_LABEL})}
    subnets = set()
    for project in projects:
        project.refresh_from_db()
        [config] = mine[f"project_{project.public_id}_net"]["IPAM"]["Config"]
        assert config["Subnet"] == project.network_subnet
        assert ipaddress.IPv4Network(config["Subnet"]).subnet_of(pool)
        subnets.add(config["Subnet"])
    assert len(subnets) == PROJECTS
