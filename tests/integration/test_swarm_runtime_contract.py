"""The runtime contract on a real Docker Swarm (`../shared/docker/swarm up 2`): SwarmRuntime is a peer of DockerRuntime."""

import itertools
import os

import pytest

from projects.runtime.swarm import SwarmRuntime
from tests.engine import TEST_LABEL, swarm_cleanup, swarm_nodes_env
from tests.runtime_contract import RuntimeContract
from tests.unit.test_runtime_contract import spec_for_new_project

pytestmark = [pytest.mark.django_db, pytest.mark.swarm]


def port_range(name: str, default: str) -> range:
    low, _, high = os.environ.get(name, default).partition("-")
    return range(int(low), int(high or low) + 1)


@pytest.fixture(autouse=True)
def swarm_clean(swarm):
    yield
    swarm_cleanup(swarm)


class TestSwarmRuntime(RuntimeContract):
    sample_engine_calls = 7  # the db service's node, then each container's service, tasks and stats

    @pytest.fixture
    def runtime(self, swarm):
        nodes = swarm_nodes_env()
        return SwarmRuntime(nodes=nodes, manager=next(iter(nodes.values())))

    @pytest.fixture
    def placed(self):
        return []

    @pytest.fixture
    def make_spec(self, swarm, placed):
        # Alternate the nodes; ports from the ranges the test swarm forwards (each test starts clean).
        nodes = itertools.cycle(swarm_nodes_env())
        db_ports = iter(port_range("BERTH_SWARM_DB_PORTS", "16400-16409"))
        api_ports = iter(port_range("BERTH_SWARM_API_PORTS", "17400-17409"))

        def make(api_image=None):
            spec = spec_for_new_project(next(db_ports), next(api_ports), api_image)
            spec = spec.__class__(**{**spec.__dict__, "node": next(nodes)})
            placed.append(spec)
            return spec

        return make

    @pytest.fixture
    def hold_port(self, swarm, placed):
        def hold(port: int) -> None:
            # A plain container publishing the port on the node of the spec made last.
            api = swarm[placed[-1].node].api
            container = api.create_container(
                "berth/postgres:17", command=["sleep", "600"], labels={TEST_LABEL.split("=")[0]: TEST_LABEL.split("=")[1]},
                ports=[9999], host_config=api.create_host_config(port_bindings={9999: port}),
            )  # fmt: skip
            api.start(container["Id"])

        return hold
