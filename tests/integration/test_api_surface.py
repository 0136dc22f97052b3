"""What a project's stack exposes, on the real engine: PostGraphile's schema as RBAC allows it, no GraphiQL, a read-only root."""

import base64
import json
import urllib.error
import urllib.request

import psycopg
import pytest

from tests.conftest import bearer
from tests.engine import wait_for
from tests.integration.test_safe_stacks import graphql

pytestmark = pytest.mark.integration

QUERY_FIELDS = "{ __schema { queryType { fields { name } } } }"


def query_fields(api_url: str, key: str | None = None) -> set[str]:
    """The root query fields a caller is shown: anonymous (no key: --default-role anon), or with a key."""
    status, answer = graphql(api_url, QUERY_FIELDS, key)
    assert status == 200 and not answer.get("errors"), answer
    return {field["name"] for field in answer["data"]["__schema"]["queryType"]["fields"]}


def forged(key: str, role: str) -> str:
    """The key with its role claim changed and its signature kept: what a stranger can make."""
    header, claims, signature = key.split(".")
    decoded = json.loads(base64.urlsafe_b64decode(claims + "=" * (-len(claims) % 4)))
    changed = base64.urlsafe_b64encode(json.dumps({**decoded, "role": role}).encode()).rstrip(b"=").decode()
    return f"{header}.{changed}.{signature}"


def create(client, user) -> dict:
    response = client.post("/v1/projects?wait=120", data={"name": "surface"}, content_type="application/json", **bearer(user))
    assert response.status_code == 201, response.json()
    created = response.json()
    assert created["status"] == "running" and created["api"] == "postgraphile", created
    return created


def test_anonymous_introspection_lists_only_what_anon_was_granted_and_the_service_key_sees_the_rest(workers, user, client):
    created = create(client, user)
    api_url, db_url, service_key, anon_key = created["api_url"], created["db_url"], created["service_key"], created["anon_key"]
    with psycopg.connect(db_url, connect_timeout=3) as conn:
        # One DDL transaction: once `notes` shows, the watch has seen `ledger` too.
        conn.execute("CREATE TABLE ledger (id serial PRIMARY KEY, amount int)")
        conn.execute("REVOKE ALL ON ledger FROM service")  # no role the api may become can read it
        conn.execute("CREATE TABLE notes (id serial PRIMARY KEY, body text)")  # the service role's (default privileges)

    def watched() -> set[str] | None:
        fields = query_fields(api_url, service_key)
        return fields if "allNotes" in fields else None

    fields = wait_for(watched, timeout_s=30, what="the watch to pick up the tables")
    assert "allLedgers" not in fields and "ledgerById" not in fields, sorted(fields)
    # Anonymous callers, with no key or the anon key, see neither: `notes` is the service key's alone.
    for key in (None, anon_key):
        anonymous = query_fields(api_url, key)
        assert not {"allNotes", "noteById", "allLedgers"} & anonymous, sorted(anonymous)
        status, answer = graphql(api_url, "{ allNotes { totalCount } }", key)
        assert "Cannot query field" in json.dumps(answer), (status, answer)
    # A key whose role claim was changed to reach the service's schema is refused, and shows nothing.
    for role in ("service", "app"):
        status, answer = graphql(api_url, QUERY_FIELDS, forged(anon_key, role))
        assert answer.get("errors") and not answer.get("data"), (role, status, answer)

    with psycopg.connect(db_url, connect_timeout=3) as conn:
        conn.execute("GRANT SELECT ON ledger, notes TO anon")
    wait_for(lambda: {"allLedgers", "allNotes"} <= query_fields(api_url), timeout_s=30, what="the granted tables to appear")
    assert {"allLedgers", "allNotes"} <= query_fields(api_url, anon_key)
    assert "allLedgers" not in query_fields(api_url, service_key)  # still not the service role's


def test_graphiql_is_off_by_default(workers, user, client):
    created = create(client, user)
    try:
        with urllib.request.urlopen(f"{created['api_url']}/graphiql", timeout=5) as response:
            status, body = response.status, response.read()
    except urllib.error.HTTPError as exc:
        status, body = exc.code, exc.read()
    assert status != 200 and b"GraphiQL" not in body, (status, body[:200])


def test_the_stacks_root_filesystems_are_read_only_and_it_still_works(workers, user, client, docker_engine):
    created = create(client, user)
    pid = created["project_id"]
    for service in ("db", "api"):
        inspected = docker_engine.api.inspect_container(f"project_{pid}_{service}")
        assert inspected["HostConfig"]["ReadonlyRootfs"] is True, service
    with psycopg.connect(created["db_url"], connect_timeout=3) as conn:
        conn.execute("CREATE TABLE items (name text)")
        conn.execute("INSERT INTO items VALUES ('anchor')")
    headers = bearer(user)
    for action in ("stop", "start"):
        answer = client.post(f"/v1/projects/{pid}/{action}?wait=60", content_type="application/json", **headers).json()
        assert answer["operation"]["state"] == "succeeded", answer
    with psycopg.connect(created["db_url"], connect_timeout=3) as conn:
        assert conn.execute("SELECT name FROM items").fetchall() == [("anchor",)]
    # Nothing the stack writes outlives its containers: their own volumes go with them.
    db = docker_engine.api.inspect_container(f"project_{pid}_db")
    assert {m["Destination"] for m in db["Mounts"] if m["Type"] == "volume"} >= {"/var/lib/postgresql/data", "/etc/berth", "/tmp"}


def test_graphiql_an_operator_turns_on_loads_nothing_from_elsewhere(db, docker_engine, settings):
    """Straight on the runtime, with BERTH_GRAPHIQL set for the spec (workers would not see a setting changed here)."""
    import secrets

    from django.conf import settings as live

    from projects.models import Project
    from projects.runtime.docker import DockerRuntime
    from projects.stack.spec import stack_spec
    from projects.services.ports import port_is_free_on_host

    def free(low: int, high: int) -> int:
        return next(p for p in range(low, high + 1) if port_is_free_on_host(p))

    settings.BERTH_GRAPHIQL = True
    project = Project(public_id=secrets.token_hex(6), name="graphiql", postgres_version="17", api_flavour="postgraphile",
                      db_port=free(*live.BERTH_DB_PORTS), api_port=free(*live.BERTH_API_PORTS))  # fmt: skip
    project.db_password, project.jwt_secret = secrets.token_urlsafe(16), secrets.token_urlsafe(48)
    project.authenticator_password, project.admin_password = secrets.token_urlsafe(16), secrets.token_urlsafe(16)
    spec = stack_spec(project)
    runtime = DockerRuntime(pull_images=False)
    runtime.stack_up(spec)
    runtime.stack_wait_ready(spec, timeout_s=90)
    request = urllib.request.Request(f"http://127.0.0.1:{project.api_port}/graphiql", headers={"Accept": "text/html"})
    with urllib.request.urlopen(request, timeout=5) as response:
        status, page = response.status, response.read().decode()
    assert status == 200 and "PostGraphile GraphiQL" in page
    assert "unpkg.com" not in page and 'src="http' not in page and "src='http" not in page
