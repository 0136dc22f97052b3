"""Backups on the real engine with real workers: dump, verify, restore, clone, tampering, a killed dump, purge."""


import psycopg
import pytest

from projects.models import Backup, Operation
from projects.services.backups.requests import backup_path
from tests.conftest import bearer
from tests.engine import api_act, TEST_LABEL, wait_for, Workers

pytestmark = pytest.mark.integration


@pytest.fixture
def workers(transactional_db, tmp_path, backup_dir):
    """Two real workers (a project and its clone at once is the most these tests run) sharing the backup directory."""
    pool = Workers(2, tmp_path, BERTH_BACKUP_DIR=str(backup_dir))
    pool.start()
    yield pool
    pool.stop()


act = api_act


def sql(db_url: str, statement: str) -> None:
    with psycopg.connect(db_url, connect_timeout=3) as conn:
        conn.execute(statement)


def names(db_url: str) -> list[str]:
    with psycopg.connect(db_url, connect_timeout=3) as conn:
        return [name for (name,) in conn.execute("SELECT name FROM items ORDER BY id")]


def new_project_with_items(client, headers, *items: str) -> dict:
    code, project = act(client, headers, "post", "/v1/projects", {"name": "harbour"})
    assert code == 201 and project["status"] == "running", project
    sql(project["db_url"], "CREATE TABLE items (id serial PRIMARY KEY, name text NOT NULL)")
    sql(project["db_url"], "INSERT INTO items (name) VALUES " + ", ".join(f"('{item}')" for item in items))
    return project


def scratch_containers(docker_engine) -> list[str]:
    """This run's throwaway containers still on the engine (other runs may share it)."""
    return [
        c["Names"][0].lstrip("/")
        for c in docker_engine.api.containers(all=True, filters={"label": TEST_LABEL})  # no per-container inspect to race
        if (c.get("Labels") or {}).get("berth.service", "").startswith("backup-")
    ]


def test_rows_deleted_after_a_backup_come_back_with_restore_and_a_safety_backup_exists(workers, user, client, docker_engine):
    headers = bearer(user)
    project = new_project_with_items(client, headers, "anchor", "rope", "sail")
    pid = project["project_id"]

    code, made = act(client, headers, "post", f"/v1/projects/{pid}/backups")
    assert code == 201, made
    assert made["state"] == "verified", made["error"]
    assert made["tables"] == {"public.items": 3}
    assert backup_path(Backup.objects.get(public_id=made["backup_id"])).stat().st_size == made["size"]

    sql(project["db_url"], "DELETE FROM items WHERE name <> 'anchor'")
    sql(project["db_url"], "CREATE TABLE later (id int)")
    assert names(project["db_url"]) == ["anchor"]

    code, restored = act(client, headers, "post", f"/v1/backups/{made['backup_id']}/restore", {"confirm": pid})
    assert code == 200, restored
    assert restored["operation"]["state"] == "succeeded", restored["operation"]["error"]
    assert restored["status"] == "running"
    assert names(project["db_url"]) == ["anchor", "rope", "sail"]  # the same URL, the same password
    with psycopg.connect(project["db_url"], connect_timeout=3) as conn:
        # Replaced, not merged: what was created after the backup is gone.
        assert conn.execute("SELECT to_regclass('public.later')").fetchone() == (None,)

    safety = restored["safety_backup"]
    assert safety["trigger"] == "pre-restore" and safety["state"] == "verified"
    assert safety["tables"] == {"public.items": 1, "public.later": 0}
    assert backup_path(Backup.objects.get(public_id=safety["backup_id"])).exists()
    code, listed = act(client, headers, "get", f"/v1/projects/{pid}/backups", wait=None)
    assert {b["backup_id"] for b in listed["backups"]} == {made["backup_id"], safety["backup_id"]}
    assert scratch_containers(docker_engine) == []


def test_clone_from_a_backup_is_a_new_project_with_its_own_ports_and_the_same_rows(workers, user, client):
    headers = bearer(user)
    source = new_project_with_items(client, headers, "keel", "mast")
    code, made = act(client, headers, "post", f"/v1/projects/{source['project_id']}/backups")
    assert code == 201 and made["state"] == "verified", made
    sql(source["db_url"], "INSERT INTO items (name) VALUES ('after the backup')")

    code, clone = act(client, headers, "post", "/v1/projects", {"name": "harbour-copy", "from_backup": made["backup_id"]})
    assert code == 201, clone
    assert clone["status"] == "running" and clone["operation"]["kind"] == "clone", clone["operation"]
    assert clone["project_id"] != source["project_id"]
    assert clone["db_url"] != source["db_url"] and clone["api_url"] != source["api_url"]
    assert names(clone["db_url"]) == ["keel", "mast"]
    assert names(source["db_url"]) == ["keel", "mast", "after the backup"]  # the source is untouched
    sql(clone["db_url"], "INSERT INTO items (name) VALUES ('only in the clone')")
    assert "only in the clone" not in names(source["db_url"])


def test_a_backup_altered_by_one_byte_fails_verification_and_restore_refuses_it(workers, user, client, docker_engine):
    headers = bearer(user)
    project = new_project_with_items(client, headers, "buoy")
    code, made = act(client, headers, "post", f"/v1/projects/{project['project_id']}/backups")
    assert code == 201 and made["state"] == "verified", made

    path = backup_path(Backup.objects.get(public_id=made["backup_id"]))
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))

    code, verified = act(client, headers, "post", f"/v1/backups/{made['backup_id']}/verify")
    assert code == 200, verified
    assert verified["state"] == "verify_failed" and verified["operation"]["state"] == "failed"
    assert "sha256" in verified["error"] and "altered or damaged after the dump" in verified["error"]

    code, refused = act(client, headers, "post", f"/v1/backups/{made['backup_id']}/restore", {"confirm": project["project_id"]})
    assert code == 409 and refused["error"]["code"] == "wrong_state"
    assert "verify_failed" in refused["error"]["message"] and "sha256" in refused["error"]["message"]
    assert names(project["db_url"]) == ["buoy"]
    assert not Operation.objects.filter(kind="restore_backup").exists()
    assert scratch_containers(docker_engine) == []


def test_a_dump_killed_part_way_leaves_a_failed_backup_and_no_file(workers, user, client, backup_dir, docker_engine):
    headers = bearer(user)
    project = new_project_with_items(client, headers, "ballast")
    pid = project["project_id"]
    # Random-looking text compresses poorly: pg_dump streams for seconds, long enough to be killed.
    sql(project["db_url"], "CREATE TABLE cargo AS SELECT g AS id, md5(g::text) || md5((g * 7)::text) AS a, md5((g * 13)::text) AS b FROM generate_series(1, 1500000) g")

    code, started = act(client, headers, "post", f"/v1/projects/{pid}/backups", wait=None)
    assert code == 202, started
    partial = backup_dir / pid / f".{started['backup_id']}.dump.partial"
    wait_for(lambda: partial.exists() and partial.stat().st_size > 1_000_000, timeout_s=60, what="the dump to be under way", interval_s=0.02)
    docker_engine.containers.get(f"project_{pid}_db").kill()

    operation = Operation.objects.get(public_id=started["operation"]["operation_id"])
    wait_for(lambda: (operation.refresh_from_db(), operation.is_settled)[1], timeout_s=60, what="the backup to settle")
    made = Backup.objects.get(public_id=started["backup_id"])
    assert operation.state == "failed" and made.state == "failed", (operation.state, made.state, made.error)
    assert "pg_dump" in made.error, made.error
    assert made.size is None and made.sha256 == ""
    assert [p.name for p in backup_dir.rglob("*") if p.is_file()] == []  # no file, no partial file
    code, detail = act(client, headers, "get", f"/v1/backups/{made.public_id}", wait=None)
    assert detail["state"] == "failed" and detail["download_url"] is None


def test_purge_takes_a_final_backup_that_restores(workers, user, client, docker_engine):
    headers = bearer(user)
    project = new_project_with_items(client, headers, "lighthouse", "pier")
    pid = project["project_id"]
    code, deleted = act(client, headers, "delete", f"/v1/projects/{pid}")
    assert code == 200 and deleted["status"] == "deleted", deleted
    code, purged = act(client, headers, "post", f"/v1/projects/{pid}/purge", {"confirm": pid})
    assert code == 200 and purged["status"] == "purged", purged["operation"]
    assert docker_engine.containers.list(all=True, filters={"label": f"berth.project={pid}"}) == []
    assert docker_engine.volumes.list(filters={"label": f"berth.project={pid}"}) == []

    code, listed = act(client, headers, "get", f"/v1/projects/{pid}/backups", wait=None)
    (final,) = listed["backups"]
    assert final["trigger"] == "pre-purge" and final["state"] == "verified", final
    assert final["tables"] == {"public.items": 2} and final["keep_until"]

    # The project is gone; its final backup restores into a new one.
    code, revived = act(client, headers, "post", "/v1/projects", {"name": "revived", "from_backup": final["backup_id"]})
    assert code == 201 and revived["status"] == "running", revived["operation"]
    assert names(revived["db_url"]) == ["lighthouse", "pier"]
    assert scratch_containers(docker_engine) == []
