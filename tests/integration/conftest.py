"""Integration tests: the real engine, the offline images, real worker processes."""

import pytest

from projects.runtime import use_runtime
from tests.engine import (
    Workers,
    swarm_cleanup,
    swarm_clients,
    swarm_nodes_env,
    anonymous_volume_leaks,
    anonymous_volumes,
    apply_engine_settings,
    docker_client,
    engine_cleanup,
)

pytestmark = pytest.mark.integration


@pytest.fixture(scope="session")
def docker_engine():
    client = docker_client()
    before = anonymous_volumes(client)
    yield client
    engine_cleanup(client)
    # The postgres images declare VOLUME at PGDATA: a container created without
    # the project's volume there leaves an anonymous one behind, unlabelled.
    leaks = anonymous_volume_leaks(client, before)
    assert not leaks, f"containers left anonymous volumes behind (PGDATA not mounted?): {leaks}"


@pytest.fixture(autouse=True)
def engine(docker_engine, settings):
    """Every integration test: engine settings, a fresh runtime, and nothing of ours left afterwards."""
    apply_engine_settings(settings)
    use_runtime(None)
    yield docker_engine
    use_runtime(None)
    engine_cleanup(docker_engine)


@pytest.fixture
def backup_dir(settings, tmp_path):
    """The test's backup directory, made, for this process (the API's downloads, the tests' checks) and the workers it starts."""
    path = tmp_path / "backups"
    path.mkdir()
    settings.BERTH_BACKUP_DIR = path
    return path


@pytest.fixture
def workers(transactional_db, tmp_path):
    """Four real workers (BERTH_WORKERS' default) on the test database."""
    pool = Workers(4, tmp_path)
    pool.start()
    yield pool
    pool.stop()


# --- the test Swarm (marker swarm; ../shared/docker/swarm up 2) --------------------------


@pytest.fixture(scope="session")
def swarm():
    """A client per node (the first is the manager); skips without a test swarm, fails under CI=true."""
    return swarm_clients()


@pytest.fixture
def swarm_env(swarm, settings, monkeypatch, tmp_path):
    """This process and its workers on the test swarm: BERTH_RUNTIME=swarm, the manager, the nodes, their port ranges."""
    nodes = swarm_nodes_env()
    env = {
        "BERTH_RUNTIME": "swarm",
        "BERTH_SWARM_NODES": ",".join(f"{name}={url}" for name, url in nodes.items()),
        "DOCKER_HOST": next(iter(nodes.values())),
        "BERTH_DB_PORTS": "16400-16409",
        "BERTH_API_PORTS": "17400-17409",
        "BERTH_BACKUP_DIR": str(tmp_path / "backups"),
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    settings.BERTH_RUNTIME, settings.BERTH_SWARM_NODES = "swarm", nodes
    settings.BERTH_DB_PORTS, settings.BERTH_API_PORTS = (16400, 16409), (17400, 17409)
    settings.BERTH_BACKUP_DIR = tmp_path / "backups"
    use_runtime(None)
    yield env
    use_runtime(None)
    swarm_cleanup(swarm)


@pytest.fixture
def swarm_workers(transactional_db, tmp_path, swarm_env):
    pool = Workers(2, tmp_path, **swarm_env)
    pool.start()
    yield pool
    pool.stop()
