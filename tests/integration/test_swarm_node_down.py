"""Losing a node of the test swarm (`docker kill berth-swarm-n2` on the host engine): the data stays pinned.

The project shows `node_down` within a sync pass, its db is never rescheduled
onto another node's empty volume, purge is refused naming the node, and when
the node is back the project is healthy with every row.
"""


import psycopg
import pytest

from projects.models import Project
from projects.runtime import get_runtime
from projects.services.sync import projects_sync
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
def node_killer(docker_engine):
    """Kills n2's node container on the host engine; it is running again after the test, whatever happened."""
    api = docker_engine.api

    def ready() -> bool:
        return any(n.name == "n2" and n.ready for n in get_runtime().nodes())

    yield api
    if not api.inspect_container(NODE_CONTAINER)["State"]["Running"]:
        api.start(NODE_CONTAINER)
    wait_for(ready, timeout_s=90, what="n2 back Ready", interval_s=1)


def health_after_sync(pid: str) -> str:
    projects_sync()
    return Project.objects.get(public_id=pid).health


def test_a_dead_node_shows_node_down_never_reschedules_the_data_and_returns_healthy_with_every_row(
    swarm_workers, user, client, swarm, n1_drained, node_killer
):
    headers = bearer(user)
    code, created = act(client, headers, "post", "/v1/projects", {"name": "keel"})
    assert code == 201 and created["status"] == "running", created["operation"]
    pid, db_url = created["project_id"], created["db_url"]
    assert created["node"] == "n2"
    with psycopg.connect(db_url, connect_timeout=3) as conn:
        conn.execute("CREATE TABLE items (id serial PRIMARY KEY, name text NOT NULL)")
        conn.execute("INSERT INTO items (name) SELECT 'row ' || n FROM generate_series(1, 100) AS n")
    everything = rows(db_url)

    node_killer.kill(NODE_CONTAINER)
    wait_for(lambda: health_after_sync(pid) == "node_down", timeout_s=90, what="sync to see n2 down", interval_s=1)
    answer = client.get(f"/v1/projects/{pid}", **headers).json()
    assert (answer["health"], answer["node"]) == ("node_down", "n2")

    # Swarm tried to place the db again (a new task, desired running) and could not: pinned to n2.
    manager = swarm["n1"].api

    n1 = _node_id(manager, "n1")
    tasks = manager.tasks(filters={"service": f"project_{pid}_db"})
    assert tasks and not [t for t in tasks if t.get("NodeID") == n1], "a task of the db was placed on n1"
    # Nothing of it on n1: no container, no (empty) volume.
    label = f"berth.project={pid}"
    assert swarm["n1"].api.containers(all=True, filters={"label": label}) == []
    assert (swarm["n1"].api.volumes(filters={"label": label}).get("Volumes") or []) == []

    # Purge needs the data's node: refused naming it (deleted first; the volume waits on n2).
    code, deleted = act(client, headers, "delete", f"/v1/projects/{pid}")
    assert (code, deleted["status"]) == (200, "deleted"), deleted["operation"]
    code, refused = act(client, headers, "post", f"/v1/projects/{pid}/purge", {"confirm": pid}, wait=0)
    assert code == 409 and refused["error"]["code"] == "node_down" and refused["error"]["node"] == "n2", refused
    assert "node n2" in refused["error"]["message"]

    # The node comes back with its volume: restore, start, every row.
    node_killer.start(NODE_CONTAINER)
    wait_for(lambda: any(n.name == "n2" and n.ready for n in get_runtime().nodes()), timeout_s=90, what="n2 back Ready", interval_s=1)
    code, back = act(client, headers, "post", f"/v1/projects/{pid}/restore")
    assert (code, back["status"]) == (200, "stopped"), back["operation"]
    code, started = act(client, headers, "post", f"/v1/projects/{pid}/start")
    assert (code, started["status"]) == (200, "running"), started["operation"]
    assert rows(db_url) == everything
    assert wait_for(lambda: health_after_sync(pid) == "healthy", timeout_s=30, what="healthy again")


def test_a_running_project_comes_back_by_itself_when_its_node_returns(swarm_workers, user, client, swarm, n1_drained, node_killer):
    headers = bearer(user)
    code, created = act(client, headers, "post", "/v1/projects", {"name": "mast"})
    assert code == 201 and created["node"] == "n2", created
    pid, db_url = created["project_id"], created["db_url"]
    with psycopg.connect(db_url, connect_timeout=3) as conn:
        conn.execute("CREATE TABLE items (id serial PRIMARY KEY, name text NOT NULL)")
        conn.execute("INSERT INTO items (name) VALUES ('a'), ('b'), ('c')")
    node_killer.kill(NODE_CONTAINER)
    wait_for(lambda: health_after_sync(pid) == "node_down", timeout_s=90, what="sync to see n2 down", interval_s=1)
    node_killer.start(NODE_CONTAINER)
    wait_for(lambda: health_after_sync(pid) == "healthy", timeout_s=90, what="the project healthy again", interval_s=1)
    assert wait_for(lambda: _rows_or_none(db_url), timeout_s=30, what="the db to answer") == ["a", "b", "c"]
    assert Project.objects.get(public_id=pid).status == "running"


def _rows_or_none(db_url: str) -> list[str] | None:
    try:
        return rows(db_url)
    except psycopg.OperationalError:
        return None


def _node_id(manager, name: str) -> str:
    return next(n["ID"] for n in manager.nodes() if (n["Spec"].get("Labels") or {}).get("berth.node") == name)
