"""Safe stacks on the real engine: the api's roles and keys, the owner without superuser, confined containers."""

import json
import subprocess
import urllib.error
import urllib.request

import psycopg
import pytest

from projects import tls
from projects.keys import jwt_sign
from projects.models import Project
from tests.conftest import bearer

pytestmark = pytest.mark.integration

ITEMS = "{ allItems(orderBy: ID_ASC) { nodes { name } } }"
CREATE_ITEM = 'mutation { createItem(input: {item: {name: "%s"}}) { item { name } } }'


def graphql(api_url: str, query: str, key: str | None = None) -> tuple[int, dict]:
    headers = {"Content-Type": "application/json", **({"Authorization": f"Bearer {key}"} if key else {})}
    request = urllib.request.Request(f"{api_url}/graphql", data=json.dumps({"query": query}).encode(), headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as exc:
        return exc.code, json.load(exc)


def names(answer: dict) -> list[str]:
    assert not answer.get("errors"), answer
    return [node["name"] for node in answer["data"]["allItems"]["nodes"]]


# What refuses an anonymous caller: its schema (built as anon) has no such field, or no mutation at all,
# or the database's grants do.
NOT_ITS_OWN = ("Cannot query field", "not configured for mutations", "permission denied")


def refused(answer: dict, words: str | tuple[str, ...] = NOT_ITS_OWN) -> bool:
    expected = (words,) if isinstance(words, str) else words
    return any(w in error["message"] for error in answer.get("errors") or [] for w in expected)


def rows(db_url: str) -> list[str]:
    with psycopg.connect(db_url, connect_timeout=3) as conn:
        return [name for (name,) in conn.execute("SELECT name FROM items ORDER BY id")]


def create(client, user) -> dict:
    response = client.post("/v1/projects?wait=120", data={"name": "safe"}, content_type="application/json", **bearer(user))
    assert response.status_code == 201, response.json()
    created = response.json()
    assert created["status"] == "running", created
    return created


def wait_for_items(api_url: str, key: str, db_url: str) -> None:
    from tests.engine import wait_for

    last: list[dict] = [{}]

    def served() -> bool:
        last[0] = graphql(api_url, ITEMS, key)[1]
        if last[0].get("errors"):
            # PostGraphile starts listening for schema changes a moment after it
            # first answers: a table made in between is missed until the next
            # DDL (a known race, not this test's subject), so make one.
            with psycopg.connect(db_url, connect_timeout=3) as conn:
                conn.execute("COMMENT ON TABLE items IS NULL")
            return False
        return True

    try:
        wait_for(served, timeout_s=20, what="the api to serve items")
    except AssertionError as exc:
        raise AssertionError(f"{exc}; its last answer: {last[0]}") from None


def test_anonymous_graphql_reads_and_writes_nothing_until_granted_and_the_service_key_does_both(workers, user, client):
    created = create(client, user)
    db_url, api_url = created["db_url"], created["api_url"]
    anon_key, service_key = created["anon_key"], created["service_key"]
    with psycopg.connect(db_url, connect_timeout=3) as conn:
        conn.execute("CREATE TABLE items (id serial PRIMARY KEY, name text NOT NULL)")
        conn.execute("INSERT INTO items (name) VALUES ('anchor')")
    wait_for_items(api_url, service_key, db_url)

    # Nothing granted: anonymous (no key, or the anon key) reads and writes nothing; its schema has no such field.
    for key in (None, anon_key):
        assert refused(graphql(api_url, ITEMS, key)[1], "Cannot query field")
        assert refused(graphql(api_url, CREATE_ITEM % "stowaway", key)[1])
    # The service key reads and writes (a table made after the bootstrap: default privileges).
    assert names(graphql(api_url, ITEMS, service_key)[1]) == ["anchor"]
    status, answer = graphql(api_url, CREATE_ITEM % "rope", service_key)
    assert status == 200 and answer["data"]["createItem"]["item"]["name"] == "rope", answer
    # A key signed with another secret is refused, whatever role it claims.
    forged = jwt_sign({"role": "service", "iss": "berth", "aud": "berth", "iat": 0}, "not-the-project-secret-" * 3)
    status, answer = graphql(api_url, ITEMS, forged)
    assert status in (401, 403) and "data" not in answer or not answer.get("data"), answer
    assert refused(answer, "signature")
    assert rows(db_url) == ["anchor", "rope"]

    # Published for reading: anonymous reads work, writes still do not.
    with psycopg.connect(db_url, connect_timeout=3) as conn:
        conn.execute("GRANT SELECT ON items TO anon")
    wait_for_items(api_url, None, db_url)  # anon's schema is rebuilt when the watch sees the grant
    assert names(graphql(api_url, ITEMS)[1]) == ["anchor", "rope"]
    assert names(graphql(api_url, ITEMS, anon_key)[1]) == ["anchor", "rope"]
    assert refused(graphql(api_url, CREATE_ITEM % "stowaway", anon_key)[1])
    assert rows(db_url) == ["anchor", "rope"]


def test_the_owner_is_no_superuser_tls_verifies_and_the_stack_is_confined_with_no_secret_in_ps(workers, user, client, docker_engine, tmp_path):
    created = create(client, user)
    project = Project.objects.get(public_id=created["project_id"])
    assert created["owner_superuser"] is False

    # TLS with Berth's CA: verify-full against /v1/ca.pem for BERTH_PUBLIC_HOST (127.0.0.1, an IP SAN).
    ca = tmp_path / "berth-ca.pem"
    ca.write_bytes(client.get("/v1/ca.pem").content)
    for sslmode in ("require", "verify-full"):
        with psycopg.connect(created["db_url"], sslmode=sslmode, sslrootcert=str(ca), connect_timeout=3) as conn:
            assert conn.execute("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()").fetchone() == (True,)
    other_ca = tmp_path / "other-ca.pem"
    other_ca.write_text(tls.ca_create("not Berth")[0])
    with pytest.raises(psycopg.OperationalError, match="certificate verify failed"):
        psycopg.connect(created["db_url"], sslmode="verify-full", sslrootcert=str(other_ca), connect_timeout=3)
    # The tenant cannot read the server's key: it is no superuser and has no pg_read_server_files.
    with psycopg.connect(created["db_url"], connect_timeout=3) as conn, pytest.raises(psycopg.errors.InsufficientPrivilege):
        conn.execute("SELECT pg_read_file('/etc/berth/server.key')")
    with psycopg.connect(created["db_url"], connect_timeout=3, autocommit=True) as conn:
        superuser, bypassrls, createrole = conn.execute(
            "SELECT rolsuper, rolbypassrls, rolcreaterole FROM pg_roles WHERE rolname = current_user"
        ).fetchone()
        assert (superuser, bypassrls, createrole) == (False, True, True)  # CREATEROLE: the image is 17
        # The owner owns its database and schema, and trusted extensions work without a superuser.
        assert conn.execute("SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = current_database()").fetchone() == ("app",)
        assert conn.execute("SELECT pg_get_userbyid(nspowner) FROM pg_namespace WHERE nspname = 'public'").fetchone() == ("app",)
        conn.execute("CREATE EXTENSION pgcrypto")
        conn.execute("CREATE TABLE t (id int)")
        for statement in ("COPY t TO PROGRAM 'id'", "SELECT pg_read_file('postgresql.conf')", "GRANT pg_execute_server_program TO app"):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(statement)
        # authenticator may become anon or service and nothing else.
        members = conn.execute(
            "SELECT r.rolname FROM pg_auth_members m JOIN pg_roles r ON r.oid = m.roleid WHERE m.member = 'authenticator'::regrole ORDER BY 1"
        ).fetchall()
        assert members == [("anon",), ("service",)]

    for service in ("db", "api"):
        host = docker_engine.api.inspect_container(f"project_{project.public_id}_{service}")["HostConfig"]
        assert host["CapDrop"] == ["ALL"]
        assert host["CapAdd"] == (["CHOWN", "FOWNER", "SETGID", "SETUID"] if service == "db" else None)
        assert host["SecurityOpt"] == ["no-new-privileges"]
        assert host["PidsLimit"] > 0 and host["NanoCpus"] > 0
        assert host["LogConfig"] == {"Type": "json-file", "Config": {"max-file": "3", "max-size": "10m"}}

    args = subprocess.run(["ps", "-eww", "-o", "args"], capture_output=True, text=True, check=True).stdout
    assert f"project_{project.public_id}_db" in args  # PostGraphile's owner connection names it, without a password
    for secret in (project.db_password, project.admin_password, project.authenticator_password, project.jwt_secret):
        assert secret not in args


def test_a_project_of_the_old_kind_gets_the_api_roles_and_a_changed_spec_recreates_its_containers(db, docker_engine, settings):
    """Straight on the runtime: a server bootstrapped by app itself (as before this model), then a newer spec."""
    import dataclasses
    import secrets

    from urllib.parse import quote

    from django.conf import settings as live

    from projects.runtime.docker import DockerRuntime
    from projects.stack.spec import stack_spec
    from projects.services.ports import port_is_free_on_host

    def free(low: int, high: int) -> int:
        return next(p for p in range(low, high + 1) if port_is_free_on_host(p))

    project = Project(public_id=secrets.token_hex(6), name="old", postgres_version="15", api_flavour="postgraphile",
                      db_port=free(*live.BERTH_DB_PORTS), api_port=free(*live.BERTH_API_PORTS))  # fmt: skip
    project.db_password, project.jwt_secret = secrets.token_urlsafe(16), secrets.token_urlsafe(48)
    project.authenticator_password = secrets.token_urlsafe(16)
    assert project.owner_is_superuser  # no admin password: the old kind
    runtime = DockerRuntime(pull_images=False)
    spec = stack_spec(project)
    runtime.stack_up(spec)
    runtime.stack_wait_ready(spec, timeout_s=90)
    url = project.db_url().replace("localhost", "127.0.0.1")
    with psycopg.connect(url, connect_timeout=3, autocommit=True) as conn:
        assert conn.execute("SELECT rolsuper FROM pg_roles WHERE rolname = 'app'").fetchone() == (True,)
        conn.execute("CREATE TABLE items (id serial PRIMARY KEY, name text NOT NULL)")
        conn.execute("INSERT INTO items (name) VALUES ('anchor')")
        assert conn.execute("SELECT rolinherit, rolsuper FROM pg_roles WHERE rolname = 'authenticator'").fetchone() == (False, False)
    # The api's login can become anon (which reads nothing ungranted) or service, never the superuser.
    as_authenticator = url.replace(f"app:{quote(project.db_password, safe='')}@", f"authenticator:{quote(project.authenticator_password, safe='')}@")
    with psycopg.connect(as_authenticator, connect_timeout=3, autocommit=True) as conn:
        conn.execute("SET ROLE anon")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("SELECT name FROM items")
        conn.execute("RESET ROLE")
        conn.execute("SET ROLE service")
        assert conn.execute("SELECT name FROM items").fetchall() == [("anchor",)]
        conn.execute("RESET ROLE")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("SET ROLE app")

    # A newer spec (here: other limits) replaces the containers on the next stack_up; the data stays.
    db_id = docker_engine.api.inspect_container(spec.db.name)["Id"]
    newer = dataclasses.replace(spec, db=dataclasses.replace(spec.db, confinement=dataclasses.replace(spec.db.confinement, pids_limit=300)))
    runtime.stack_up(newer)
    runtime.stack_wait_ready(newer, timeout_s=90)
    inspected = docker_engine.api.inspect_container(spec.db.name)
    assert inspected["Id"] != db_id and inspected["HostConfig"]["PidsLimit"] == 300
    with psycopg.connect(url, connect_timeout=3) as conn:
        assert conn.execute("SELECT name FROM items").fetchall() == [("anchor",)]
    # The same spec again changes nothing.
    runtime.stack_up(newer)
    assert docker_engine.api.inspect_container(spec.db.name)["Id"] == inspected["Id"]
