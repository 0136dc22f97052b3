import json
import socket
import urllib.request

import psycopg
import pytest
from django.conf import settings

from projects.runtime.docker import DockerRuntime
from projects.services.ports import port_is_free_on_host
from tests.engine import wait_for
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

    def test_a_ready_postgraphile_already_watches_so_a_table_made_at_once_is_served(self, runtime, make_spec):
        # PostGraphile answers before it listens for schema changes and makes
        # the triggers that send them; ready waits for both (stack/postgraphile.py, watching_sql).
        spec = make_spec()
        runtime.stack_up(spec)
        runtime.stack_wait_ready(spec, timeout_s=60)
        p = spec.db_probe
        with psycopg.connect(host=p.host, port=p.port, user=p.user, password=p.password, dbname=p.dbname, autocommit=True) as conn:
            # One transaction, so its notifications come at one commit; granted, because the query below is
            # anonymous and anon's schema shows only what anon may use.
            conn.execute("CREATE TABLE items (id serial PRIMARY KEY); GRANT SELECT ON items TO anon")

        def served() -> bool:
            query = json.dumps({"query": '{ __type(name: "Item") { name } }'}).encode()
            request = urllib.request.Request(f"http://{p.host}:{spec.api.host_port}/graphql", data=query, headers={"Content-Type": "application/json"})
            with urllib.request.urlopen(request, timeout=5) as response:
                return json.load(response)["data"]["__type"] is not None

        assert wait_for(served, timeout_s=10, what="the api to serve a table made the moment the stack was ready")
