"""The whole life of a project through the JSON API, on the real engine with real workers."""

import json
import urllib.error
import urllib.request

import psycopg
import pytest

from projects.models import Operation, Project
from tests.conftest import bearer
from tests.engine import api_act, TEST_LABEL, wait_for, Workers

pytestmark = pytest.mark.integration


def graphql(api_url: str, query: str, key: str | None = None) -> dict:
    headers = {"Content-Type": "application/json", **({"Authorization": f"Bearer {key}"} if key else {})}
    request = urllib.request.Request(f"{api_url}/graphql", data=json.dumps({"query": query}).encode(), headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return json.load(response)
    except urllib.error.HTTPError as exc:
        return json.load(exc)  # GraphQL errors come as 400 with a JSON body


def item_names(api_url: str, key: str | None) -> list[str] | None:
    answer = graphql(api_url, "{ allItems(orderBy: ID_ASC) { nodes { name } } }", key)
    if answer.get("errors"):
        return None  # PostGraphile has not picked the table up yet
    return [node["name"] for node in answer["data"]["allItems"]["nodes"]]


def rows(db_url: str) -> list[str]:
    with psycopg.connect(db_url, connect_timeout=3) as conn:
        return [name for (name,) in conn.execute("SELECT name FROM items ORDER BY id")]


def objects_of(docker_engine, project_id: str) -> dict[str, list[str]]:
    label = f"berth.project={project_id}"
    return {
        "containers": [c.name for c in docker_engine.containers.list(all=True, filters={"label": label})],
        "networks": [n.name for n in docker_engine.networks.list(filters={"label": label})],
        "volumes": [v.name for v in docker_engine.volumes.list(filters={"label": label})],
    }



def act(client, headers, method: str, path: str, body: dict | None = None, wait: int = 90):
    return api_act(client, headers, method, path, body, wait=wait)


@pytest.mark.backend
def test_project_lifecycle_keeps_data_and_urls_until_purge(workers, user, client, docker_engine):
    headers = bearer(user)
    code, created = act(client, headers, "post", "/v1/projects", {"name": "shop"})
    assert code == 201, created
    assert created["status"] == "running" and created["operation"]["state"] == "succeeded"
    project_id, db_url, api_url = created["project_id"], created["db_url"], created["api_url"]
    key = created["service_key"]  # anonymous requests read nothing that is not granted to anon

    # The db URL accepts the returned password; a table created there shows up in the API without a restart.
    with psycopg.connect(db_url, connect_timeout=3) as conn:
        conn.execute("CREATE TABLE items (id serial PRIMARY KEY, name text NOT NULL)")
        conn.execute("INSERT INTO items (name) VALUES ('anchor'), ('rope')")
    assert wait_for(lambda: item_names(api_url, key), timeout_s=20, what="the api to serve the new table") == ["anchor", "rope"]

    code, stopped = act(client, headers, "post", f"/v1/projects/{project_id}/stop")
    assert (code, stopped["status"]) == (200, "stopped")
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(db_url, connect_timeout=3)

    code, started = act(client, headers, "post", f"/v1/projects/{project_id}/start")
    assert (code, started["status"]) == (200, "running")
    assert rows(db_url) == ["anchor", "rope"]

    code, deleted = act(client, headers, "delete", f"/v1/projects/{project_id}")
    assert (code, deleted["status"]) == (200, "deleted")
    assert deleted["deleted_at"] and deleted["purge_after"]
    left = objects_of(docker_engine, project_id)
    assert left["containers"] == [] and left["volumes"] == [f"project_{project_id}_data"]

    code, restored = act(client, headers, "post", f"/v1/projects/{project_id}/restore")
    assert (code, restored["status"]) == (200, "stopped")
    assert (restored["db_url"], restored["api_url"]) == (db_url, api_url)
    assert restored["deleted_at"] is None

    code, started = act(client, headers, "post", f"/v1/projects/{project_id}/start")
    assert (code, started["status"]) == (200, "running")
    assert rows(db_url) == ["anchor", "rope"]
    assert item_names(api_url, key) == ["anchor", "rope"]

    assert act(client, headers, "delete", f"/v1/projects/{project_id}")[1]["status"] == "deleted"
    code, purged = act(client, headers, "post", f"/v1/projects/{project_id}/purge", {"confirm": project_id})
    assert (code, purged["status"]) == (200, "purged"), purged["operation"]["error"]
    assert purged["db_url"] is None and purged["api_url"] is None
    assert objects_of(docker_engine, project_id) == {"containers": [], "networks": [], "volumes": []}


@pytest.mark.backend
def test_five_creates_at_once_get_distinct_ports_and_all_run(workers, user, client):
    headers = bearer(user)
    answers = [client.post("/v1/projects", data={"name": f"p{n}"}, content_type="application/json", **headers) for n in range(5)]
    assert [a.status_code for a in answers] == [202] * 5
    ids = [a.json()["operation"]["operation_id"] for a in answers]

    def all_settled():
        ops = Operation.objects.filter(public_id__in=ids)
        return all(op.is_settled for op in ops) and list(ops)

    operations = wait_for(all_settled, timeout_s=120, what="five creates to settle", interval_s=0.25)
    assert {op.state for op in operations} == {"succeeded"}, [op.error for op in operations]
    projects = Project.objects.filter(operations__public_id__in=ids)
    assert {p.status for p in projects} == {"running"}
    ports = [p.db_port for p in projects] + [p.api_port for p in projects]
    assert len(set(ports)) == 10
    for project in projects:
        with psycopg.connect(project.db_url(), connect_timeout=3) as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)


def test_missing_image_fails_the_operation_naming_it_and_leaves_nothing(transactional_db, user, client, docker_engine, tmp_path):
    pool = Workers(1, tmp_path, BERTH_POSTGRAPHILE_IMAGE="offline/postgraphile:does-not-exist")
    pool.start()
    try:
        code, answer = act(client, bearer(user), "post", "/v1/projects", {"name": "broken"})
    finally:
        pool.stop()
    assert code == 201, answer  # settled, as failed
    assert answer["status"] == "failed"
    assert answer["operation"]["state"] == "failed"
    assert "offline/postgraphile:does-not-exist" in answer["operation"]["error"]
    assert objects_of(docker_engine, answer["project_id"]) == {"containers": [], "networks": [], "volumes": []}


@pytest.mark.backend  # the module's check after its backend tests, on PostgreSQL too
def test_integration_runs_leave_nothing_labelled_for_this_run(docker_engine):
    # Runs after the others in this module: the per-test teardown must have removed everything.
    assert docker_engine.containers.list(all=True, filters={"label": TEST_LABEL}) == []
