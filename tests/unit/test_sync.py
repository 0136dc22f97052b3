"""Sync against FakeRuntime: health follows the engine, drift is reported, nothing is removed."""

import threading
from dataclasses import replace
import time

import pytest

from projects.models import Project, installation_id
from projects.runtime import NODE_EVENT, EngineEvent, RuntimeFailure, RuntimeUnavailable
from projects.runtime.base import ContainerState
from projects.services.lifecycle import requests as lifecycle
from projects.services.fleet.watcher import projects_sync, sync_watch
from tests.factories import project_made

H = Project.Health
S = Project.Status


def test_a_healthy_stack_is_reported_healthy_without_drift(user, fake_runtime):
    project = project_made(user)
    report = projects_sync()
    project.refresh_from_db()
    assert project.health == H.HEALTHY and project.observed_at is not None
    assert report.drift == [] and report.checked == 1


def test_a_vanished_container_turns_health_missing_and_is_drift_fixed_by_start(user, fake_runtime):
    project = project_made(user)
    del fake_runtime.containers_by_name[f"project_{project.public_id}_db"]
    report = projects_sync()
    project.refresh_from_db()
    assert (project.status, project.health) == ("running", H.MISSING)  # sync never changes status
    [drift] = report.drift
    assert drift.project_id == project.public_id and "missing" in drift.problem and "start" in drift.fix
    lifecycle.project_start(project=project)
    projects_sync()
    project.refresh_from_db()
    assert project.health == H.HEALTHY


def test_an_exited_container_turns_health_down_or_unhealthy(user, fake_runtime):
    project = project_made(user)
    fake_runtime.set_status(f"project_{project.public_id}_api", "exited")
    projects_sync()
    project.refresh_from_db()
    assert project.health == H.UNHEALTHY  # the database still runs
    fake_runtime.set_status(f"project_{project.public_id}_db", "exited")
    report = projects_sync()
    project.refresh_from_db()
    assert project.health == H.DOWN
    assert "stopped" in report.drift[0].problem


def test_a_stopped_database_is_down_even_while_the_api_runs(user, fake_runtime):
    # The database is the project: `docker kill` of the db alone must read as down.
    project = project_made(user)
    fake_runtime.set_status(f"project_{project.public_id}_db", "exited")
    [drift] = projects_sync().drift
    project.refresh_from_db()
    assert project.health == H.DOWN
    assert drift.problem == "running, but its database container is stopped" and "start" in drift.fix


def test_an_unhealthy_healthcheck_is_unhealthy(user, fake_runtime):
    project = project_made(user)
    fake_runtime.set_status(f"project_{project.public_id}_db", "running", "unhealthy")
    projects_sync()
    project.refresh_from_db()
    assert project.health == H.UNHEALTHY


def test_a_stopped_project_with_stopped_containers_is_not_drift(user, fake_runtime):
    project = project_made(user)
    lifecycle.project_stop(project=project)
    report = projects_sync()
    project.refresh_from_db()
    assert project.health == H.DOWN and report.drift == []


def test_an_unknown_berth_container_is_reported_and_never_removed(user, fake_runtime):
    stray = ContainerState(name="project_ffffffffffff_db", project_id="ffffffffffff", service="db", status="running", install=installation_id())
    fake_runtime.containers_by_name[stray.name] = stray
    report = projects_sync()
    [drift] = report.drift
    assert drift.project_id == "ffffffffffff" and "without a project" in drift.problem
    assert stray.name in fake_runtime.containers_by_name
    assert fake_runtime.calls["stack_remove_containers"] == fake_runtime.calls["stack_purge"] == 0


def test_containers_of_a_deleted_project_are_drift(user, fake_runtime):
    project = project_made(user)
    lifecycle.project_delete(project=project)
    stray = ContainerState(name=f"project_{project.public_id}_db", project_id=project.public_id, service="db", status="running")
    fake_runtime.containers_by_name[stray.name] = stray
    [drift] = projects_sync().drift
    assert "deleted, but containers exist" in drift.problem and "delete" in drift.fix


def test_one_pass_makes_one_engine_call_whatever_the_number_of_projects(user, fake_runtime):
    for n in range(5):
        project_made(user, f"s{n}")
    fake_runtime.calls.clear()
    projects_sync()
    assert sum(fake_runtime.calls.values()) == 1


def test_an_unreachable_engine_makes_health_unknown_and_changes_no_status(user, fake_runtime):
    project = project_made(user)
    fake_runtime.fail_with("containers", RuntimeUnavailable("Docker Engine unreachable at unix:///nowhere"))
    report = projects_sync()
    project.refresh_from_db()
    assert report.engine_error.startswith("Docker Engine unreachable")
    assert (project.status, project.health) == ("running", H.UNKNOWN)


def test_a_backups_throwaway_container_is_not_drift_for_a_deleted_project(user, fake_runtime):
    project = project_made(user)
    lifecycle.project_delete(project=project)
    verifier = ContainerState(
        name=f"project_{project.public_id}_verify_abc", project_id=project.public_id, service="backup-verify", status="running"
    )
    fake_runtime.containers_by_name[verifier.name] = verifier
    assert projects_sync().drift == []


def test_a_healthcheck_still_starting_keeps_a_project_just_proven_healthy(user, fake_runtime):
    # Right after a start the engine's healthcheck says "starting": no verdict,
    # so the health the operation proved (a real query) stands.
    project = project_made(user)
    fake_runtime.set_status(f"project_{project.public_id}_db", "running", "starting")
    projects_sync()
    project.refresh_from_db()
    assert project.health == H.HEALTHY


def test_a_healthcheck_still_starting_after_an_outage_is_not_yet_healthy(user, fake_runtime):
    project = project_made(user)
    Project.objects.filter(pk=project.pk).update(health=H.DOWN)  # the watcher saw it die
    fake_runtime.set_status(f"project_{project.public_id}_db", "running", "starting")
    projects_sync()
    project.refresh_from_db()
    assert project.health == H.UNHEALTHY


# --- the watcher ------------------------------------------------------------------


@pytest.fixture(autouse=True)
def _keep_the_test_connection(monkeypatch):
    # The watcher drops stale connections between passes; the test's one lives in a transaction.
    monkeypatch.setattr("projects.services.fleet.watcher.close_old_connections", lambda: None)


class StopAfter(threading.Event):
    """A stop switch whose waits return at once and are recorded; it trips after `waits` of them."""

    def __init__(self, waits: int) -> None:
        super().__init__()
        self.waits: list[float] = []
        self.limit = waits

    def wait(self, timeout=None) -> bool:
        self.waits.append(timeout)
        if len(self.waits) >= self.limit:
            self.set()
        return self.is_set()


def watch(fake_runtime, *, until, stop: threading.Event | None = None, full_pass_s: float = 5.0) -> list[str]:
    """Run sync_watch until a logged line satisfies `until` (a timer bounds it at 10 s); returns the log.

    In this thread: the test's database transaction is only visible here.
    """
    lines: list[str] = []
    stop = stop or threading.Event()

    def log(line: str) -> None:
        lines.append(line)
        if until(line):
            stop.set()

    guard = threading.Timer(10, stop.set)
    guard.start()
    try:
        sync_watch(stop=stop, full_pass_s=full_pass_s, runtime=fake_runtime, log=log)
    finally:
        guard.cancel()
    return lines


def test_a_dying_db_container_turns_health_down_from_its_event(user, fake_runtime):
    project = project_made(user)
    name = f"project_{project.public_id}_db"

    def kill_after_first_pass(line: str) -> bool:
        if line.startswith("full pass"):
            fake_runtime.set_status(name, "exited")
            fake_runtime.pending_events.append(EngineEvent(project.public_id, "db", "die"))
        return "→" in line

    lines = watch(fake_runtime, until=kill_after_first_pass, full_pass_s=30.0)
    project.refresh_from_db()
    assert f"{project.public_id}: db die → down" in lines
    assert project.health == H.DOWN and project.status == S.RUNNING


def test_a_swarm_node_event_makes_the_watcher_pass_over_every_project_at_once(user, fake_runtime):
    project = project_made(user)
    passes = []

    def node_down_after_first_pass(line: str) -> bool:
        if line.startswith("full pass"):
            passes.append(line)
            if len(passes) == 1:
                fake_runtime.set_status(f"project_{project.public_id}_db", "exited")
                fake_runtime.pending_events.append(EngineEvent("", NODE_EVENT, "node n2: update"))
        return len(passes) == 2

    lines = watch(fake_runtime, until=node_down_after_first_pass, full_pass_s=30.0)  # only the event can make a second pass
    assert "node n2: update: a full pass now" in lines
    project.refresh_from_db()
    assert project.health == H.DOWN


def test_healthcheck_exec_events_do_not_make_the_watcher_read_the_engine(user, fake_runtime):
    project = project_made(user)
    execs = [EngineEvent(project.public_id, "db", f"exec_{a}: pg_isready -h 127.0.0.1") for a in ("create", "start", "die")]

    def feed(line: str) -> bool:
        if line.startswith("full pass"):
            fake_runtime.pending_events.extend([*execs, EngineEvent(project.public_id, "api", "health_status: healthy")])
            fake_runtime.calls.clear()
        return "→" in line

    lines = watch(fake_runtime, until=feed, full_pass_s=30.0)
    assert fake_runtime.calls["stack_state"] == 1  # the health_status event only
    assert [line for line in lines if "exec_" in line] == []


def test_events_of_a_project_an_operation_is_changing_do_not_make_the_watcher_read_the_engine(user, fake_runtime):
    project = project_made(user)
    Project.objects.filter(pk=project.pk).update(status=S.PROVISIONING)  # a create in flight: its events are its own
    events = [EngineEvent(project.public_id, service, action) for service in ("db", "api") for action in ("create", "start")]

    passes: list[str] = []

    def feed(line: str) -> bool:
        if line.startswith("full pass"):
            passes.append(line)
            if len(passes) == 1:  # after the first pass, the create's events; the second pass ends the watch
                fake_runtime.pending_events.extend(events)
                fake_runtime.calls.clear()
        return len(passes) == 2 or "→" in line

    lines = watch(fake_runtime, until=feed, full_pass_s=0.5)
    assert len(passes) == 2 and not fake_runtime.pending_events, lines  # the events were read, and skipped
    assert not [line for line in lines if "→" in line]
    project.refresh_from_db()
    assert project.status == S.PROVISIONING


def test_an_unreachable_engine_is_logged_retried_with_backoff_and_never_ends_the_watch(user, fake_runtime):
    project = project_made(user)
    fake_runtime.fail_with("containers", RuntimeUnavailable("Docker Engine unreachable at unix:///nowhere"))
    stop = StopAfter(waits=7)
    lines = watch(fake_runtime, until=lambda line: False, stop=stop)
    project.refresh_from_db()
    assert stop.waits == [1, 2, 4, 8, 16, 30, 30]
    assert lines[0] == "engine unreachable, retrying in 1 s: Docker Engine unreachable at unix:///nowhere"
    assert project.health == H.UNKNOWN and project.status == S.RUNNING


def test_the_watcher_comes_back_when_the_engine_does(user, fake_runtime):
    project = project_made(user)
    fake_runtime.fail_with("containers", RuntimeUnavailable("Docker Engine unreachable at unix:///nowhere"))

    def heal(line: str) -> bool:
        if line.startswith("engine unreachable"):
            fake_runtime.heal()
        return line.startswith("full pass")

    lines = watch(fake_runtime, until=heal)
    project.refresh_from_db()
    assert lines[-1] == "full pass: 1 project(s) checked, 1 changed, 0 drift"
    assert project.health == H.HEALTHY


def test_an_engine_error_while_following_events_goes_back_to_a_full_pass(user, fake_runtime):
    project_made(user)
    fake_runtime.fail_with("events", RuntimeFailure("the engine refused: events are off"))
    passes = []

    def count(line: str) -> bool:
        passes.append(line)
        return sum(1 for p in passes if p.startswith("full pass")) >= 2

    lines = watch(fake_runtime, until=count)
    assert "engine error while following events: the engine refused: events are off" in lines


def test_event_windows_follow_on_from_the_pass_and_each_other_without_gaps(user, fake_runtime, monkeypatch):
    project_made(user)
    calls: list[dict[str, float]] = []
    passes: list[float] = []
    original_containers = fake_runtime.containers

    def containers():
        passes.append(time.time())
        return original_containers()

    def events(*, timeout_s=None, since=None):
        # Like the engine: the stream stays open until its window ends.
        call = {"since": since, "started": time.time()}
        time.sleep(timeout_s)
        call["ended"] = time.time()
        calls.append(call)
        return iter(())

    monkeypatch.setattr(fake_runtime, "containers", containers)
    monkeypatch.setattr(fake_runtime, "events", events)
    monkeypatch.setattr("projects.services.fleet.watcher.EVENT_WINDOW_S", 0.1)
    stop = threading.Event()
    guard = threading.Timer(1.5, stop.set)
    guard.start()
    sync_watch(stop=stop, full_pass_s=0.5, runtime=fake_runtime, log=lambda line: None)
    guard.cancel()

    assert len(passes) >= 2 and len(calls) >= 6
    for n, call in enumerate(calls):
        last_pass = max(p for p in passes if p < call["started"])
        previous = calls[n - 1] if n else None
        if previous is None or previous["started"] < last_pass:
            # The first window after a pass replays from before the pass read the engine...
            assert call["since"] <= last_pass
        else:
            # ...and each later one starts where the previous ended: nothing falls in between.
            assert previous["started"] <= call["since"] <= previous["ended"]


def test_a_die_event_wins_over_a_container_list_that_still_says_running(user, fake_runtime):
    # The engine emits "die" before its list catches up; the event is the truth.
    project = project_made(user)

    def die_after_first_pass(line: str) -> bool:
        if line.startswith("full pass"):
            fake_runtime.pending_events.append(EngineEvent(project.public_id, "db", "die"))
        return "→" in line

    lines = watch(fake_runtime, until=die_after_first_pass, full_pass_s=30.0)
    assert f"{project.public_id}: db die → down" in lines


def test_the_watcher_logs_a_drift_once_and_again_when_it_is_gone(user, fake_runtime):
    project = project_made(user)
    del fake_runtime.containers_by_name[f"project_{project.public_id}_db"]
    passes = []

    def third_pass(line: str) -> bool:
        if line.startswith("full pass"):
            passes.append(line)
            if len(passes) == 2:
                lifecycle.project_start(project=project)  # repairs it before the third pass
        return len(passes) == 3

    lines = watch(fake_runtime, until=third_pass, full_pass_s=0.05)
    drift_lines = [line for line in lines if line.startswith("drift")]
    assert drift_lines == [
        f"drift: {project.public_id}: running, but its containers are missing (fix: start recreates or restarts them on its data volume (and refuses if that is gone))",
        f"drift resolved: {project.public_id}: running, but its containers are missing",
    ]


def pooled_stack(settings) -> Project:
    from projects.services.pool.requests import pool_refill

    settings.BERTH_WARM_POOL = ((None, None, 1),)
    pool_refill()
    settings.BERTH_WARM_POOL = ()
    return Project.objects.get(owner__isnull=True, status=S.POOLED)


def test_a_healthy_pooled_stack_is_berths_no_drift_and_no_orphan(db, settings, fake_runtime):
    project = pooled_stack(settings)
    report = projects_sync()
    project.refresh_from_db()
    assert project.health == H.HEALTHY and report.drift == [] and report.checked == 1


def test_a_pooled_stack_that_lost_a_container_is_missing_and_drift_the_pool_replaces(db, settings, fake_runtime):
    project = pooled_stack(settings)
    del fake_runtime.containers_by_name[f"project_{project.public_id}_api"]
    [drift] = projects_sync().drift
    project.refresh_from_db()
    assert (project.status, project.health) == (S.POOLED, H.MISSING)  # sync never changes status
    assert drift.project_id == project.public_id and "pooled" in drift.problem and "pool" in drift.fix


def test_the_watcher_fills_the_pool_after_its_pass_and_again_when_a_stack_is_taken(db, user, settings, fake_runtime):
    settings.BERTH_WARM_POOL = ((None, None, 1),)
    taken = []

    def take_once_filled(line: str) -> bool:
        if line.startswith("pool:") and not taken:
            # Taken between passes (as a claim whose own refill was lost would leave it):
            # the watcher's next event window refills, without waiting for a full pass.
            taken.append(Project.objects.filter(owner__isnull=True, status=S.POOLED).update(owner=user, status=S.RUNNING))
            return False
        return bool(taken) and line.startswith("pool:")

    lines = watch(fake_runtime, until=take_once_filled, full_pass_s=30.0)
    assert taken == [1]
    assert [line for line in lines if line.startswith("pool:")] == ["pool: 1 fill(s) and 0 drain(s) queued"] * 2
    assert [line for line in lines if line.startswith("full pass")] == ["full pass: 0 project(s) checked, 0 changed, 0 drift"]
    assert Project.objects.filter(owner__isnull=True, status=S.POOLED).count() == 1


def test_a_db_whose_node_is_down_is_node_down_and_drift_that_waits_for_the_node(user, fake_runtime):
    # On a Swarm the runtime marks a service pinned to a down node; its data is there, so nothing else is offered.
    project = project_made(user)
    name = f"project_{project.public_id}_db"
    fake_runtime.containers_by_name[name] = replace(fake_runtime.containers_by_name[name], status="created", node_down=True)
    [drift] = projects_sync().drift
    project.refresh_from_db()
    assert (project.status, project.health) == ("running", H.NODE_DOWN)
    assert "node holding its data is down" in drift.problem and "when its node is back" in drift.fix
    lifecycle.project_stop(project=project)
    project.refresh_from_db()
    fake_runtime.containers_by_name[name] = replace(fake_runtime.containers_by_name[name], status="exited", node_down=True)
    assert projects_sync().drift == []  # stopped, and its node down: nothing to repair
