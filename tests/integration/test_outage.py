"""The Docker Engine unreachable: Berth keeps serving what it knows, says what is wrong, and loses nothing.

The shared dockerd is never stopped: Berth's processes are pointed at a socket
nothing listens on, which is what an engine that went away looks like to them,
while the test keeps its own client on the real engine to check that the
projects' containers were never touched.
"""

import pytest

from projects.models import Operation, Project
from projects.runtime import use_runtime
from projects.services.fleet import inspect as engine_service
from projects.services.fleet.watcher import projects_sync
from tests.conftest import bearer
from tests.engine import Workers, wait_for
from tests.integration.test_reliability import Watcher, api

pytestmark = pytest.mark.integration

UNREACHABLE = "unix:///tmp/berth-rely-no-engine.sock"  # nothing listens there
CLEAR_ERROR = f"Docker Engine unreachable at {UNREACHABLE}"


@pytest.fixture
def engine_gone(monkeypatch):
    """This process's runtime now talks to an engine that is not there; the real one is back afterwards."""

    def go() -> None:
        monkeypatch.setenv("DOCKER_HOST", UNREACHABLE)
        use_runtime(None)
        monkeypatch.setattr(engine_service, "_last_check", None)  # the banner's cached ping

    def back() -> None:
        monkeypatch.delenv("DOCKER_HOST", raising=False)
        use_runtime(None)
        monkeypatch.setattr(engine_service, "_last_check", None)

    go.back = back
    yield go
    back()


def dashboard_gets(project: Project) -> list[tuple[str, dict, int]]:
    """Every page of the dashboard a GET reaches, full and as HTMX partials, with the status each answers.

    286 is htmx's "stop polling": the project is settled, so its row and panel stop refreshing.
    """
    pid = project.public_id
    htmx = {"HTTP_HX_REQUEST": "true"}
    return [
        ("/", {}, 200),
        ("/", htmx, 200),
        ("/?deleted=1", {}, 200),
        ("/projects/new", {}, 200),
        (f"/projects/{pid}", {}, 200),
        (f"/projects/{pid}", htmx, 286),
        (f"/projects/{pid}/row", htmx, 286),
        (f"/projects/{pid}/logs", {}, 200),
        (f"/projects/{pid}/logs", htmx, 200),
        ("/tokens", {}, 200),
    ]


def test_with_the_engine_unreachable_pages_render_actions_fail_clearly_and_nothing_is_marked_lost(
    transactional_db, user, client, docker_engine, tmp_path, engine_gone
):
    headers = bearer(user)
    pool = Workers(1, tmp_path)
    pool.start()
    try:
        code, created = api(client, headers, "post", "/v1/projects", {"name": "steady"})
    finally:
        pool.stop()
    assert (code, created["status"]) == (201, "running"), created
    project = Project.objects.get(public_id=created["project_id"])
    before = {"ports": (project.db_port, project.api_port), "containers": sorted(
        (c.name, c.status) for c in docker_engine.containers.list(all=True, filters={"label": f"berth.project={project.public_id}"})
    )}  # fmt: skip

    engine_gone()
    outage = Workers(1, tmp_path, DOCKER_HOST=UNREACHABLE)
    outage.start()
    try:
        # Sync says so and changes no status: health becomes unknown, never missing.
        report = projects_sync()
        assert report.engine_error.startswith(CLEAR_ERROR)
        project.refresh_from_db()
        assert (project.status, project.health) == ("running", "unknown")

        # Every dashboard page renders from the database and shows the banner.
        client.force_login(user)
        for path, extra, status in dashboard_gets(project):
            response = client.get(path, **extra)
            assert response.status_code == status, (path, extra, response.status_code)
            if not extra:
                assert "Docker Engine" in response.content.decode(), f"{path} does not say the engine is unreachable"

        # The read-only API answers as usual.
        for path in ["/v1/projects", f"/v1/projects/{project.public_id}", f"/v1/projects/{project.public_id}/operations"]:
            assert client.get(path, **headers).status_code == 200, path

        # A dashboard action is refused with the engine's error, and nothing changes.
        response = client.post(f"/projects/{project.public_id}/stop")
        assert response.status_code == 503 and CLEAR_ERROR in response.content.decode()
        project.refresh_from_db()
        assert project.status == "running"

        # API actions are accepted; their operations fail with the clear error, never a 500.
        for action in ("stop", "start"):
            code, answer = api(client, headers, "post", f"/v1/projects/{project.public_id}/{action}", wait=60)
            assert code == 200, answer
            assert answer["operation"]["state"] == "failed" and answer["operation"]["error"].startswith(CLEAR_ERROR), answer
            assert answer["status"] == "running", answer  # back where it was: nothing happened to it
        code, answer = api(client, headers, "delete", f"/v1/projects/{project.public_id}", wait=60)
        assert code == 200 and answer["operation"]["error"].startswith(CLEAR_ERROR), answer
    finally:
        outage.stop()

    # Nothing was marked lost: the status it had, no deletion recorded, the ports
    # kept, every container untouched.
    project.refresh_from_db()
    assert project.status == "running"
    assert project.deleted_at is None and project.health == "unknown"
    assert (project.db_port, project.api_port) == before["ports"]
    assert sorted(
        (c.name, c.status) for c in docker_engine.containers.list(all=True, filters={"label": f"berth.project={project.public_id}"})
    ) == before["containers"]

    # The engine comes back: sync sees the containers healthy, and a retry converges. After an outage a
    # healthcheck still starting is no verdict of healthy (watcher.observed_health), and the engine's first
    # check comes 5 s after the start (runtime/base.py, HealthCheck): wait for it, as a later pass would.
    engine_gone.back()
    wait_for(
        lambda: docker_engine.api.inspect_container(f"project_{project.public_id}_db")["State"]["Health"]["Status"] == "healthy",
        timeout_s=30, what="the db's own healthcheck to have passed",
    )  # fmt: skip
    projects_sync()
    project.refresh_from_db()
    assert (project.status, project.health) == ("running", "healthy")
    pool = Workers(1, tmp_path)
    pool.start()
    try:
        code, started = api(client, headers, "post", f"/v1/projects/{project.public_id}/start")
    finally:
        pool.stop()
    assert (code, started["status"], started["health"]) == (200, "running", "healthy"), started
    assert Operation.objects.filter(project=project, state="failed").count() == 3


def test_the_watcher_reports_an_unreachable_engine_retries_with_backoff_and_never_crashes(transactional_db, user, tmp_path):
    watcher = Watcher(tmp_path / "watcher.log", DOCKER_HOST=UNREACHABLE)
    try:
        first = watcher.wait_line(lambda line: "retrying in 1 s" in line, timeout_s=30, what="the first report")
        assert first[1].startswith(f"engine unreachable, retrying in 1 s: {CLEAR_ERROR}")
        watcher.wait_line(lambda line: "retrying in 2 s" in line, timeout_s=10, what="the first backoff")
        watcher.wait_line(lambda line: "retrying in 4 s" in line, timeout_s=10, what="the second backoff")
        assert watcher.process.poll() is None  # still watching
    finally:
        assert watcher.stop() == 0


def test_restart_policy_brings_containers_back_with_the_engine(transactional_db, user, client, docker_engine, tmp_path):
    # The shared engine is never restarted here: what makes containers come back
    # after an engine restart is their restart policy, so that is what is pinned.
    pool = Workers(1, tmp_path)
    pool.start()
    try:
        code, created = api(client, bearer(user), "post", "/v1/projects", {"name": "sturdy"})
    finally:
        pool.stop()
    assert code == 201, created
    for service in ("db", "api"):
        container = docker_engine.containers.get(f"project_{created['project_id']}_{service}")
        assert container.attrs["HostConfig"]["RestartPolicy"]["Name"] == "unless-stopped"
