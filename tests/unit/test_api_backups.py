"""/v1 backups: status codes, error format, who may see and download what, with FakeRuntime."""

import base64
import hashlib
import json

import pytest

from projects.models import Backup, Project
from projects.services.backups import requests as backups
from projects.services.operations import steps
from tests.conftest import bearer


@pytest.fixture
def queued_only(settings):
    """Tasks are recorded but not run, so answers show operations in flight."""
    settings.TASKS = {"default": {"BACKEND": "django.tasks.backends.dummy.DummyBackend"}}


def post(client, path, body=None, headers=None):
    return client.post(path, data=json.dumps(body or {}), content_type="application/json", **(headers or {}))


@pytest.fixture
def project(client, user, fake_runtime) -> dict:
    response = post(client, "/v1/projects?wait=5", {"name": "shop"}, bearer(user))
    assert response.status_code == 201
    body = response.json()
    fake_runtime.databases[f"project_{body['project_id']}_data"] = {"public.items": 2}
    return body


def take(client, headers, project_id: str) -> dict:
    response = post(client, f"/v1/projects/{project_id}/backups?wait=5", headers=headers)
    assert response.status_code == 201, response.content
    return response.json()


def test_post_backups_answers_202_with_the_running_backup_and_its_operation(client, user, project, queued_only):
    response = post(client, f"/v1/projects/{project['project_id']}/backups", headers=bearer(user))
    assert response.status_code == 202
    body = response.json()
    assert body["state"] == "running" and body["trigger"] == "manual" and body["download_url"] is None
    assert body["operation"]["kind"] == "backup" and body["operation"]["state"] == "queued"


def test_post_backups_with_wait_answers_201_with_the_verified_backup(client, user, project):
    body = take(client, bearer(user), project["project_id"])
    assert body["state"] == "verified" and body["operation"]["state"] == "succeeded"
    assert body["tables"] == {"public.items": 2} and body["rows"] == 2
    assert body["size"] > 0 and len(body["sha256"]) == 64
    assert body["download_url"] == f"/v1/backups/{body['backup_id']}/download"


def test_a_backup_during_an_engine_outage_answers_failed_with_the_engines_reason(client, user, project, fake_runtime):
    from projects.runtime import RuntimeUnavailable

    fake_runtime.fail_with("ping", RuntimeUnavailable("Docker Engine unreachable at unix:///x: refused"))
    response = post(client, f"/v1/projects/{project['project_id']}/backups?wait=5", headers=bearer(user))
    assert response.status_code == 201
    body = response.json()
    assert body["operation"]["state"] == "failed" and "Docker Engine unreachable" in body["operation"]["error"]
    assert body["state"] == "failed" and body["error"] == body["operation"]["error"]


def test_wait_never_answers_settled_for_a_backup_still_running(client, user, project, monkeypatch):
    # A step that ends without settling its backup (a bug): the operation is
    # over, the backup is not, and the answer says "not yet" (202), never 201.
    from projects.services.operations import queue as operations

    monkeypatch.setitem(operations.STEPS, "backup", lambda p: {})
    response = post(client, f"/v1/projects/{project['project_id']}/backups?wait=1", headers=bearer(user))
    body = response.json()
    assert body["operation"]["state"] == "succeeded" and body["state"] == "running"
    assert response.status_code == 202


def test_get_backups_lists_them_newest_first_with_the_schedule(client, user, project):
    headers = bearer(user)
    first, second = take(client, headers, project["project_id"]), take(client, headers, project["project_id"])
    response = client.get(f"/v1/projects/{project['project_id']}/backups", **headers)
    assert response.status_code == 200
    assert [b["backup_id"] for b in response.json()["backups"]] == [second["backup_id"], first["backup_id"]]
    assert response.json()["schedule"] is None


def test_a_second_backup_while_one_is_in_flight_is_409_naming_it(client, user, project, queued_only):
    headers = bearer(user)
    first = post(client, f"/v1/projects/{project['project_id']}/backups", headers=headers).json()
    response = post(client, f"/v1/projects/{project['project_id']}/backups", headers=headers)
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "operation_in_flight"
    assert response.json()["error"]["operation"]["operation_id"] == first["operation"]["operation_id"]


def test_backup_of_a_deleted_project_is_409(client, user, project):
    headers = bearer(user)
    assert client.delete(f"/v1/projects/{project['project_id']}?wait=5", **headers).status_code == 200
    response = post(client, f"/v1/projects/{project['project_id']}/backups", headers=headers)
    assert response.status_code == 409 and response.json()["error"]["code"] == "wrong_state"


def test_backups_of_someone_elses_project_are_404_and_without_a_token_401(client, user, other_user, project):
    path = f"/v1/projects/{project['project_id']}/backups"
    for response in (client.get(path, **bearer(other_user)), post(client, path, headers=bearer(other_user))):
        assert response.status_code == 404 and response.json()["error"]["code"] == "not_found"
    assert client.get(path).status_code == 401


def test_post_backups_refuses_fields_and_a_bad_wait(client, user, project):
    headers = bearer(user)
    response = post(client, f"/v1/projects/{project['project_id']}/backups", {"label": "x"}, headers)
    assert response.status_code == 400 and response.json()["error"]["field"] == "label"
    response = post(client, f"/v1/projects/{project['project_id']}/backups?wait=soon", headers=headers)
    assert response.status_code == 400 and response.json()["error"]["field"] == "wait"
    assert not Backup.objects.exists()


def test_backup_detail_for_its_owner_and_staff_404_for_others(client, user, other_user, staff, project):
    made = take(client, bearer(user), project["project_id"])
    path = f"/v1/backups/{made['backup_id']}"
    assert client.get(path, **bearer(user)).json()["backup_id"] == made["backup_id"]
    assert client.get(path, **bearer(staff)).status_code == 200
    assert client.get(path, **bearer(other_user)).status_code == 404
    assert client.get("/v1/backups/000000000000", **bearer(user)).status_code == 404


def test_verify_answers_200_with_wait_and_409_for_a_backup_without_a_file(client, user, project):
    headers = bearer(user)
    made = take(client, headers, project["project_id"])
    response = post(client, f"/v1/backups/{made['backup_id']}/verify?wait=5", headers=headers)
    assert response.status_code == 200
    assert response.json()["state"] == "verified" and response.json()["operation"]["kind"] == "verify_backup"
    Backup.objects.filter(public_id=made["backup_id"]).update(state="failed")
    response = post(client, f"/v1/backups/{made['backup_id']}/verify", headers=headers)
    assert response.status_code == 409 and "no file to verify" in response.json()["error"]["message"]


def test_verify_of_an_altered_file_settles_verify_failed_and_restore_is_409(client, user, project):
    headers = bearer(user)
    made = take(client, headers, project["project_id"])
    path = backups.backup_path(Backup.objects.get(public_id=made["backup_id"]))
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))
    verified = post(client, f"/v1/backups/{made['backup_id']}/verify?wait=5", headers=headers).json()
    assert verified["state"] == "verify_failed" and "sha256" in verified["error"]
    response = post(client, f"/v1/backups/{made['backup_id']}/restore", {"confirm": project["project_id"]}, headers)
    assert response.status_code == 409 and response.json()["error"]["code"] == "wrong_state"
    assert "verify_failed" in response.json()["error"]["message"]


def test_restore_needs_confirm_then_answers_with_the_project_and_the_safety_backup(client, user, project, fake_runtime):
    headers = bearer(user)
    made = take(client, headers, project["project_id"])
    fake_runtime.databases[f"project_{project['project_id']}_data"] = {}
    path = f"/v1/backups/{made['backup_id']}/restore?wait=5"
    response = post(client, path, {}, headers)
    assert response.status_code == 400 and response.json()["error"]["field"] == "confirm"
    response = post(client, path, {"confirm": project["project_id"]}, headers)
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["project_id"] == project["project_id"] and body["status"] == "running"
    assert body["operation"]["kind"] == "restore_backup" and body["operation"]["state"] == "succeeded"
    assert body["backup"]["backup_id"] == made["backup_id"]
    assert body["safety_backup"]["trigger"] == "pre-restore" and body["safety_backup"]["state"] == "verified"
    assert fake_runtime.databases[f"project_{project['project_id']}_data"] == {"public.items": 2}


def test_restore_in_flight_answers_202(client, user, project, queued_only):
    made = Backup.objects.create(
        project=Project.objects.get(public_id=project["project_id"]), state="verified", postgres_version="17", size=1, sha256="0" * 64
    )
    response = post(client, f"/v1/backups/{made.public_id}/restore", {"confirm": project["project_id"]}, bearer(user))
    assert response.status_code == 202 and response.json()["operation"]["state"] == "queued"
    assert response.json()["safety_backup"] is None


def test_download_streams_the_file_to_the_owner_only(client, user, staff, other_user, project):
    made = take(client, bearer(user), project["project_id"])
    path = f"/v1/backups/{made['backup_id']}/download"
    response = client.get(path, **bearer(user))
    assert response.status_code == 200 and response["Content-Type"] == "application/octet-stream"
    content = b"".join(response.streaming_content)
    assert hashlib.sha256(content).hexdigest() == made["sha256"] and len(content) == made["size"]
    assert response["Repr-Digest"] == f"sha-256=:{base64.b64encode(hashlib.sha256(content).digest()).decode()}:"
    assert f'filename="{project["project_id"]}-' in response["Content-Disposition"]
    forbidden = client.get(path, **bearer(staff))
    assert forbidden.status_code == 403 and forbidden.json()["error"]["code"] == "forbidden"
    assert client.get(path, **bearer(other_user)).status_code == 404


def test_download_of_a_backup_without_a_file_is_409_and_of_a_lost_file_410(client, user, project):
    headers = bearer(user)
    made = take(client, headers, project["project_id"])
    backup = Backup.objects.get(public_id=made["backup_id"])
    backups.backup_path(backup).unlink()
    assert client.get(f"/v1/backups/{made['backup_id']}/download", **headers).status_code == 410
    backup.state = "failed"
    backup.save()
    assert client.get(f"/v1/backups/{made['backup_id']}/download", **headers).status_code == 409


def _altered(made: dict) -> Backup:
    """The backup's file with one byte flipped, as its verification found it: verify_failed."""
    backup = Backup.objects.get(public_id=made["backup_id"])
    path = backups.backup_path(backup)
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))
    steps.backup_verify_run(backup)  # raises BackupRefused after recording the verdict
    return backup


def test_download_of_a_backup_that_failed_verification_is_409_naming_the_mismatch(client, user, project):
    made = take(client, bearer(user), project["project_id"])
    with pytest.raises(steps.BackupRefused):
        _altered(made)
    response = client.get(f"/v1/backups/{made['backup_id']}/download", **bearer(user))
    assert response.status_code == 409
    error = response.json()["error"]
    assert error["code"] == "verify_failed"
    assert f"but {made['sha256']} was recorded at dump time" in error["message"] and "?force=1" in error["message"]


def test_a_forced_download_of_an_unverified_backup_carries_the_files_actual_digest(client, user, staff, project):
    made = take(client, bearer(user), project["project_id"])
    with pytest.raises(steps.BackupRefused):
        _altered(made)
    path = f"/v1/backups/{made['backup_id']}/download?force=1"
    response = client.get(path, **bearer(user))
    assert response.status_code == 200
    content = b"".join(response.streaming_content)
    actual = hashlib.sha256(content).digest()
    assert actual.hex() != made["sha256"]
    assert response["Repr-Digest"] == f"sha-256=:{base64.b64encode(actual).decode()}:"
    assert client.get(path, **bearer(staff)).status_code == 403  # force is the owner's, like the file


def test_delete_removes_the_backup_and_its_file(client, user, project):
    headers = bearer(user)
    made = take(client, headers, project["project_id"])
    path = backups.backup_path(Backup.objects.get(public_id=made["backup_id"]))
    response = client.delete(f"/v1/backups/{made['backup_id']}", **headers)
    assert response.status_code == 200 and response.json() == {"deleted": made["backup_id"]}
    assert not path.exists() and not Backup.objects.exists()


def test_schedule_is_set_with_put_and_validated(client, user, project):
    headers = bearer(user)
    path = f"/v1/projects/{project['project_id']}/backup-schedule"
    assert client.get(path, **headers).json() == {"schedule": None}
    response = client.put(path, data=json.dumps({"hour": 2, "keep": 5}), content_type="application/json", **headers)
    assert response.status_code == 200 and response.json()["schedule"] == {"enabled": True, "hour": 2, "keep": 5}
    assert client.get(f"/v1/projects/{project['project_id']}/backups", **headers).json()["schedule"]["hour"] == 2
    for body, field in (({"hour": 25, "keep": 5}, "hour"), ({"hour": 1}, "keep"), ({"hour": 1, "keep": 1, "every": "day"}, "every")):
        response = client.put(path, data=json.dumps(body), content_type="application/json", **headers)
        assert response.status_code == 400 and response.json()["error"]["field"] == field


def test_clone_through_post_projects_from_backup(client, user, other_user, project, fake_runtime):
    made = take(client, bearer(user), project["project_id"])
    response = post(client, "/v1/projects?wait=5", {"name": "copy", "from_backup": made["backup_id"]}, bearer(user))
    assert response.status_code == 201, response.content
    clone = response.json()
    assert clone["status"] == "running" and clone["operation"]["kind"] == "clone"
    assert clone["db_url"] != project["db_url"]
    assert fake_runtime.databases[f"project_{clone['project_id']}_data"] == {"public.items": 2}
    response = post(client, "/v1/projects", {"from_backup": made["backup_id"]}, bearer(other_user))
    assert response.status_code == 400 and response.json()["error"]["field"] == "from_backup"


def test_backup_endpoints_refuse_other_methods_with_405(client, user, project):
    headers = bearer(user)
    response = client.delete(f"/v1/projects/{project['project_id']}/backups", **headers)
    assert response.status_code == 405 and response["Allow"] == "GET, POST"
    assert client.get("/v1/backups/000000000000/verify", **headers).status_code == 405
