"""Before a dump on the real engine: no room on the backup disk refuses it, and a held table lock fails it in bounded time."""

import json
import shutil
import time

import psycopg
import pytest

from projects.models import Backup
from tests.conftest import bearer
from tests.engine import Workers

pytestmark = pytest.mark.integration


def post(client, headers, path: str, wait: int = 120):
    response = client.post(f"{path}?wait={wait}", data="{}", content_type="application/json", **headers)
    return response.status_code, response.json()


@pytest.fixture
def project(transactional_db, user, client, tmp_path, backup_dir) -> dict:
    pool = Workers(1, tmp_path)
    pool.start()
    try:
        code, created = post(client, bearer(user), "/v1/projects", wait=120)
    finally:
        pool.stop()
    assert code == 201 and created["status"] == "running", created["operation"]["error"]
    with psycopg.connect(created["db_url"], connect_timeout=3) as conn:
        conn.execute("CREATE TABLE items (id serial PRIMARY KEY, name text)")
        conn.execute("INSERT INTO items (name) VALUES ('hull')")
    return created


def test_a_dump_larger_than_the_room_left_is_refused_and_writes_nothing(user, client, tmp_path, backup_dir, project):
    # A database of about 100 MB and about 30 MB of room: the disk is shared,
    # and its free space moves by a few MB while the test runs.
    with psycopg.connect(project["db_url"], connect_timeout=3) as conn:
        conn.execute("CREATE TABLE cargo AS SELECT g AS id, md5(g::text) || md5((g * 7)::text) AS a FROM generate_series(1, 1000000) g")
    margin = shutil.disk_usage(backup_dir).free - 30 * 1024 * 1024
    pool = Workers(1, tmp_path, BERTH_BACKUP_DIR=str(backup_dir), BERTH_BACKUP_FREE_MARGIN=str(margin))
    pool.start()
    try:
        code, backup = post(client, bearer(user), f"/v1/projects/{project['project_id']}/backups")
    finally:
        pool.stop()
    assert code == 201 and backup["state"] == "failed", backup
    assert "not enough free space" in backup["error"] and "BERTH_BACKUP_FREE_MARGIN" in backup["error"]
    assert [p for p in backup_dir.rglob("*") if p.is_file()] == []


def test_a_dump_behind_a_held_lock_fails_after_the_lock_wait_naming_the_lock(user, client, tmp_path, backup_dir, project):
    pool = Workers(1, tmp_path, BERTH_BACKUP_DIR=str(backup_dir), BERTH_BACKUP_LOCK_WAIT_SECONDS="2")
    pool.start()
    try:
        with psycopg.connect(project["db_url"], connect_timeout=3) as holder:
            holder.execute("LOCK TABLE items IN ACCESS EXCLUSIVE MODE")  # held until the block ends
            started = time.monotonic()
            code, backup = post(client, bearer(user), f"/v1/projects/{project['project_id']}/backups", wait=60)
            took = time.monotonic() - started
    finally:
        pool.stop()
    assert code == 201 and backup["state"] == "failed", backup
    assert "stayed locked" in backup["error"] and "BERTH_BACKUP_LOCK_WAIT_SECONDS (2 s)" in backup["error"], backup["error"]
    assert took < 50  # failed on its own, well before ?wait ran out (no timing target: only "bounded")
    assert Backup.objects.get(public_id=backup["backup_id"]).size is None
