"""Every path that removes a running database stops it cleanly first (issue 15, item 3).

A forced removal SIGKILLs postgres, and its next start has to recover:
"database system was not properly shut down; automatic recovery in progress".
"""

import pytest

from tests.conftest import bearer
from tests.engine import wait_for
from tests.integration.test_lifecycle import act

pytestmark = pytest.mark.integration

UNCLEAN = "not properly shut down"


def db_log(docker_engine, project_id: str) -> str:
    return docker_engine.containers.get(f"project_{project_id}_db").logs().decode("utf-8", errors="replace")


def test_delete_of_a_running_project_shuts_its_database_down_cleanly(workers, user, client, docker_engine):
    headers = bearer(user)
    code, created = act(client, headers, "post", "/v1/projects", {"name": "clean"})
    assert code == 201, created
    project_id = created["project_id"]

    assert act(client, headers, "delete", f"/v1/projects/{project_id}")[1]["status"] == "deleted"
    assert act(client, headers, "post", f"/v1/projects/{project_id}/restore")[1]["status"] == "stopped"
    code, started = act(client, headers, "post", f"/v1/projects/{project_id}/start")
    assert (code, started["status"]) == (200, "running"), started
    log = wait_for(lambda: db_log(docker_engine, project_id), timeout_s=10, what="the db's log")
    assert "ready to accept connections" in log
    assert UNCLEAN not in log, log[-2000:]


def test_a_backup_of_a_stopped_project_leaves_its_data_directory_shut_down_cleanly(workers, user, client, docker_engine):
    headers = bearer(user)
    code, created = act(client, headers, "post", "/v1/projects", {"name": "dumped"})
    assert code == 201, created
    project_id = created["project_id"]
    assert act(client, headers, "post", f"/v1/projects/{project_id}/stop")[1]["status"] == "stopped"

    # The dump runs in a throwaway server on the project's own volume; its removal must not kill it.
    code, backup = act(client, headers, "post", f"/v1/projects/{project_id}/backups", wait=120)
    assert code == 201 and backup["state"] == "verified", backup
    code, started = act(client, headers, "post", f"/v1/projects/{project_id}/start")
    assert (code, started["status"]) == (200, "running"), started
    assert UNCLEAN not in db_log(docker_engine, project_id)
