"""What integration and browser tests share: the real engine, its images, a run label, workers.

Everything Berth creates during a test run carries `berth.test=<run id>`
(through BERTH_EXTRA_LABELS), and `engine_cleanup` removes exactly that, so a
test never touches anything it did not make.
"""

import contextlib
import json
import os
import secrets
import subprocess
import sys
import time
from pathlib import Path

import docker
import docker.errors
import pytest
from django.conf import settings
from django.db import connection

from tests.settings_env import berth_settings

ROOT = Path(__file__).resolve().parent.parent
RUN_ID = os.environ.get("BERTH_TEST_RUN") or secrets.token_hex(4)
# Berth's own images (images/ in the repository; `manage.py images build` makes them).
IMAGES = ("berth/postgres:15", "berth/postgres:17", "berth/postgraphile:4")

# The environment of a Berth that runs on its own images. Port ranges sit
# away from a development Berth's; parallel runs choose their own with
# BERTH_TEST_DB_PORTS / BERTH_TEST_API_PORTS.
ENGINE_ENV = {
    "BERTH_POSTGRES_IMAGES": "15=berth/postgres:15,17=berth/postgres:17",
    "BERTH_DEFAULT_POSTGRES_VERSION": "17",
    "BERTH_POSTGRAPHILE_IMAGE": "berth/postgraphile:4",
    "BERTH_DEFAULT_API": "postgraphile",
    "BERTH_DB_PORTS": os.environ.get("BERTH_TEST_DB_PORTS", "16200-16399"),
    "BERTH_API_PORTS": os.environ.get("BERTH_TEST_API_PORTS", "17200-17399"),
    "BERTH_PUBLIC_HOST": "127.0.0.1",  # tests reach containers on loopback only
    "BERTH_EXTRA_LABELS": f"berth.test={RUN_ID}",
    "BERTH_PULL_IMAGES": "0",  # no registry is reachable; a missing image must fail fast
    "BERTH_HEARTBEAT_SECONDS": "1",
    "BERTH_READY_TIMEOUT": "60",
    "BERTH_WARM_POOL": "",  # no pooled stacks unless a test asks for them (tests/integration/test_pool.py)
}
TEST_LABEL = f"berth.test={RUN_ID}"


def unavailable(reason: str) -> None:
    """Skip with the reason locally; under CI=true an engine test may never skip."""
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{reason} (CI=true: integration tests must run; .ci/run starts the engine and builds the images)")
    pytest.skip(f"{reason}: run ../shared/docker/ensure-engine and `uv run manage.py images build`")


def docker_client() -> docker.DockerClient:
    try:
        client = docker.from_env(timeout=30)
        client.ping()
    except docker.errors.DockerException as exc:
        unavailable(f"no Docker Engine answers ({exc})")
    missing = [image for image in IMAGES if not client.images.list(name=image)]
    if missing:
        unavailable(f"Berth's images missing: {', '.join(missing)}")
    return client


def engine_cleanup(client: docker.DockerClient, label: str = TEST_LABEL) -> list[str]:
    """Remove every object carrying `label` (this run's, by default); returns what it removed."""
    # The low-level API lists without inspecting each object, and an object
    # already gone (removed by the code under test meanwhile) is no failure.
    api, removed = client.api, []
    for container in api.containers(all=True, filters={"label": label}):
        with contextlib.suppress(docker.errors.NotFound):
            api.remove_container(container["Id"], force=True)
            removed.append(container["Names"][0].lstrip("/"))
    for network in api.networks(filters={"label": label}):
        with contextlib.suppress(docker.errors.NotFound):
            api.remove_network(network["Id"])
            removed.append(network["Name"])
    for volume in api.volumes(filters={"label": label}).get("Volumes") or []:
        with contextlib.suppress(docker.errors.NotFound):
            api.remove_volume(volume["Name"], force=True)
            removed.append(volume["Name"])
    return removed


def anonymous_volumes(client: docker.DockerClient) -> set[str]:
    """Volumes without labels: what a postgres container leaves when PGDATA is not mounted."""
    return {v.name for v in client.volumes.list() if not v.attrs.get("Labels")}


def anonymous_volume_leaks(client: docker.DockerClient, before: set[str]) -> list[str]:
    """Unlabelled volumes that appeared during the run. Under CI=true nothing else
    shares the engine, so they are this run's: removed, and returned as a failure."""
    new = sorted(anonymous_volumes(client) - before)
    if new and os.environ.get("CI", "").lower() == "true":
        for name in new:
            client.volumes.get(name).remove(force=True)
        return new
    return []


def apply_engine_settings(settings_fixture) -> None:
    for name, value in berth_settings({**os.environ, **ENGINE_ENV}).items():
        setattr(settings_fixture, name, value)


def database_url() -> str:
    """A URL for the test database, so subprocesses (workers, servers) share it."""
    s = connection.settings_dict
    if s["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{Path(s['NAME']).resolve()}"
    from urllib.parse import quote

    return f"postgres://{quote(s['USER'])}:{quote(s['PASSWORD'])}@{s['HOST'] or 'localhost'}:{s['PORT'] or 5432}/{s['NAME']}"


def subprocess_env(**extra: str) -> dict[str, str]:
    return {
        **os.environ,
        **ENGINE_ENV,
        "DATABASE_URL": database_url(),
        "SECRET_KEY": settings.SECRET_KEY,
        "DJANGO_SETTINGS_MODULE": "controlplane.settings",
        "PYTHONUNBUFFERED": "1",
        **extra,
    }


class Workers:
    """Real worker processes on the test database (`manage.py worker`, as `up` runs them)."""

    def __init__(self, count: int, log_dir: Path, **env: str) -> None:
        self.count = count
        self.log_dir = log_dir
        self.env = env
        self.processes: list[subprocess.Popen] = []

    def start(self) -> None:
        for n in range(self.count):
            log = open(self.log_dir / f"worker-{n}.log", "ab")
            self.processes.append(
                subprocess.Popen(
                    [sys.executable, str(ROOT / "manage.py"), "worker", "--no-reload", "--no-startup-delay", "--interval", "0.1"],
                    env=subprocess_env(**self.env),
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    cwd=ROOT,
                )
            )

    def stop(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.terminate()
        for process in self.processes:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
        self.processes.clear()

    def kill(self) -> None:
        """SIGKILL every worker: a crash, not a shutdown."""
        for process in self.processes:
            process.kill()
            process.wait()
        self.processes.clear()


def wait_for(predicate, *, timeout_s: float, what: str, interval_s: float = 0.1):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if value := predicate():
            return value
        time.sleep(interval_s)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")


# --- the test Swarm (../shared/docker/swarm up 2; `eval "$(swarm env)"`) ------------

SWARM_MARKER_LABEL = "com.docker.swarm.service.name"


def swarm_nodes_env() -> dict[str, str]:
    from projects.runtime.swarm_specs import parse_nodes

    return parse_nodes(os.environ.get("BERTH_SWARM_NODES", ""))


def swarm_unavailable(reason: str) -> None:
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{reason} (CI=true: the swarm tests must run; .ci/run starts the test swarm)")
    pytest.skip(f'{reason}: run ../shared/docker/swarm up 2 and eval "$(../shared/docker/swarm env)"')


def swarm_clients() -> dict[str, docker.DockerClient]:
    """A client per node of BERTH_SWARM_NODES (the first is the manager), each holding Berth's images; else skip (fail under CI)."""
    nodes = swarm_nodes_env()
    if not nodes:
        swarm_unavailable("no test swarm: BERTH_SWARM_NODES is not set")
    clients = {}
    for name, url in nodes.items():
        try:
            client = docker.DockerClient(base_url=url, timeout=30)
            client.ping()
        except docker.errors.DockerException as exc:
            swarm_unavailable(f"swarm node {name} at {url} does not answer ({exc})")
        missing = [image for image in IMAGES if not client.images.list(name=image)]
        if missing:
            swarm_unavailable(f"swarm node {name} lacks {', '.join(missing)} (`swarm load {' '.join(missing)}`)")
        clients[name] = client
    manager = next(iter(clients.values()))
    if not manager.info().get("Swarm", {}).get("ControlAvailable"):
        swarm_unavailable(f"{next(iter(nodes.values()))} is not a swarm manager")
    return clients


def swarm_cleanup(clients: dict[str, docker.DockerClient], label: str = TEST_LABEL) -> None:
    """Remove every service, secret, network, container and volume carrying `label`, on the manager and every node that answers."""
    manager = next(iter(clients.values())).api
    for service in manager.services(filters={"label": label}):
        with contextlib.suppress(docker.errors.NotFound):
            manager.remove_service(service["ID"])
    for name, client in clients.items():
        with contextlib.suppress(docker.errors.DockerException):
            api = client.api
            deadline = time.monotonic() + 60
            # Task containers leave by themselves once their service is gone: wait, then the rest.
            while api.containers(all=True, filters={"label": [label, SWARM_MARKER_LABEL]}) and time.monotonic() < deadline:
                time.sleep(0.25)
            for container in api.containers(all=True, filters={"label": label}):
                with contextlib.suppress(docker.errors.NotFound):
                    # v=True: a test's plain container of a postgres image (hold_port) has an anonymous PGDATA volume.
                    api.remove_container(container["Id"], force=True, v=True)
    for secret in manager.secrets(filters={"label": label}):
        with contextlib.suppress(docker.errors.APIError):
            manager.remove_secret(secret["ID"])
    for network in manager.networks(filters={"label": label}):
        for _ in range(40):
            try:
                manager.remove_network(network["Id"])
                break
            except docker.errors.NotFound:
                break
            except docker.errors.APIError:
                time.sleep(0.25)
    for client in clients.values():
        with contextlib.suppress(docker.errors.DockerException):
            for volume in client.api.volumes(filters={"label": label}).get("Volumes") or []:
                with contextlib.suppress(docker.errors.NotFound):
                    client.api.remove_volume(volume["Name"], force=True)


def api_act(client, headers, method: str, path: str, body: dict | None = None, wait: int | None = 120):
    """Call Berth's JSON API as a test client does: `?wait=N` unless `wait` is None; the status and the JSON answer."""
    query = f"?wait={wait}" if wait is not None else ""
    if method == "get":
        response = client.get(f"{path}{query}", **headers)
    else:
        response = getattr(client, method)(f"{path}{query}", data=json.dumps(body or {}), content_type="application/json", **headers)
    return response.status_code, response.json()
