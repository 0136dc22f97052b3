"""Major-version upgrades on the real engine with real workers: 15 → 17 and back, a refused one, a failed one."""

import json
import secrets
import urllib.error
import urllib.request
from urllib.parse import quote

import psycopg
import pytest

from projects.models import Project
from tests.conftest import bearer
from tests.engine import api_act, Workers

pytestmark = pytest.mark.integration

ITEMS = "{ allItems(orderBy: ID_ASC) { nodes { name } } }"


@pytest.fixture
def workers(transactional_db, tmp_path, backup_dir):
    pool = Workers(1, tmp_path, BERTH_BACKUP_DIR=str(backup_dir))
    pool.start()
    yield pool
    pool.stop()


act = api_act


def query(db_url: str, statement: str) -> list[tuple]:
    with psycopg.connect(db_url, connect_timeout=5, autocommit=True) as conn:
        cursor = conn.execute(statement)
        return cursor.fetchall() if cursor.description else []


def as_admin(project: dict) -> str:
    """The project's URL as Berth's own superuser (a test's way to do what only a superuser may)."""
    row = Project.objects.get(public_id=project["project_id"])
    return project["db_url"].replace(f"app:{quote(row.db_password, safe='')}@", f"{row.admin_user}:{quote(row.admin_password, safe='')}@")


def graphql(api_url: str, text: str, key: str) -> dict:
    request = urllib.request.Request(
        f"{api_url}/graphql", data=json.dumps({"query": text}).encode(),
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {key}"},
    )  # fmt: skip
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return json.load(response)
    except (urllib.error.URLError, ConnectionError) as exc:
        return {"errors": [{"message": str(exc)}]}


def api_items(project: dict) -> list[str]:
    """The items as the api serves them to the service key, once it serves them."""
    from tests.engine import wait_for

    answer: list[dict] = [{}]

    def served() -> bool:
        answer[0] = graphql(project["api_url"], ITEMS, project["service_key"])
        if answer[0].get("errors"):
            query(project["db_url"], "COMMENT ON TABLE items IS NULL")  # a DDL makes PostGraphile's --watch look again
            return False
        return True

    wait_for(served, timeout_s=30, what=f"the api to serve items (last: {answer[0]})", interval_s=0.3)
    return [node["name"] for node in answer[0]["data"]["allItems"]["nodes"]]


def new_project_on_15(client, headers) -> dict:
    code, project = act(client, headers, "post", "/v1/projects", {"name": "dock", "postgres_version": "15"})
    assert code == 201 and project["status"] == "running", project
    query(project["db_url"], "CREATE TABLE items (id serial PRIMARY KEY, name text NOT NULL)")
    query(project["db_url"], "INSERT INTO items (name) VALUES ('anchor'), ('rope'), ('sail')")
    query(project["db_url"], "CREATE TABLE cargo AS SELECT g AS id, md5(g::text) AS label FROM generate_series(1, 5000) g")
    query(project["db_url"], "CREATE SCHEMA hold")
    query(project["db_url"], "CREATE TABLE hold.crates (id int PRIMARY KEY)")
    query(project["db_url"], "INSERT INTO hold.crates SELECT generate_series(1, 42)")
    return project


def contents(db_url: str) -> dict[str, object]:
    return {
        "items": query(db_url, "SELECT id, name FROM items ORDER BY id"),
        "cargo": query(db_url, "SELECT count(*), md5(string_agg(label, ',' ORDER BY id)) FROM cargo"),
        "crates": query(db_url, "SELECT count(*) FROM hold.crates"),
        "next_item": query(db_url, "SELECT last_value FROM items_id_seq"),
    }


def major(db_url: str) -> str:
    return query(db_url, "SHOW server_version_num")[0][0][:2]


def volumes(docker_engine, pid: str) -> dict[str, dict[str, str]]:
    # The project's data volumes: managed ones (its containers' own volumes are not berth.managed).
    found = docker_engine.volumes.list(filters={"label": [f"berth.project={pid}", "berth.managed=true"]})
    return {v.name: v.attrs["Labels"] or {} for v in found}


def test_upgrade_15_to_17_keeps_every_row_and_the_urls_and_a_rollback_returns_to_15_as_it_was(workers, user, client, docker_engine):
    headers = bearer(user)
    project = new_project_on_15(client, headers)
    pid, db_url = project["project_id"], project["db_url"]
    before = contents(db_url)
    assert major(db_url) == "15" and api_items(project) == ["anchor", "rope", "sail"]

    code, upgraded = act(client, headers, "post", f"/v1/projects/{pid}/upgrade", {"postgres_version": "17"})
    assert code == 200 and upgraded["operation"]["state"] == "succeeded", upgraded["operation"]["error"]
    assert (upgraded["status"], upgraded["postgres_version"]) == ("running", "17")
    # The same URLs, ports and credentials (the keys too); every row, the sequences where they were.
    for field in ("db_url", "api_url", "anon_key", "service_key"):
        assert upgraded[field] == project[field], field
    assert major(db_url) == "17" and contents(db_url) == before
    assert api_items(project) == ["anchor", "rope", "sail"]  # the api answers, over the new server
    # Made the new way: the owner is no superuser, the api's roles are there with their grants.
    assert query(db_url, "SELECT rolsuper FROM pg_roles WHERE rolname = current_user") == [(False,)]
    assert query(db_url, "SELECT pg_get_userbyid(relowner) FROM pg_class WHERE relname = 'items'") == [("app",)]
    assert query(db_url, "SELECT has_table_privilege('service', 'items', 'INSERT'), has_table_privilege('anon', 'items', 'SELECT')") == [(True, False)]
    # The old volume is kept beside the new one, both labelled with the project; the upgrade's backup is listed.
    assert upgraded["kept_volume"]["name"] == f"project_{pid}_data" and upgraded["kept_volume"]["postgres_version"] == "15"
    found = volumes(docker_engine, pid)
    assert set(found) == {f"project_{pid}_data", f"project_{pid}_data_pg17"}
    assert found[f"project_{pid}_data_pg17"]["berth.postgres"] == "17"
    code, listed = act(client, headers, "get", f"/v1/projects/{pid}/backups", wait=None)
    assert [(b["trigger"], b["state"], b["postgres_version"]) for b in listed["backups"]] == [("pre-upgrade", "verified", "15")]

    query(db_url, "INSERT INTO items (name) VALUES ('written on 17')")
    code, back = act(client, headers, "post", f"/v1/projects/{pid}/rollback-upgrade")
    assert code == 200 and back["operation"]["state"] == "succeeded", back["operation"]
    assert (back["status"], back["postgres_version"], back["kept_volume"]) == ("running", "15", None)
    assert back["db_url"] == db_url and major(db_url) == "15"
    assert contents(db_url) == before  # the data as it was before the upgrade
    assert api_items(project) == ["anchor", "rope", "sail"]
    assert set(volumes(docker_engine, pid)) == {f"project_{pid}_data"}
    code, listed = act(client, headers, "get", f"/v1/projects/{pid}/backups", wait=None)
    rollback = next(b for b in listed["backups"] if b["trigger"] == "pre-rollback")
    assert rollback["state"] == "verified" and rollback["postgres_version"] == "17" and rollback["tables"]["public.items"] == 4


def test_an_extension_17_lacks_is_named_before_anything_changes(workers, user, client, docker_engine):
    headers = bearer(user)
    project = new_project_on_15(client, headers)
    pid = project["project_id"]
    query(as_admin(project), "CREATE EXTENSION old_snapshot")  # contrib on 15, gone in 17
    before = contents(project["db_url"])
    db_id = docker_engine.api.inspect_container(f"project_{pid}_db")["Id"]

    code, refused = act(client, headers, "post", f"/v1/projects/{pid}/upgrade", {"postgres_version": "17"})
    assert code == 200 and refused["operation"]["state"] == "failed"
    assert "does not have: old_snapshot" in refused["operation"]["error"] and "nothing was changed" in refused["operation"]["error"]
    assert (refused["status"], refused["postgres_version"], refused["kept_volume"]) == ("running", "15", None)
    assert docker_engine.api.inspect_container(f"project_{pid}_db")["Id"] == db_id  # not even restarted
    assert contents(project["db_url"]) == before
    assert set(volumes(docker_engine, pid)) == {f"project_{pid}_data"}


def test_a_restore_that_17_refuses_leaves_the_project_on_15_with_its_data(workers, user, client, docker_engine):
    headers = bearer(user)
    project = new_project_on_15(client, headers)
    pid = project["project_id"]
    # Valid on 15; PostgreSQL 16 renamed the setting, so 17 refuses the function and the dump's restore fails.
    query(project["db_url"], "CREATE FUNCTION answer() RETURNS int LANGUAGE sql SET force_parallel_mode = off AS 'SELECT 42'")
    before = contents(project["db_url"])

    code, failed = act(client, headers, "post", f"/v1/projects/{pid}/upgrade", {"postgres_version": "17"})
    assert code == 200 and failed["operation"]["state"] == "failed", failed["operation"]
    error = failed["operation"]["error"]
    assert "back on PostgreSQL 15 with its data" in error and "force_parallel_mode" in error, error
    assert (failed["status"], failed["postgres_version"], failed["kept_volume"]) == ("running", "15", None)
    assert failed["db_url"] == project["db_url"] and major(project["db_url"]) == "15"
    assert contents(project["db_url"]) == before
    assert query(project["db_url"], "SELECT answer()") == [(42,)]
    assert api_items(project) == ["anchor", "rope", "sail"]
    assert set(volumes(docker_engine, pid)) == {f"project_{pid}_data"}  # the attempt's volume is gone
    leftovers = docker_engine.containers.list(all=True, filters={"label": f"berth.project={pid}"})
    assert sorted(c.name for c in leftovers) == [f"project_{pid}_api", f"project_{pid}_db"]


def test_a_project_of_the_old_kind_is_upgraded_onto_a_server_where_its_owner_is_no_superuser(workers, user, client, docker_engine, settings):
    """Made straight on the runtime as before safe stacks (app its own superuser, PostGraphile's watch triggers owned by it)."""
    from django.utils import timezone

    from projects.runtime.docker import DockerRuntime
    from projects.stack.spec import stack_spec
    from projects.services.ports import port_is_free_on_host

    def free(low: int, high: int) -> int:
        return next(p for p in range(low, high + 1) if port_is_free_on_host(p) and not Project.objects.filter(db_port=p).exists()
                    and not Project.objects.filter(api_port=p).exists())  # fmt: skip

    project = Project(owner=user, name="old", postgres_version="15", api_flavour="postgraphile",
                      db_port=free(*settings.BERTH_DB_PORTS), api_port=free(*settings.BERTH_API_PORTS))  # fmt: skip
    project.db_password, project.jwt_secret = secrets.token_urlsafe(16), secrets.token_urlsafe(48)
    project.authenticator_password = secrets.token_urlsafe(16)
    project.status, project.health, project.first_running_at = Project.Status.RUNNING, Project.Health.HEALTHY, timezone.now()
    project.save()
    assert project.owner_is_superuser
    spec = stack_spec(project)
    runtime = DockerRuntime(pull_images=False)
    runtime.stack_up(spec)
    runtime.stack_wait_ready(spec, timeout_s=90)
    db_url = project.db_url().replace("localhost", "127.0.0.1")
    query(db_url, "CREATE TABLE items (id serial PRIMARY KEY, name text NOT NULL)")
    query(db_url, "INSERT INTO items (name) VALUES ('keel')")
    assert query(db_url, "SELECT rolsuper FROM pg_roles WHERE rolname = 'app'") == [(True,)]

    headers = bearer(user)
    code, upgraded = act(client, headers, "post", f"/v1/projects/{project.public_id}/upgrade", {"postgres_version": "17"})
    assert code == 200 and upgraded["operation"]["state"] == "succeeded", upgraded["operation"]["error"]
    assert upgraded["owner_superuser"] is False and upgraded["postgres_version"] == "17"
    assert major(db_url) == "17" and query(db_url, "SELECT name FROM items") == [("keel",)]
    assert query(db_url, "SELECT rolsuper FROM pg_roles WHERE rolname = 'app'") == [(False,)]
    assert api_items({**upgraded, "db_url": db_url, "service_key": upgraded["service_key"]}) == ["keel"]

    code, back = act(client, headers, "post", f"/v1/projects/{project.public_id}/rollback-upgrade")
    assert code == 200 and back["operation"]["state"] == "succeeded", back["operation"]
    assert back["owner_superuser"] is True and major(db_url) == "15"
    assert query(db_url, "SELECT name FROM items") == [("keel",)]
