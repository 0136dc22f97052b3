"""A tenant cannot become a superuser through Berth's own sessions (issue 22, items 1-4), on the real engine.

With only its db_url (the owner `app`), a tenant plants functions and an
operator that shadow pg_catalog's in a schema of its own, puts that schema
first in the database's and its role's search_path, and hangs the same
functions on a check constraint, an index expression, a default, a trigger and
a materialized view. Each planted function, when its caller is a superuser,
records it (who, from where) in `evil.log` and makes `app` a superuser. Then
every Berth action that opens a session on the tenant's server runs, and after
each: `app` is no superuser and no planted function ever ran as one.

Move is Swarm-only: test_swarm_lifecycle.py plants the same escalation before
its move and checks it after.
"""

import json
from urllib.parse import quote

import pytest

from projects.models import Project
from projects.services.fleet.metrics import metrics_sample, metrics_snapshot
from projects.services.pool.requests import pool_refill
from tests.conftest import bearer
from tests.engine import Workers, api_act, wait_for
from tests.integration.escalation import assert_not_escalated, plant, query

pytestmark = pytest.mark.integration

act = api_act

def as_admin(project: dict) -> str:
    row = Project.objects.get(public_id=project["project_id"])
    return project["db_url"].replace(f"app:{quote(row.db_password, safe='')}@", f"{row.admin_user}:{quote(row.admin_password, safe='')}@")


def security_events(pid: str) -> list[str]:
    from projects.models import SecurityEvent

    return [event.detail for event in SecurityEvent.objects.filter(project__public_id=pid)]


@pytest.fixture
def workers(transactional_db, tmp_path, backup_dir):
    pool = Workers(2, tmp_path, BERTH_BACKUP_DIR=str(backup_dir))
    pool.start()
    yield pool
    pool.stop()


def test_a_claimed_stack_planted_by_its_tenant_survives_sampling_restart_reconfigure_and_rotation_without_escalation(
    workers, user, client, settings
):
    settings.BERTH_WARM_POOL = ((None, None, 1),)
    pool_refill()
    wait_for(lambda: Project.objects.filter(owner__isnull=True, status="pooled", health="healthy").exists(),
             timeout_s=120, what="a pooled stack", interval_s=0.25)  # fmt: skip
    settings.BERTH_WARM_POOL = ()  # no refill behind the claim: nothing else runs beside this test's actions
    headers = bearer(user)
    code, project = act(client, headers, "post", "/v1/projects", {"name": "tenant"})
    assert code == 201 and project["operation"]["kind"] == "claim", project
    pid, db_url = project["project_id"], project["db_url"]
    plant(db_url)
    assert_not_escalated(db_url, "the plant")

    report = metrics_sample()
    assert report.errors == [] and report.projects == 1, report.errors
    assert_not_escalated(db_url, "a metrics pass")

    code, stopped = act(client, headers, "post", f"/v1/projects/{pid}/stop")
    assert code == 200 and stopped["operation"]["state"] == "succeeded", stopped["operation"]
    code, started = act(client, headers, "post", f"/v1/projects/{pid}/start")
    assert_not_escalated(db_url, "a start (the bootstrap)")
    assert code == 200 and started["operation"]["state"] == "succeeded", started["operation"]["error"]

    response = client.patch(f"/v1/projects/{pid}?wait=60", data=json.dumps({"postgres_settings": {"work_mem": "8MB"}}),
                            content_type="application/json", **headers)  # fmt: skip
    assert response.status_code == 200 and response.json()["operation"]["state"] == "succeeded", response.json()
    assert query(db_url, "SHOW work_mem") == [("8MB",)]
    assert_not_escalated(db_url, "a reconfigure (the settings check and the reload)")

    for what in ("password", "keys"):
        response = client.post(f"/v1/projects/{pid}/rotate?wait=120", data={"what": what}, content_type="application/json", **headers)
        assert response.status_code == 200 and response.json()["operation"]["state"] == "succeeded", response.json()
    db_url = Project.objects.get(public_id=pid).db_url().replace("localhost", "127.0.0.1")
    assert_not_escalated(db_url, "a rotation")
    assert query(db_url, "SELECT count(*) FROM public.items") == [(3,)]
    assert security_events(pid) == []  # nothing to heal: nothing escalated

    # What an escalation would have left (made here by the superuser's hand): the next start heals it, and says so.
    admin = as_admin({"project_id": pid, "db_url": db_url})
    query(admin, "CREATE ROLE sneaky SUPERUSER")
    query(admin, "GRANT pg_execute_server_program, pg_read_server_files TO app")
    response = client.post(f"/v1/projects/{pid}/start?wait=120", data={}, content_type="application/json", **headers)
    assert response.status_code == 200 and response.json()["operation"]["state"] == "succeeded", response.json()
    assert query(db_url, "SELECT rolname FROM pg_catalog.pg_roles WHERE rolsuper ORDER BY 1") == [("berth_admin",)]
    assert query(db_url, "SELECT pg_catalog.pg_has_role('app', 'pg_execute_server_program', 'MEMBER')") == [(False,)]
    assert sorted(security_events(pid)) == [
        "role app was granted pg_execute_server_program: revoked",
        "role app was granted pg_read_server_files: revoked",
        "role sneaky was a superuser: it is not any more",
    ]
    assert metrics_snapshot().security_events == {"role_revoked": 2, "superuser_demoted": 1}  # /metrics' berth_security_events


def test_backup_verify_restore_clone_upgrade_and_rollback_of_a_planted_database_never_run_its_functions_as_a_superuser(
    workers, user, client
):
    headers = bearer(user)
    code, project = act(client, headers, "post", "/v1/projects", {"name": "tenant", "postgres_version": "15"})
    assert code == 201 and project["status"] == "running", project
    pid, db_url = project["project_id"], project["db_url"]
    plant(db_url)

    code, made = act(client, headers, "post", f"/v1/projects/{pid}/backups")
    assert code == 201 and made["state"] == "verified", made["error"]  # dumped, then restored in a throwaway and counted
    assert made["tables"] == {"evil.log": 0, "public.items": 3}
    assert_not_escalated(db_url, "a backup and its verification")

    query(db_url, "DELETE FROM public.items WHERE name <> 'anchor'")
    code, restored = act(client, headers, "post", f"/v1/backups/{made['backup_id']}/restore", {"confirm": pid})
    assert code == 200 and restored["operation"]["state"] == "succeeded", restored["operation"]
    assert query(db_url, "SELECT name FROM public.items ORDER BY id") == [("anchor",), ("rope",), ("sail",)]
    # The tenant's objects are the tenant's again, its traps included.
    assert query(db_url, "SELECT pg_catalog.pg_get_userbyid(relowner) FROM pg_catalog.pg_class WHERE relname OPERATOR(pg_catalog.=) 'items_indexed'") == [("app",)]
    assert_not_escalated(db_url, "a restore from backup")

    code, clone = act(client, headers, "post", "/v1/projects", {"name": "tenant-copy", "from_backup": made["backup_id"]})
    assert code == 201 and clone["status"] == "running", clone["operation"]["error"]
    assert query(clone["db_url"], "SELECT count(*) FROM public.items") == [(3,)]
    assert_not_escalated(clone["db_url"], "a clone")

    code, upgraded = act(client, headers, "post", f"/v1/projects/{pid}/upgrade", {"postgres_version": "17"})
    assert code == 200 and upgraded["operation"]["state"] == "succeeded", upgraded["operation"]
    assert query(db_url, "SHOW server_version_num")[0][0].startswith("17")
    assert query(db_url, "SELECT count(*) FROM public.items") == [(3,)]
    # Berth's own objects work on the new server: PostGraphile watches (its readiness asks), the api answers.
    assert query(as_admin(project), "SELECT count(*) FROM pg_catalog.pg_event_trigger WHERE evtname OPERATOR(pg_catalog.=) 'postgraphile_watch_ddl'") == [(1,)]
    assert_not_escalated(db_url, "an upgrade to 17")

    code, back = act(client, headers, "post", f"/v1/projects/{pid}/rollback-upgrade")
    assert code == 200 and back["operation"]["state"] == "succeeded", back["operation"]
    assert query(db_url, "SHOW server_version_num")[0][0].startswith("15")
    assert_not_escalated(db_url, "a rollback")
    assert security_events(pid) == [] and security_events(clone["project_id"]) == []
