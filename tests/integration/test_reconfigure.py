"""Changing a project after creation and rotating its credentials, on the real engine (services/settings/requests.py)."""

import json
import urllib.error
import urllib.request

import psycopg
import pytest

from projects.models import Project
from projects.runtime.base import object_names
from tests.conftest import bearer

pytestmark = pytest.mark.integration


def create(client, headers) -> dict:
    response = client.post("/v1/projects?wait=120", data={"name": "tuned"}, content_type="application/json", **headers)
    assert response.status_code == 201, response.json()
    assert response.json()["status"] == "running"
    return response.json()


def patch(client, project: dict, body: dict, headers, *, wait: int = 60):
    path = f"/v1/projects/{project['project_id']}?wait={wait}"
    return client.patch(path, data=json.dumps(body), content_type="application/json", **headers)


def rotate(client, project: dict, what: str, headers) -> dict:
    path = f"/v1/projects/{project['project_id']}/rotate?wait=120"
    response = client.post(path, data={"what": what}, content_type="application/json", **headers)
    assert response.status_code == 200, response.json()
    assert response.json()["operation"]["state"] == "succeeded", response.json()
    return response.json()


def show(db_url: str, *names: str) -> list[str]:
    with psycopg.connect(db_url, connect_timeout=5) as conn:
        return [conn.execute(f"SHOW {name}").fetchone()[0] for name in names]


def admin_url(project_id: str) -> str:
    project = Project.objects.get(public_id=project_id)
    return f"postgresql://{project.admin_user}:{project.admin_password}@127.0.0.1:{project.db_port}/{project.db_name}"


def graphql(api_url: str, key: str | None) -> tuple[int, dict]:
    headers = {"Content-Type": "application/json", **({"Authorization": f"Bearer {key}"} if key else {})}
    request = urllib.request.Request(f"{api_url}/graphql", data=b'{"query": "{ __typename }"}', headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as exc:
        return exc.code, json.load(exc)


def test_a_setting_change_reaches_show_and_a_restart_one_applies_on_restart_with_the_new_memory(workers, user, client, docker_engine):
    headers = bearer(user)
    created = create(client, headers)
    assert show(created["db_url"], "work_mem", "statement_timeout", "max_connections") == ["4MB", "0", "40"]

    # Reloadable: applied at once by the reconfigure operation, no restart.
    response = patch(client, created, {"postgres_settings": {"work_mem": "8MB", "statement_timeout": "45s"}}, headers)
    assert response.status_code == 200, response.json()
    body = response.json()
    assert body["operation"]["kind"] == "reconfigure" and body["operation"]["state"] == "succeeded", body
    assert show(created["db_url"], "work_mem", "statement_timeout") == ["8MB", "45s"]

    # Restart-only, and memory: kept and pending; the running server is as it was.
    db = docker_engine.containers.get(object_names(created["project_id"])["db"])
    started = db.attrs["State"]["StartedAt"]
    body = patch(client, created, {"postgres_settings": {"max_connections": "55"}, "db_memory": "600m"}, headers).json()
    assert body["pending_restart"] is True and "operation" not in body, body
    assert show(created["db_url"], "max_connections") == ["40"]
    db.reload()
    assert db.attrs["State"]["StartedAt"] == started

    # restart: true applies them; the reloadable ones survive the restart (ALTER SYSTEM is in the data volume).
    body = patch(client, created, {"restart": True}, headers, wait=120).json()
    assert body["operation"]["kind"] == "restart" and body["operation"]["state"] == "succeeded", body
    assert body["status"] == "running" and body["pending_restart"] is False
    assert show(created["db_url"], "max_connections", "work_mem", "statement_timeout") == ["55", "8MB", "45s"]
    db = docker_engine.containers.get(object_names(created["project_id"])["db"])
    assert db.attrs["HostConfig"]["Memory"] == 600 * 1024 * 1024

    # Back to Berth's default with null: written back at the next reconfigure.
    body = patch(client, created, {"postgres_settings": {"work_mem": None}}, headers).json()
    assert body["postgres_settings"] == {"statement_timeout": "45s", "max_connections": "55"}
    assert show(created["db_url"], "work_mem") == ["4MB"]


def test_a_value_the_server_rejects_is_400_with_its_message_and_leaves_the_project_as_it_was(workers, user, client):
    headers = bearer(user)
    created = create(client, headers)
    patch(client, created, {"postgres_settings": {"timezone": "Europe/Paris"}}, headers)
    before = client.get(f"/v1/projects/{created['project_id']}", **headers).json()

    response = patch(client, created, {"postgres_settings": {"timezone": "Mars/Olympus", "work_mem": "16MB"}, "name": "renamed"}, headers)
    assert response.status_code == 400, response.json()
    error = response.json()["error"]
    assert error["field"] == "postgres_settings"
    assert 'invalid value for parameter "TimeZone": "Mars/Olympus"' in error["message"]

    assert client.get(f"/v1/projects/{created['project_id']}", **headers).json() == before
    assert Project.objects.get(public_id=created["project_id"]).operations.count() == 2  # create, the first reconfigure
    # Nothing of the refused change reached the server, nor waits in its file for the next reload.
    assert show(created["db_url"], "TimeZone", "work_mem") == ["Europe/Paris", "4MB"]
    with psycopg.connect(admin_url(created["project_id"]), connect_timeout=5) as conn:
        conn.execute("SELECT pg_reload_conf()")
        in_file = dict(conn.execute("SELECT name, setting FROM pg_file_settings WHERE sourcefile LIKE '%postgresql.auto.conf'").fetchall())
    assert in_file["timezone"] == "Europe/Paris" and in_file["work_mem"] == "4MB"
    assert show(created["db_url"], "TimeZone", "work_mem") == ["Europe/Paris", "4MB"]


def test_a_password_rotation_locks_out_the_old_password_and_the_api_keeps_serving(workers, user, client, docker_engine):
    headers = bearer(user)
    created = create(client, headers)
    # Every statement logged: Berth's own sessions are not (spec.ADMIN_SESSION_OPTIONS).
    body = patch(client, created, {"postgres_settings": {"log_statement": "all"}}, headers).json()
    assert body["operation"]["state"] == "succeeded", body
    with psycopg.connect(created["db_url"], connect_timeout=5) as conn:
        conn.execute("CREATE TABLE kept (id int)")
    opened_before = psycopg.connect(created["db_url"], connect_timeout=5, autocommit=True)

    rotated = rotate(client, created, "password", headers)
    # A session opened with the old password is ended too.
    with pytest.raises(psycopg.OperationalError):
        opened_before.execute("SELECT 1")
    opened_before.close()
    assert rotated["db_url"] != created["db_url"] and rotated["anon_key"] == created["anon_key"]
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(created["db_url"], connect_timeout=5).close()
    with psycopg.connect(rotated["db_url"], connect_timeout=5) as conn:
        assert conn.execute("SELECT count(*) FROM kept").fetchone() == (0,)
    # The api logs in with the authenticator's new password.
    status, answer = graphql(rotated["api_url"], rotated["anon_key"])
    assert status == 200 and answer["data"] == {"__typename": "Query"}, answer
    # The bootstrap's ALTER ROLE … PASSWORD was not logged, though the project logs every statement.
    project = Project.objects.get(public_id=created["project_id"])
    logs = docker_engine.containers.get(object_names(created["project_id"])["db"]).logs().decode()
    assert "statement: SELECT count(*) FROM kept" in logs  # the owner's own statements are
    for secret in (project.db_password, project.authenticator_password, project.admin_password):
        assert secret not in logs


def test_a_keys_rotation_makes_the_old_anon_key_fail_and_the_new_one_work(workers, user, client):
    headers = bearer(user)
    created = create(client, headers)
    assert graphql(created["api_url"], created["anon_key"])[0] == 200

    rotated = rotate(client, created, "keys", headers)
    assert rotated["anon_key"] != created["anon_key"] and rotated["service_key"] != created["service_key"]
    assert rotated["db_url"] == created["db_url"]
    status, answer = graphql(rotated["api_url"], created["anon_key"])
    assert status in (401, 403) or answer.get("errors"), answer
    assert any("signature" in e["message"] for e in answer.get("errors") or []), answer
    status, answer = graphql(rotated["api_url"], rotated["anon_key"])
    assert status == 200 and answer["data"] == {"__typename": "Query"}, answer


# pg_settings' units → pgconf's base units (kB for memory, ms for time).
UNIT_FACTORS = {"kB": 1, "8kB": 8, "MB": 1024, "ms": 1, "s": 1000, "min": 60_000, None: 1}


@pytest.mark.parametrize("version", ["15", "17"])
def test_berths_bounds_are_within_each_servers_own(workers, user, client, version):
    """What Berth takes without asking a server (a stopped project's change) every server takes too."""
    from projects.pgconf import SETTINGS

    headers = bearer(user)
    response = client.post(
        "/v1/projects?wait=120", data={"name": f"bounds{version}", "postgres_version": version}, content_type="application/json", **headers
    )
    assert response.status_code == 201, response.json()
    with psycopg.connect(response.json()["db_url"], connect_timeout=5) as conn:
        found = {
            name: (vartype, unit, min_val, max_val, enumvals)
            for name, vartype, unit, min_val, max_val, enumvals in conn.execute(
                "SELECT name, vartype, unit, min_val, max_val, enumvals FROM pg_settings WHERE name = ANY(%s)", [list(SETTINGS)]
            )
        }
    assert set(found) == {name for name in SETTINGS if name != "timezone"} | ({"TimeZone"} & set(found))
    for name, s in SETTINGS.items():
        if s.kind in {"name"}:
            continue
        vartype, unit, low, high, choices = found[name]
        if s.kind == "enum":
            assert set(s.choices) <= set(choices), name
            continue
        factor = UNIT_FACTORS[unit]
        assert int(low) * factor <= s.low and s.high <= int(high) * factor, (name, low, high, unit, s.low, s.high)
