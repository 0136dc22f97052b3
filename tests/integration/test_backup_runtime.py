"""DockerRuntime's exec, file copy and throwaway containers on the real engine: what backups stand on."""

import os
import subprocess

import pytest

from projects.runtime.docker import DockerRuntime
from tests.runtime_contract import scratch_for
from tests.unit.test_runtime_contract import spec_for_new_project

# The spec reads the installation id (berth.install) from Berth's database.
pytestmark = [pytest.mark.integration, pytest.mark.django_db]


@pytest.fixture
def runtime():
    return DockerRuntime(pull_images=False)


@pytest.fixture
def scratch(runtime, settings):
    low = settings.BERTH_DB_PORTS[0]
    spec = scratch_for(spec_for_new_project(low, settings.BERTH_API_PORTS[0]))
    runtime.scratch_up(spec)
    yield spec
    runtime.scratch_remove(spec.name)


def test_exec_streams_stdout_and_reports_stderr_and_the_exit_code(runtime, scratch):
    stream = runtime.exec_stream(scratch.name, ["sh", "-c", "printf one; printf oops >&2; printf two; exit 3"])
    with stream:
        assert b"".join(stream) == b"onetwo"
        result = stream.result()
    assert (result.exit_code, result.stderr) == (3, "oops")


def test_exec_of_a_container_killed_mid_stream_ends_with_no_success(runtime, scratch):
    argv = ["sh", "-c", "i=0; while [ $i -lt 200 ]; do head -c 65536 /dev/urandom; sleep 0.05; i=$((i+1)); done"]
    received = 0
    with runtime.exec_stream(scratch.name, argv) as stream:
        for chunk in stream:
            received += len(chunk)
            if received >= 200_000:
                subprocess.run(["docker", "kill", scratch.name], check=True, capture_output=True)
                break
        result = stream.result()
    assert received < 200 * 65536
    assert result.exit_code != 0  # 137 (killed) or None (gone): never success


def test_file_put_copies_a_file_byte_for_byte(runtime, scratch):
    data = os.urandom(3 * 1024 * 1024 + 7)
    chunks = [data[i : i + 1024 * 1024] for i in range(0, len(data), 1024 * 1024)]
    runtime.file_put(scratch.name, "/tmp/copied.bin", iter(chunks), size=len(data))
    out, result = runtime.exec_stream(scratch.name, ["cat", "/tmp/copied.bin"]).read_all()
    assert result.exit_code == 0 and out == data


def test_scratch_has_no_network_and_nothing_is_published(scratch, docker_engine):
    container = docker_engine.containers.get(scratch.name)
    # No network to make, so none to run out of: Berth reaches it with exec, over its loopback.
    assert container.attrs["HostConfig"]["NetworkMode"] == "none"
    assert not docker_engine.networks.list(names=[f"{scratch.name}_net"])
    assert container.attrs["HostConfig"]["PortBindings"] in ({}, None)
    assert container.labels["berth.managed"] == "true" and container.labels["berth.service"] == "backup-verify"
    # The volume at PGDATA is the named, labelled one: no anonymous volume is left behind.
    mounts = [(m["Type"], m.get("Name")) for m in container.attrs["Mounts"]]
    assert mounts == [("volume", scratch.volume_name)]
