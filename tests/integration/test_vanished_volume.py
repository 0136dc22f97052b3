"""A project whose data volume was removed behind Berth's back, on the real engine (issue 15, item 2).

Its start fails naming the backup to restore and the owner's other choice;
the restore brings the rows back; start with allow_empty_database gives an
empty database, and only then.
"""

import subprocess

import psycopg
import pytest

from projects.services.fleet.drift import drift_report
from tests.conftest import bearer
from tests.integration.test_backups import act, names, new_project_with_items, workers  # noqa: F401 (fixtures)

pytestmark = pytest.mark.integration


def docker(*args: str) -> None:
    # The docker CLI, as a person removing things by hand would.
    subprocess.run(["docker", *args], check=True, capture_output=True, timeout=60)


def remove_behind_berths_back(project_id: str) -> None:
    docker("rm", "-f", f"project_{project_id}_api", f"project_{project_id}_db")
    docker("volume", "rm", f"project_{project_id}_data")


def tables(db_url: str) -> list[str]:
    with psycopg.connect(db_url, connect_timeout=3) as conn:
        return [name for (name,) in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")]


def test_a_vanished_volume_is_refused_until_a_backup_is_restored_or_an_empty_database_allowed(workers, user, client, docker_engine):
    headers = bearer(user)
    project = new_project_with_items(client, headers, "anchor")
    pid = project["project_id"]
    code, backup = act(client, headers, "post", f"/v1/projects/{pid}/backups")
    assert code == 201 and backup["state"] == "verified", backup
    assert act(client, headers, "post", f"/v1/projects/{pid}/stop")[1]["status"] == "stopped"
    remove_behind_berths_back(pid)

    (entry,) = drift_report().of(pid)
    assert entry.kind == "volume" and f"restore backup {backup['backup_id']}" in entry.fix

    code, failed = act(client, headers, "post", f"/v1/projects/{pid}/start")
    assert code == 200 and (failed["status"], failed["health"]) == ("failed", "missing"), failed
    error = failed["operation"]["error"]
    assert f"data volume project_{pid}_data is gone" in error and f"restore backup {backup['backup_id']}" in error
    assert '{"allow_empty_database": true}' in error
    assert not docker_engine.api.volumes(filters={"name": f"project_{pid}_data"}).get("Volumes")

    # The fix it names: the backup comes back into a new volume, then start.
    code, restored = act(client, headers, "post", f"/v1/backups/{backup['backup_id']}/restore", {"confirm": pid})
    assert code == 200 and restored["operation"]["state"] == "succeeded" and restored["status"] == "stopped", restored
    assert act(client, headers, "post", f"/v1/projects/{pid}/start")[1]["status"] == "running"
    assert names(project["db_url"]) == ["anchor"]

    # Gone again; this time the owner wants an empty database.
    assert act(client, headers, "post", f"/v1/projects/{pid}/stop")[1]["status"] == "stopped"
    remove_behind_berths_back(pid)
    assert act(client, headers, "post", f"/v1/projects/{pid}/start")[1]["status"] == "failed"
    code, started = act(client, headers, "post", f"/v1/projects/{pid}/start", {"allow_empty_database": True})
    assert code == 200 and (started["status"], started["health"]) == ("running", "healthy"), started
    assert tables(project["db_url"]) == []
