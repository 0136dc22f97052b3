import socket

import pytest
from django.conf import settings

from projects.runtime.docker import DockerRuntime
from projects.services.ports import port_is_free_on_host
from tests.runtime_contract import RuntimeContract
from tests.unit.test_runtime_contract import spec_for_new_project

# The spec reads the installation id (berth.install) from Berth's database.
pytestmark = pytest.mark.django_db


def free_ports(low: int, high: int):
    for port in range(low, high + 1):
        if port_is_free_on_host(port):
            yield port


class TestDockerRuntime(RuntimeContract):
    @pytest.fixture
    def runtime(self):
        return DockerRuntime(pull_images=False)

    @pytest.fixture
    def make_spec(self):
        db_ports, api_ports = free_ports(*settings.BERTH_DB_PORTS), free_ports(*settings.BERTH_API_PORTS)
        return lambda api_image=None: spec_for_new_project(next(db_ports), next(api_ports), api_image)

    @pytest.fixture
    def hold_port(self):
        held = []

        def hold(port: int) -> None:
            sock = socket.socket()
            sock.bind(("127.0.0.1", port))
            sock.listen()
            held.append(sock)

        yield hold
        for sock in held:
            sock.close()
