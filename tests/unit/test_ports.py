import socket

import pytest

from projects.services import lifecycle
from projects.services.errors import PortsExhausted
from projects.services.ports import port_is_free_on_host


@pytest.fixture
def narrow_ranges(settings):
    settings.BERTH_DB_PORTS = (16900, 16902)
    settings.BERTH_API_PORTS = (17900, 17902)


def test_ports_come_from_the_ranges_lowest_first_and_never_twice(user, narrow_ranges):
    first = lifecycle.project_create(owner=user).project
    second = lifecycle.project_create(owner=user).project
    assert (first.db_port, first.api_port) == (16900, 17900)
    assert (second.db_port, second.api_port) == (16901, 17901)


def test_a_port_held_by_a_foreign_process_is_skipped(user, narrow_ranges):
    with socket.socket() as foreign:
        foreign.bind(("127.0.0.1", 16900))
        foreign.listen()
        assert not port_is_free_on_host(16900)
        project = lifecycle.project_create(owner=user).project
    assert project.db_port == 16901


def test_exhausted_range_is_a_clear_error_that_reserves_nothing(user, narrow_ranges):
    for _ in range(3):
        lifecycle.project_create(owner=user)
    with pytest.raises(PortsExhausted, match="no free port left in BERTH_DB_PORTS 16900-16902"):
        lifecycle.project_create(owner=user)
    assert user.projects.count() == 3


def test_deleted_projects_keep_their_ports(user, narrow_ranges):
    projects = [lifecycle.project_create(owner=user).project for _ in range(3)]
    for project in projects:
        project.refresh_from_db()
        lifecycle.project_delete(project=project)
    with pytest.raises(PortsExhausted):
        lifecycle.project_create(owner=user)
