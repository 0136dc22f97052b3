"""Integration tests: the real engine, the offline images, real worker processes."""

import pytest

from projects.runtime import use_runtime
from tests.engine import (
    Workers,
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
def workers(transactional_db, tmp_path):
    """Four real workers (BERTH_WORKERS' default) on the test database."""
    pool = Workers(4, tmp_path)
    pool.start()
    yield pool
    pool.stop()
