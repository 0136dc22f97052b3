"""Losing a node of the test swarm (`docker kill berth-swarm-n2` on the host engine): the data stays pinned.

Its projects show `node_down` within a sync pass, their dbs are never
rescheduled onto another node's empty volume, purge is refused naming the node
until an operator forgets it, and when the node is back a running project runs
again by itself and a deleted one is restored with every row.
"""


import contextlib
import threading

import psycopg
import pytest
from django.db import connection

from projects.models import ForgottenNode, Project
from projects.runtime import get_runtime
from projects.services.fleet.drift import drift_report
from projects.services.fleet.watcher import projects_sync, sync_watch
from tests.conftest import bearer
from tests.engine import api_act, wait_for

pytestmark = [pytest.mark.swarm]

NODE_CONTAINER = "berth-swarm-n2"  # n2: never the manager (n1), whose loss would stop the whole swarm


act = api_act


def rows(db_url: str) -> list[str]:
    with psycopg.connect(db_url, connect_timeout=3) as conn:
        return [name for (name,) in conn.execute("SELECT name FROM items ORDER BY id")]


def node_label(manager, name: str, key: str, value: str | None) -> None:
    node = next(n for n in manager.nodes() if (n["Spec"].get("Labels") or {}).get("berth.node") == name)
    labels = dict(node["Spec"].get("Labels") or {})
    if value is None:
        labels.pop(key, None)
    else:
        labels[key] = value
    manager.update_node(node["ID"], node["Version"]["Index"], {**node["Spec"], "Labels": labels})


@pytest.fixture
def n1_drained(swarm):
    """n1 drained for Berth (label berth.drain=true): new projects go to n2."""
    manager = swarm["n1"].api
    node_label(manager, "n1", "berth.drain", "true")
    yield
    node_label(manager, "n1", "berth.drain", None)


@pytest.fixture
def three_fit_on_a_node(swarm_env, settings):
    """Smaller projects (512 MiB a stack, not 768), so three fit on a test node's 2 GiB; before swarm_workers, which reads the env."""
    swarm_env.update(BERTH_DB_MEMORY="320m", BERTH_API_MEMORY="192m")
    settings.BERTH_DB_MEMORY, settings.BERTH_API_MEMORY = "320m", "192m"


@pytest.fixture
def node_killer(docker_engine):
    """Kills n2's node container on the host engine; it is running again after the test, whatever happened."""
    api = docker_engine.api

    def ready() -> bool:
        return any(n.name == "n2" and n.ready for n in get_runtime().nodes())

    yield api
    if not api.inspect_container(NODE_CONTAINER)["State"]["Running"]:
        api.start(NODE_CONTAINER)
    wait_for(ready, timeout_s=90, what="n2 back Ready", interval_s=1)


def health(pid: str) -> str:
    return Project.objects.get(public_id=pid).health


def health_after_sync(pid: str) -> str:
    projects_sync()
    return health(pid)


@contextlib.contextmanager
def watching():
    """`sync_watch` in a thread, its full pass 10 minutes apart: what it sees sooner, an event showed it."""
    lines: list[str] = []
    stop = threading.Event()

    def run() -> None:
        try:
            sync_watch(stop=stop, full_pass_s=600, log=lines.append)
        finally:
            connection.close()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        yield lines
    finally:
        stop.set()
        thread.join(timeout=30)


def created_with_rows(client, headers, name: str, count: int) -> tuple[str, str]:
    code, created = act(client, headers, "post", "/v1/projects", {"name": name})
    assert code == 201 and created["status"] == "running" and created["node"] == "n2", created
    with psycopg.connect(created["db_url"], connect_timeout=3) as conn:
        conn.execute("CREATE TABLE items (id serial PRIMARY KEY, name text NOT NULL)")
        conn.execute("INSERT INTO items (name) SELECT 'row ' || n FROM generate_series(1, %s) AS n", (count,))
    return created["project_id"], created["db_url"]


def a_replacement_waits(manager, pid: str) -> bool:
    """Swarm has made the db a new task (desired running) and found no node for it: the pin holds."""
    tasks = manager.tasks(filters={"service": f"project_{pid}_db", "desired-state": "running"})
    return any(t["Status"]["State"] == "pending" and not t.get("NodeID") for t in tasks)


# One loss of n2 for everything a dead node must not do: the kill and the
# return cost most of this test's time on the swarm (CI budget: issue 11).
def test_a_dead_node_keeps_its_data_pinned_until_it_returns_or_is_forgotten(
    three_fit_on_a_node, swarm_workers, user, staff, client, swarm, n1_drained, node_killer
):
    headers = bearer(user)
    keel, keel_url = created_with_rows(client, headers, "keel", 100)  # deleted while down, restored after
    mast, mast_url = created_with_rows(client, headers, "mast", 3)  # left running: back by itself
    spar, _ = created_with_rows(client, headers, "spar", 1)  # deleted while down, purged once n2 is forgotten
    everything = rows(keel_url)

    # The watcher, whose full pass is far off: the node's event makes it look now.
    with watching() as lines:
        wait_for(lambda: any(line.startswith("full pass") for line in lines), timeout_s=30, what="the watcher's first pass")
        node_killer.kill(NODE_CONTAINER)
        wait_for(lambda: health(keel) == "node_down", timeout_s=90, what="the watcher to see n2 down", interval_s=1)
    assert any(line.startswith("node n2: update: a full pass now") for line in lines), lines
    assert {p.public_id: p.health for p in Project.objects.filter(public_id__in=[keel, mast, spar])} == dict.fromkeys([keel, mast, spar], "node_down")
    answer = client.get(f"/v1/projects/{keel}", **headers).json()
    assert (answer["health"], answer["node"]) == ("node_down", "n2")
    # Drift says the data waits on the node: not missing, nothing to repair.
    waiting = {e.subject: e.problem for e in drift_report().entries if e.kind == "node"}
    assert waiting == {pid: "running, but its node n2 is down: its data volume waits there" for pid in (keel, mast, spar)}

    # Swarm tries to place the db again (a new task, desired running) and cannot: pinned to n2.
    manager = swarm["n1"].api
    wait_for(lambda: a_replacement_waits(manager, keel), timeout_s=60, what="Swarm to try a replacement db task", interval_s=1)
    n1 = _node_id(manager, "n1")
    assert not [t for t in manager.tasks(filters={"service": f"project_{keel}_db"}) if t.get("NodeID") == n1], "a task of the db was placed on n1"
    # Nothing of it on n1: no container, no (empty) volume.
    for pid in (keel, mast, spar):
        label = f"berth.project={pid}"
        assert swarm["n1"].api.containers(all=True, filters={"label": label}) == []
        assert (swarm["n1"].api.volumes(filters={"label": label}).get("Volumes") or []) == []

    # Purge needs the data's node: refused naming it (deleted first; the volume waits on n2).
    for pid in (keel, spar):
        code, deleted = act(client, headers, "delete", f"/v1/projects/{pid}")
        assert (code, deleted["status"]) == (200, "deleted"), deleted["operation"]
    code, refused = act(client, headers, "post", f"/v1/projects/{spar}/purge", {"confirm": spar}, wait=0)
    assert code == 409 and refused["error"]["code"] == "node_down" and refused["error"]["node"] == "n2", refused
    assert "node n2" in refused["error"]["message"]

    # An operator gives n2 up: spar can be purged; its volume is left to the node.
    forget = client.post("/v1/nodes/n2/forget", data={"confirm": "n2"}, content_type="application/json", **bearer(staff))
    assert forget.status_code == 200 and sorted(forget.json()["projects"]) == sorted([keel, mast, spar]), forget.content
    code, purged = act(client, headers, "post", f"/v1/projects/{spar}/purge", {"confirm": spar})
    assert (code, purged["status"]) == (200, "purged"), purged["operation"]

    # n2 comes back with its volumes: mast runs again by itself; keel is restored with every row.
    node_killer.start(NODE_CONTAINER)
    wait_for(lambda: health_after_sync(mast) == "healthy", timeout_s=90, what="mast healthy again", interval_s=1)
    assert wait_for(lambda: _rows_or_none(mast_url), timeout_s=30, what="mast's db to answer") == ["row 1", "row 2", "row 3"]
    assert Project.objects.get(public_id=mast).status == "running"
    assert not ForgottenNode.objects.exists(), "n2 is seen up again: no longer forgotten"
    code, back = act(client, headers, "post", f"/v1/projects/{keel}/restore")
    assert (code, back["status"]) == (200, "stopped"), back["operation"]
    code, started = act(client, headers, "post", f"/v1/projects/{keel}/start")
    assert (code, started["status"]) == (200, "running"), started["operation"]
    assert rows(keel_url) == everything
    assert wait_for(lambda: health_after_sync(keel) == "healthy", timeout_s=30, what="healthy again")
    # What spar left on n2 is an orphan now, reported with its fix.
    orphans = [e for e in drift_report().entries if e.kind == "orphan" and spar in e.subject]
    assert [(e.subject, e.fix) for e in orphans] == [(f"project_{spar}_data", f"nothing automatic: inspect it, then `docker volume rm project_{spar}_data` if it is not needed")]


def _rows_or_none(db_url: str) -> list[str] | None:
    try:
        return rows(db_url)
    except psycopg.OperationalError:
        return None


def _node_id(manager, name: str) -> str:
    return next(n["ID"] for n in manager.nodes() if (n["Spec"].get("Labels") or {}).get("berth.node") == name)
