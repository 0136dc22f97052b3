"""A project's life on a real Docker Swarm (`swarm up 2`) through the JSON API, with real workers:
placement and the node's address, stop/start, drift (services removed behind its back), delete/restore,
backups (dump, verify, restore), purge."""


import psycopg
import pytest

from projects.models import Project
from projects.services.pool.requests import pool_refill
from projects.services.fleet.drift import drift_report
from projects.services.fleet.watcher import projects_sync
from tests.conftest import bearer
from tests.engine import api_act, wait_for
from tests.integration.escalation import assert_not_escalated, plant

pytestmark = [pytest.mark.swarm]


act = api_act


def rows(db_url: str) -> list[str]:
    with psycopg.connect(db_url, connect_timeout=3) as conn:
        return [name for (name,) in conn.execute("SELECT name FROM items ORDER BY id")]


def in_database(db_url: str, database: str) -> str:
    """The db_url pointed at another database of the same server."""
    base, _, query = db_url.partition("?")
    return f"{base.rsplit('/', 1)[0]}/{database}{'?' + query if query else ''}"


def on_node(client, project_id: str) -> dict[str, list[str]]:
    label = f"berth.project={project_id}"
    return {
        "containers": [c["Names"][0] for c in client.api.containers(all=True, filters={"label": label})],
        # Managed ones: a task's own volumes (a read-only root's, ContainerSpec.own_volumes) go with its container.
        "volumes": [v["Name"] for v in client.api.volumes(filters={"label": [label, "berth.managed=true"]}).get("Volumes") or []],
    }


def test_project_lifecycle_on_the_swarm_keeps_data_on_its_node_until_purge(swarm_workers, user, client, swarm):
    headers = bearer(user)
    code, created = act(client, headers, "post", "/v1/projects", {"name": "fleet"})
    assert code == 201 and created["status"] == "running", created["operation"]
    node, pid, db_url = created["node"], created["project_id"], created["db_url"]
    assert node in swarm and f"@127.0.10.{node[1:]}:" in db_url and created["api_url"].startswith(f"http://127.0.10.{node[1:]}:")
    with psycopg.connect(db_url, connect_timeout=3) as conn:
        conn.execute("CREATE TABLE items (id serial PRIMARY KEY, name text NOT NULL)")
        conn.execute("INSERT INTO items (name) VALUES ('anchor'), ('rope')")
    # The data volume is on its node only.
    assert [name for name, c in swarm.items() if on_node(c, pid)["volumes"]] == [node]

    code, stopped = act(client, headers, "post", f"/v1/projects/{pid}/stop")
    assert (code, stopped["status"]) == (200, "stopped")
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(db_url, connect_timeout=3)
    code, started = act(client, headers, "post", f"/v1/projects/{pid}/start")
    assert (code, started["status"]) == (200, "running"), started["operation"]
    assert rows(db_url) == ["anchor", "rope"]

    # Services removed behind Berth's back: sync and drift say so, nothing comes back
    # by itself, and start recreates them on the same node, on the data.
    manager = swarm[next(iter(swarm))].api
    for service in ("api", "db"):
        manager.remove_service(f"project_{pid}_{service}")
    report = projects_sync()
    assert Project.objects.get(public_id=pid).health == "missing"
    [drift] = [d for d in report.drift if d.project_id == pid]
    assert drift.problem == "running, but its containers are missing" and drift.fix.startswith("start")
    assert [e.problem for e in drift_report().of(pid)] == ["running, but its containers are missing"]
    code, started = act(client, headers, "post", f"/v1/projects/{pid}/start")
    assert (code, started["status"], started["node"]) == (200, "running", node), started["operation"]
    assert rows(db_url) == ["anchor", "rope"]
    wait_for(lambda: drift_report().of(pid) == [], timeout_s=30, what="the drift to clear", interval_s=0.5)

    # A backup: dumped, verified in a throwaway on the node, and restored over later changes.
    code, made = act(client, headers, "post", f"/v1/projects/{pid}/backups")
    assert code == 201 and made["state"] == "verified", made
    assert made["tables"] == {"public.items": 2}
    with psycopg.connect(db_url, connect_timeout=3) as conn:
        conn.execute("DELETE FROM items WHERE name = 'rope'")
    code, restored = act(client, headers, "post", f"/v1/backups/{made['backup_id']}/restore", {"confirm": pid})
    assert code == 200 and restored["operation"]["state"] == "succeeded", restored["operation"]
    assert rows(db_url) == ["anchor", "rope"]

    code, deleted = act(client, headers, "delete", f"/v1/projects/{pid}")
    assert (code, deleted["status"]) == (200, "deleted")
    assert on_node(swarm[node], pid) == {"containers": [], "volumes": [f"project_{pid}_data"]}
    code, back = act(client, headers, "post", f"/v1/projects/{pid}/restore")
    assert (code, back["status"], back["node"], back["db_url"]) == (200, "stopped", node, db_url)
    code, started = act(client, headers, "post", f"/v1/projects/{pid}/start")
    assert (code, started["status"]) == (200, "running")
    assert rows(db_url) == ["anchor", "rope"]

    assert act(client, headers, "delete", f"/v1/projects/{pid}")[1]["status"] == "deleted"
    code, purged = act(client, headers, "post", f"/v1/projects/{pid}/purge", {"confirm": pid})
    assert (code, purged["status"]) == (200, "purged"), purged["operation"]
    assert all(on_node(c, pid) == {"containers": [], "volumes": []} for c in swarm.values())
    assert not [s for s in swarm[next(iter(swarm))].api.services() if s["Spec"]["Name"].startswith(f"project_{pid}")]


def test_two_projects_are_spread_over_the_nodes_and_a_clone_takes_its_rows_to_the_other(swarm_workers, user, client, swarm):
    headers = bearer(user)
    first = act(client, headers, "post", "/v1/projects", {"name": "one"})[1]
    assert first["status"] == "running", first["operation"]
    with psycopg.connect(first["db_url"], connect_timeout=3) as conn:
        conn.execute("CREATE TABLE items (id serial PRIMARY KEY, name text NOT NULL)")
        conn.execute("INSERT INTO items (name) VALUES ('keel'), ('mast')")
    code, backup = act(client, headers, "post", f"/v1/projects/{first['project_id']}/backups")
    assert code == 201 and backup["state"] == "verified", backup
    # A clone is a create: placed by free memory (the other node, now), then the backup restored there.
    code, clone = act(client, headers, "post", "/v1/projects", {"name": "two", "from_backup": backup["backup_id"]})
    assert code == 201 and clone["status"] == "running", clone["operation"]
    assert {first["node"], clone["node"]} == set(swarm)
    assert f"@127.0.10.{clone['node'][1:]}:" in clone["db_url"]
    assert rows(clone["db_url"]) == ["keel", "mast"]


def test_a_warm_pool_stack_on_the_swarm_is_claimed_on_its_node(swarm_workers, user, client, swarm, settings):
    settings.BERTH_WARM_POOL = ((None, None, 1),)
    pool_refill()
    pooled = lambda: Project.objects.filter(owner__isnull=True, status="pooled", health="healthy").first()  # noqa: E731
    stack = wait_for(pooled, timeout_s=120, what="a pooled stack on the swarm", interval_s=0.25)
    assert stack.node in swarm
    settings.BERTH_WARM_POOL = ()  # no refill after the claim: one stack is all this test needs
    answer = client.post("/v1/projects", data={"name": "quick"}, content_type="application/json", **bearer(user))
    claimed = answer.json()
    assert answer.status_code == 202 and claimed["operation"]["kind"] == "claim", claimed
    assert (claimed["project_id"], claimed["status"], claimed["node"]) == (stack.public_id, "running", stack.node)
    with psycopg.connect(claimed["db_url"], connect_timeout=3) as conn:
        assert conn.execute("SELECT current_user").fetchone() == ("app",)


def test_move_takes_the_rows_to_the_other_node_and_keeps_the_old_volume_until_purge(swarm_workers, user, client, swarm, django_user_model):
    from django.contrib.auth.models import Permission

    operator = django_user_model.objects.create_user("harbourmaster", password="x" * 16, is_staff=True)
    operator.user_permissions.add(Permission.objects.get(codename="change_project"))
    headers = bearer(user)
    code, created = act(client, headers, "post", "/v1/projects", {"name": "cargo"})
    assert code == 201 and created["status"] == "running", created["operation"]
    pid, source = created["project_id"], created["node"]
    target = next(name for name in swarm if name != source)
    # The tenant plants the escalation (issue 22, tests/integration/escalation.py), which makes `items` too:
    # the move's dump and restore must never run its functions as a superuser.
    plant(created["db_url"])
    with psycopg.connect(created["db_url"], connect_timeout=3) as conn:
        conn.execute("INSERT INTO items (name) SELECT 'crate ' || n FROM generate_series(1, 250) AS n")
    everything = rows(created["db_url"])
    assert len(everything) == 253
    # A second database the owner made moves with it (issue 26: every database is data).
    ledger_url = in_database(created["db_url"], "ledger")
    with psycopg.connect(created["db_url"], connect_timeout=3, autocommit=True) as conn:
        conn.execute("CREATE DATABASE ledger")
    with psycopg.connect(ledger_url, connect_timeout=3) as conn:  # qualified: the planted role search_path starts with evil
        conn.execute("CREATE TABLE public.items (id serial PRIMARY KEY, name text NOT NULL)")
        conn.execute("INSERT INTO public.items (name) VALUES ('ledger entry')")

    code, refused = act(client, headers, "post", f"/v1/projects/{pid}/move", {"node": target}, wait=0)
    assert code == 403, refused  # staff only
    code, moved = act(client, bearer(operator), "post", f"/v1/projects/{pid}/move", {"node": target}, wait=120)
    if code == 202:  # a backup, a new stack and a restore: it may take longer than one wait
        moved = wait_for(lambda: _settled(client, headers, pid), timeout_s=120, what="the move to settle", interval_s=1)
    assert moved["operation"]["state"] == "succeeded", moved["operation"].get("error")
    assert (moved["status"], moved["node"]) == ("running", target)
    owner_view = client.get(f"/v1/projects/{pid}", **headers).json()
    assert f"@127.0.10.{target[1:]}:" in owner_view["db_url"]
    assert rows(owner_view["db_url"]) == everything
    with psycopg.connect(in_database(owner_view["db_url"], "ledger"), connect_timeout=3) as conn:
        assert conn.execute("SELECT name FROM public.items").fetchall() == [("ledger entry",)]
    assert_not_escalated(owner_view["db_url"], "move")
    # The old volume waits on the old node until purge; the stack runs on the new one only.
    assert on_node(swarm[source], pid) == {"containers": [], "volumes": [f"project_{pid}_data"]}
    assert on_node(swarm[target], pid)["volumes"] == [f"project_{pid}_data"]

    assert act(client, headers, "delete", f"/v1/projects/{pid}")[1]["status"] == "deleted"
    code, purged = act(client, headers, "post", f"/v1/projects/{pid}/purge", {"confirm": pid})
    assert (code, purged["status"]) == (200, "purged"), purged["operation"]
    assert all(on_node(c, pid) == {"containers": [], "volumes": []} for c in swarm.values())


def _settled(client, headers, pid: str) -> dict | None:
    answer = client.get(f"/v1/projects/{pid}", **headers).json()
    [latest, *_] = client.get(f"/v1/projects/{pid}/operations", **headers).json()["operations"]
    return {**answer, "operation": latest} if latest["state"] in ("succeeded", "failed") else None
