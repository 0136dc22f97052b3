"""A project's owner may create databases, and every database is data (issue 26, items 1 and 2), on the real engine.

One project on PostgreSQL 15 with a second database walks the whole path:
made hardened, listed with its size, backed up and verified with the first,
restored from the backup (a database made after it is kept), and upgraded to
17 with every row of both.
"""

import pytest

from projects.models import Backup
from projects.services.fleet.metrics import metrics_sample
from tests.conftest import bearer
from tests.engine import Workers, api_act
from tests.integration.test_extensions import run

pytestmark = pytest.mark.integration

act = api_act


@pytest.fixture
def workers(transactional_db, tmp_path, backup_dir):
    pool = Workers(1, tmp_path, BERTH_BACKUP_DIR=str(backup_dir))
    pool.start()
    yield pool
    pool.stop()


def in_database(db_url: str, database: str) -> str:
    """The db_url pointed at another database of the same server."""
    base, _, query = db_url.partition("?")
    return f"{base.rsplit('/', 1)[0]}/{database}{'?' + query if query else ''}"


def names(db_url: str, table: str) -> list[str]:
    return [name for (name,) in run(db_url, f"SELECT name FROM {table} ORDER BY id")]


def test_a_second_database_is_hardened_listed_backed_up_restored_and_upgraded_with_the_first(workers, user, client):
    headers = bearer(user)
    code, project = act(client, headers, "post", "/v1/projects", {"name": "two-dbs", "postgres_version": "15"})
    assert code == 201 and project["status"] == "running", project
    pid, app_url = project["project_id"], project["db_url"]
    ledger_url = in_database(app_url, "ledger")

    # The owner creates a database, as a test runner or a shadow database does; it is the owner's and hardened.
    run(app_url, "CREATE DATABASE ledger")
    run(app_url, "CREATE TABLE items (id serial PRIMARY KEY, name text NOT NULL)", "INSERT INTO items (name) VALUES ('anchor'), ('rope')")
    run(
        ledger_url,
        "CREATE TABLE entries (id serial PRIMARY KEY, name text NOT NULL)",
        "INSERT INTO entries (name) SELECT 'entry ' || n FROM generate_series(1, 40) AS n",
        "CREATE FUNCTION total() RETURNS bigint LANGUAGE sql AS 'SELECT count(*) FROM entries'",
        "GRANT SELECT ON entries TO anon",  # a grant, to survive every restore below
    )
    assert run(ledger_url, "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = current_database()") == [("app",)]
    # Born hardened from template1: a function the owner makes is nobody else's to call.
    assert run(ledger_url, "SELECT has_function_privilege('anon', 'total()', 'EXECUTE')") == [(False,)]
    assert run(ledger_url, "SELECT has_schema_privilege('anon', 'public', 'CREATE')") == [(False,)]
    # Still no superuser, no role-making on 15.
    assert run(app_url, "SELECT rolsuper, rolcreaterole, rolcreatedb FROM pg_roles WHERE rolname = current_user") == [(False, False, True)]

    # Listed, with sizes: the project's answer and its size metric count both.
    metrics_sample()
    listed = act(client, headers, "get", f"/v1/projects/{pid}", wait=None)[1]
    assert [d["name"] for d in listed["databases"]] == ["app", "ledger"], listed["databases"]
    assert all(d["size_bytes"] > 1_000_000 for d in listed["databases"])

    code, made = act(client, headers, "post", f"/v1/projects/{pid}/backups")
    assert code == 201 and made["state"] == "verified", made  # both restored and counted in a throwaway server
    assert made["databases"] == ["app", "ledger"]
    assert made["tables"] == {"public.items": 2, "ledger/public.entries": 40}

    # Damage both, and make a database after the backup: the restore brings both back and keeps the new one.
    run(app_url, "DELETE FROM items")
    run(ledger_url, "DROP TABLE entries")
    run(app_url, "CREATE DATABASE scratch")
    code, restored = act(client, headers, "post", f"/v1/backups/{made['backup_id']}/restore", {"confirm": pid})
    assert code == 200 and restored["operation"]["state"] == "succeeded", restored["operation"]["error"]
    assert names(app_url, "items") == ["anchor", "rope"]
    assert len(names(ledger_url, "entries")) == 40
    assert run(ledger_url, "SELECT has_table_privilege('anon', 'entries', 'SELECT')") == [(True,)]
    assert run(app_url, "SELECT datname FROM pg_database WHERE datname = 'scratch'") == [("scratch",)]
    run(app_url, "DROP DATABASE scratch")  # scratch databases come and go

    code, upgraded = act(client, headers, "post", f"/v1/projects/{pid}/upgrade", {"postgres_version": "17"})
    assert code == 200 and upgraded["operation"]["state"] == "succeeded", upgraded["operation"]["error"]
    assert upgraded["postgres_version"] == "17"
    assert run(app_url, "SHOW server_version_num")[0][0].startswith("17")
    assert names(app_url, "items") == ["anchor", "rope"]
    assert len(names(ledger_url, "entries")) == 40
    assert run(ledger_url, "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = current_database()") == [("app",)]
    assert run(ledger_url, "SELECT has_table_privilege('anon', 'entries', 'SELECT')") == [(True,)]
    assert run(ledger_url, "SELECT has_function_privilege('anon', 'total()', 'EXECUTE')") == [(False,)]
    safety = Backup.objects.get(project__public_id=pid, trigger="pre-upgrade")
    assert safety.databases == ["app", "ledger"]
