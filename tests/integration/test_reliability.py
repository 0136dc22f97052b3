"""Faults on the real engine: a worker killed mid-create, a killed database, containers removed behind
Berth's back, a port held by a foreign process, and secrets kept out of every log at DEBUG."""

import json
import logging
import socket
import subprocess
import sys
import threading
import time
from datetime import timedelta
from pathlib import Path

import psycopg
import pytest
from django.db import connection
from django.tasks import TaskResultStatus
from django.utils import timezone
from django_tasks_db.models import DBTaskResult

from projects.services.operations.kinds import allowed_actions
from projects.models import Operation, Project
from projects.services.fleet.drift import drift_report
from projects.services.fleet.watcher import projects_sync
from tests.conftest import bearer
from tests.engine import ROOT, TEST_LABEL, Workers, subprocess_env, wait_for

pytestmark = pytest.mark.integration

STALE_S = 5  # BERTH_STALE_OPERATION_SECONDS for these tests: a dead worker is noticed quickly


def api(client, headers, method: str, path: str, body: dict | None = None, wait: int | None = 90) -> tuple[int, dict]:
    url = f"{path}?wait={wait}" if wait else path
    response = getattr(client, method)(url, data=json.dumps(body or {}), content_type="application/json", **headers)
    return response.status_code, response.json()


def objects_of(docker_engine, project_id: str) -> dict[str, list[str]]:
    # The stack's objects: managed ones (a container's own volumes go with it, and are not berth.managed).
    label = [f"berth.project={project_id}", "berth.managed=true"]
    return {
        "containers": sorted(c.name for c in docker_engine.containers.list(all=True, filters={"label": label})),
        "networks": sorted(n.name for n in docker_engine.networks.list(filters={"label": label})),
        "volumes": sorted(v.name for v in docker_engine.volumes.list(filters={"label": label})),
    }


def one_stack(project_id: str) -> dict[str, list[str]]:
    p = f"project_{project_id}"
    return {"containers": [f"{p}_api", f"{p}_db"], "networks": [f"{p}_net"], "volumes": [f"{p}_data"]}


def published(docker_engine, project: Project) -> dict[str, list[tuple[str, str]]]:
    """What each container publishes, as (host ip, host port), read from the engine."""
    out = {}
    for service in ("db", "api"):
        container = docker_engine.containers.get(f"project_{project.public_id}_{service}")
        out[service] = sorted(
            (b["HostIp"], b["HostPort"]) for bindings in container.attrs["HostConfig"]["PortBindings"].values() for b in bindings
        )
    return out


def rows(project: Project) -> list[str]:
    with psycopg.connect(project.db_url(), connect_timeout=3) as conn:
        return [name for (name,) in conn.execute("SELECT name FROM items ORDER BY id")]


class Watcher:
    """`manage.py sync_projects --watch` as a subprocess, every line timestamped as it arrives."""

    def __init__(self, log_path: Path, *args: str, **env: str) -> None:
        self.lines: list[tuple[float, str]] = []
        self.process = subprocess.Popen(
            [sys.executable, str(ROOT / "manage.py"), "sync_projects", "--watch", *args],
            env=subprocess_env(**env),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
            text=True,
        )
        self.log_path = log_path
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        with open(self.log_path, "a") as log:
            for line in self.process.stdout:
                self.lines.append((now := time.monotonic(), line.rstrip("\n")))
                log.write(f"{now:.3f} {line}")

    def wait_line(self, predicate, *, after: float = 0.0, timeout_s: float, what: str) -> tuple[float, str]:
        return wait_for(
            lambda: next(((t, line) for t, line in list(self.lines) if t >= after and predicate(line)), None),
            timeout_s=timeout_s,
            what=what,
            interval_s=0.02,
        )

    def stop(self) -> int:
        self.process.terminate()
        try:
            return self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            raise


@pytest.fixture
def one_worker(transactional_db, tmp_path):
    pool = Workers(1, tmp_path, BERTH_STALE_OPERATION_SECONDS=str(STALE_S))
    pool.start()
    yield pool
    pool.stop()


@pytest.mark.backend
def test_a_worker_killed_mid_create_is_failed_and_a_retry_converges_to_one_stack_on_the_same_ports(
    transactional_db, user, client, docker_engine, tmp_path, settings
):
    settings.BERTH_STALE_OPERATION_SECONDS = STALE_S
    headers = bearer(user)
    first = Workers(1, tmp_path, BERTH_STALE_OPERATION_SECONDS=str(STALE_S))
    first.start()
    try:
        code, created = api(client, headers, "post", "/v1/projects", {"name": "crash"}, wait=None)
        assert code == 202, created
        project_id = created["project_id"]
        op = Operation.objects.get(public_id=created["operation"]["operation_id"])
        # Kill it once the engine has part of the stack: the db container exists, the project is not up yet.
        wait_for(
            # The low-level list: the high-level one inspects each container it
            # lists, and fails if one goes away in between.
            lambda: docker_engine.api.containers(all=True, filters={"name": f"project_{project_id}_db"}),
            timeout_s=60, what="the create to reach the engine", interval_s=0.02,
        )  # fmt: skip
    finally:
        first.kill()
    op.refresh_from_db()
    project = Project.objects.get(public_id=project_id)
    ports = (project.db_port, project.api_port)
    assert (op.state, project.status) == ("running", "provisioning"), "the kill came too late to be mid-create"

    # Until the heartbeat is stale nothing may touch it: the worker could be alive and slow.
    assert projects_sync().recovered == []
    wait_for(lambda: timezone.now() - Operation.objects.get(pk=op.pk).heartbeat_at > timedelta(seconds=STALE_S + 0.5),
             timeout_s=STALE_S + 5, what="the heartbeat to go stale")  # fmt: skip
    second = Workers(1, tmp_path, BERTH_STALE_OPERATION_SECONDS=str(STALE_S))
    second.start()  # a starting worker fails what the dead one left
    try:
        wait_for(lambda: Operation.objects.get(pk=op.pk).state == "failed", timeout_s=30, what="the new worker to fail the create")
        op.refresh_from_db()
        project.refresh_from_db()
        assert "no heartbeat for 5 s" in op.error
        assert project.status == "failed" and "start" in allowed_actions(project)
        # django-tasks-db never re-runs the dead worker's task; its row now says it failed.
        [task] = DBTaskResult.objects.filter(args_kwargs__kwargs__operation_id=op.pk)
        assert task.status == TaskResultStatus.FAILED

        code, started = api(client, headers, "post", f"/v1/projects/{project_id}/start")
    finally:
        second.stop()
    assert (code, started["status"], started["health"]) == (200, "running", "healthy"), started
    project.refresh_from_db()
    assert (project.db_port, project.api_port) == ports
    assert objects_of(docker_engine, project_id) == one_stack(project_id)
    assert published(docker_engine, project) == {"db": [("127.0.0.1", str(ports[0]))], "api": [("127.0.0.1", str(ports[1]))]}
    # The db container mounts the project's volume at PGDATA; its other volumes are
    # its own (a read-only root: spec.DB_OWN_VOLUMES), labelled with it, nothing anonymous.
    mounts = {m["Destination"]: m["Name"] for m in docker_engine.containers.get(f"project_{project_id}_db").attrs["Mounts"]}
    assert mounts.pop("/var/lib/postgresql/data") == f"project_{project_id}_data"
    assert sorted(mounts) == ["/etc/berth", "/tmp"]
    for name in mounts.values():
        assert docker_engine.api.inspect_volume(name)["Labels"]["berth.own-volume-of"] == f"project_{project_id}_db"
    assert Project.objects.exclude(db_port=None).count() == 1  # no port reserved by a ghost
    assert list(project.operations.order_by("created_at").values_list("kind", "state")) == [
        ("create", "failed"),
        ("start", "succeeded"),
    ]
    with psycopg.connect(project.db_url(), connect_timeout=3) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)


def test_a_killed_database_turns_health_down_within_2_s_under_watch_and_start_repairs_it(
    one_worker, user, client, docker_engine, tmp_path
):
    headers = bearer(user)
    code, created = api(client, headers, "post", "/v1/projects", {"name": "watched"})
    assert (code, created["status"]) == (201, "running"), created
    project_id = created["project_id"]
    watcher = Watcher(tmp_path / "watcher.log", "--interval", "3")  # a full pass soon after the repair
    try:
        watcher.wait_line(lambda line: line.startswith("full pass:"), timeout_s=30, what="the watcher's first pass")
        killed_at = time.monotonic()
        docker_engine.containers.get(f"project_{project_id}_db").kill()
        (tmp_path / "watcher.log").open("a").write(f"{killed_at:.3f} (test) docker kill\n")

        # The bound: down within 2 s of the kill, from the engine's event.
        seen_at, line = watcher.wait_line(
            lambda line: line.startswith(f"{project_id}: db die"), after=killed_at, timeout_s=2, what="the die event"
        )
        assert line == f"{project_id}: db die → down"
        assert seen_at - killed_at < 2.0
        project = Project.objects.get(public_id=project_id)
        assert (project.status, project.health) == ("running", "down")

        started_at = time.monotonic()
        code, started = api(client, headers, "post", f"/v1/projects/{project_id}/start")
        assert (code, started["status"], started["health"]) == (200, "running", "healthy"), started
        # The repair's own events are its operation's, which records the health: the watcher never reads them as
        # anything (so never as down), and the next full pass agrees.
        watcher.wait_line(lambda line: line.startswith("full pass:"), after=started_at, timeout_s=10, what="a full pass after the start")
        assert not [line for at, line in list(watcher.lines) if at > started_at and line.startswith(project_id)]
        assert Project.objects.get(public_id=project_id).health == "healthy"
    finally:
        assert watcher.stop() == 0  # a clean stop on SIGTERM


def test_containers_removed_behind_berths_back_are_reported_missing_and_start_recreates_them_with_the_data(
    one_worker, user, client, docker_engine
):
    headers = bearer(user)
    code, created = api(client, headers, "post", "/v1/projects", {"name": "vanishing"})
    assert code == 201, created
    project = Project.objects.get(public_id=created["project_id"])
    with psycopg.connect(project.db_url(), connect_timeout=3) as conn:
        conn.execute("CREATE TABLE items (id serial PRIMARY KEY, name text NOT NULL)")
        conn.execute("INSERT INTO items (name) VALUES ('anchor'), ('rope')")
    ports = (project.db_port, project.api_port)

    for service in ("api", "db"):
        docker_engine.containers.get(f"project_{project.public_id}_{service}").remove(force=True)

    report = projects_sync()
    project.refresh_from_db()
    assert (project.status, project.health) == ("running", "missing")
    [drift] = [d for d in report.drift if d.project_id == project.public_id]
    assert drift.problem == "running, but its containers are missing" and drift.fix.startswith("start")
    [entry] = drift_report().of(project.public_id)
    assert entry.problem == "running, but its containers are missing"
    # Reported, not repaired: nothing came back by itself.
    assert objects_of(docker_engine, project.public_id)["containers"] == []

    code, started = api(client, headers, "post", f"/v1/projects/{project.public_id}/start")
    assert (code, started["status"], started["health"]) == (200, "running", "healthy"), started
    project.refresh_from_db()
    assert (project.db_port, project.api_port) == ports
    assert rows(project) == ["anchor", "rope"]
    assert objects_of(docker_engine, project.public_id) == one_stack(project.public_id)
    # Clean once the engine's own healthcheck has run on the new db container (it says "starting" first).
    wait_for(lambda: drift_report().of(project.public_id) == [], timeout_s=30, what="the drift to clear", interval_s=0.5)


def test_a_port_held_by_a_foreign_process_is_skipped_and_the_project_runs_beside_it(one_worker, user, client, settings):
    headers = bearer(user)
    low_db, high_db = settings.BERTH_DB_PORTS
    low_api, high_api = settings.BERTH_API_PORTS
    reserved = set(Project.objects.values_list("db_port", flat=True)) | set(Project.objects.values_list("api_port", flat=True))
    foreign = []
    try:
        # The next free db port and api port are taken by a process that is not Berth.
        for low, high in ((low_db, high_db), (low_api, high_api)):
            for port in range(low, high + 1):
                if port in reserved:
                    continue
                sock = socket.socket()
                try:
                    sock.bind((settings.BERTH_PUBLISH_HOST, port))
                except OSError:
                    sock.close()
                    continue
                sock.listen()
                foreign.append(sock)
                break
        held = [s.getsockname()[1] for s in foreign]
        assert len(held) == 2

        code, created = api(client, headers, "post", "/v1/projects", {"name": "neighbour"})
        assert (code, created["status"]) == (201, "running"), created
        project = Project.objects.get(public_id=created["project_id"])
        assert project.db_port not in held and project.api_port not in held
        assert project.db_port > held[0] and project.api_port > held[1]  # the next ones after the held ports
        # The foreign listeners still own their ports.
        for port in held:
            with socket.create_connection((settings.BERTH_PUBLISH_HOST, port), timeout=2):
                pass
    finally:
        for sock in foreign:
            sock.close()


@pytest.fixture
def everything_at_debug(caplog, settings):
    """Every logger at DEBUG, SQL included, captured; levels restored afterwards."""
    settings.DEBUG = True
    loggers = [logging.getLogger(name) for name in list(logging.root.manager.loggerDict)]
    saved = [(lg, lg.level, lg.propagate) for lg in loggers if isinstance(lg, logging.Logger)]
    for lg, _, _ in saved:
        lg.setLevel(logging.DEBUG)
        lg.propagate = True
    caplog.set_level(logging.DEBUG)
    connection.force_debug_cursor = True  # Django logs every statement with its parameters
    yield caplog
    connection.force_debug_cursor = False
    for lg, level, propagate in saved:
        lg.setLevel(level)
        lg.propagate = propagate


@pytest.mark.backend
def test_no_secret_reaches_any_log_at_debug_through_a_whole_lifecycle_and_a_failure(
    transactional_db, user, client, docker_engine, tmp_path, settings, everything_at_debug
):
    # Operations run inline here, so the docker SDK, urllib3, psycopg and Django's
    # SQL log all land in one capture, every one of them at DEBUG.
    settings.TASKS = {"default": {"BACKEND": "django.tasks.backends.immediate.ImmediateBackend"}}
    headers = bearer(user)
    watcher = Watcher(tmp_path / "watcher.log", "--interval", "2", BERTH_LOG_LEVEL="DEBUG", DEBUG="1")
    try:
        code, created = api(client, headers, "post", "/v1/projects", {"name": "secretive"})
        assert code == 201, created
        pid = created["project_id"]
        for method, path, body in [
            ("post", f"/v1/projects/{pid}/stop", None),
            ("post", f"/v1/projects/{pid}/start", None),
            ("delete", f"/v1/projects/{pid}", None),
            ("post", f"/v1/projects/{pid}/restore", None),
            ("post", f"/v1/projects/{pid}/start", None),
            ("delete", f"/v1/projects/{pid}", None),
            ("post", f"/v1/projects/{pid}/purge", {"confirm": pid}),
        ]:
            code, answer = api(client, headers, method, path, body)
            assert code == 200 and answer["operation"]["state"] == "succeeded", answer
        # And a failure: the api image is missing, the create fails naming it.
        settings.BERTH_POSTGRAPHILE_IMAGE = "offline/postgraphile:missing"
        code, failed = api(client, headers, "post", "/v1/projects", {"name": "doomed"})
        assert (code, failed["operation"]["state"]) == (201, "failed"), failed
        done = time.monotonic()
        watcher.wait_line(lambda line: line.startswith("full pass:"), after=done, timeout_s=60, what="a watcher pass after it all")
    finally:
        watcher.stop()

    secrets_ = [s for p in Project.objects.all() for s in (p.db_password, p.jwt_secret)]
    assert len(secrets_) == 4
    captured = everything_at_debug.records
    debug_from = {r.name.split(".")[0] for r in captured if r.levelno == logging.DEBUG}
    assert {"django", "urllib3", "docker"} <= debug_from  # the scan read DEBUG output, not silence
    texts = {"the test process's log": "\n".join(everything_at_debug.text.splitlines())}
    texts |= {path.name: path.read_text() for path in tmp_path.glob("*.log")}
    texts["operation errors"] = "\n".join(Operation.objects.values_list("error", flat=True))
    for name, text in texts.items():
        for secret in secrets_:
            assert secret not in text, f"a project secret is in {name}"


@pytest.mark.backend  # the module's check after its backend tests, on PostgreSQL too
def test_integration_reliability_runs_leave_nothing_labelled_for_this_run(docker_engine):
    assert docker_engine.containers.list(all=True, filters={"label": TEST_LABEL}) == []
