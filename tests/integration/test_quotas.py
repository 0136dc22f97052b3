"""A quota refusal on the real engine: 403 quota_exceeded, and nothing on the engine, in the database or on disk changes."""

import json

import pytest

from projects.models import Backup, Operation, Project
from tests.conftest import bearer
from tests.engine import TEST_LABEL

pytestmark = pytest.mark.integration


def ours(docker_engine) -> dict[str, list[str]]:
    label = TEST_LABEL
    return {
        "containers": sorted(c.name for c in docker_engine.containers.list(all=True, filters={"label": label})),
        "networks": sorted(n.name for n in docker_engine.networks.list(filters={"label": label})),
        "volumes": sorted(v.name for v in docker_engine.volumes.list(filters={"label": label})),
    }


def rows() -> tuple:
    return (
        list(Project.objects.order_by("pk").values_list("pk", "status", "db_port", "api_port")),
        list(Operation.objects.order_by("pk").values_list("pk", "state")),
        list(Backup.objects.order_by("pk").values_list("pk", "state")),
    )


def test_quota_refusals_change_nothing_on_the_engine(workers, user, client, docker_engine, settings):
    settings.BERTH_QUOTA_PROJECTS = 1
    settings.BERTH_QUOTA_BACKUPS = 0
    headers = bearer(user)
    created = client.post("/v1/projects?wait=90", data=json.dumps({"name": "only"}), content_type="application/json", **headers)
    assert created.status_code == 201 and created.json()["status"] == "running", created.content
    project_id = created.json()["project_id"]
    engine_before, rows_before = ours(docker_engine), rows()
    backup_dir = settings.BERTH_BACKUP_DIR / project_id

    second = client.post("/v1/projects?wait=30", data=json.dumps({"name": "second"}), content_type="application/json", **headers)
    assert second.status_code == 403 and second.json()["error"]["code"] == "quota_exceeded"
    backup = client.post(f"/v1/projects/{project_id}/backups?wait=30", data="{}", content_type="application/json", **headers)
    assert backup.status_code == 403 and backup.json()["error"]["limit"] == "backups"

    assert ours(docker_engine) == engine_before and rows() == rows_before
    assert not backup_dir.exists() or not any(backup_dir.iterdir())
