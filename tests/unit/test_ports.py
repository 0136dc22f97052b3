import socket
import threading

import pytest

from projects.services.lifecycle import requests as lifecycle
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


@pytest.mark.django_db(transaction=True)
def test_concurrent_creates_all_get_ports_while_ports_are_free(settings):
    """Many requests creating at the same moment, on real threads and real connections.

    Each create commits its ports with its operation; a port another create holds
    uncommitted must not make this one give up while free ports remain.
    """
    from django.contrib.auth import get_user_model
    from django.db import connections

    # Operations are queued, not run: only the allocation is under test.
    settings.TASKS = {"default": {"BACKEND": "django.tasks.backends.dummy.DummyBackend"}}
    settings.BERTH_DB_PORTS = (16900, 16999)
    settings.BERTH_API_PORTS = (17900, 17999)
    owner = get_user_model().objects.create_user("racer", password="racer-password-1")
    threads_n = 16
    barrier = threading.Barrier(threads_n)
    outcomes: list[object] = []

    def create() -> None:
        try:
            barrier.wait(timeout=30)
            outcomes.append(lifecycle.project_create(owner=owner).project.db_port)
        except Exception as exc:
            outcomes.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=create) for _ in range(threads_n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    failures = [o for o in outcomes if isinstance(o, Exception)]
    assert not failures, f"{len(failures)} of {threads_n} creates failed with free ports left: {failures[:3]}"
    assert len(set(outcomes)) == threads_n
