"""Acting on another user's project (services/access.py): projects.change_project, not is_staff alone.

Staff see every project; a staff user without the permission gets 403 for
every change, by every way in, and nothing changes.
"""

import hashlib
import json
from datetime import timedelta

import pytest
from django.contrib.auth.models import Permission
from django.utils import timezone

from projects.models import Backup, BackupSchedule, Operation, Project
from projects.services.backups import requests as backups
from projects.services.lifecycle import requests as lifecycle
from projects.services.backups.files import backup_path
from projects.services.backups.schedule import backups_prune
from projects.services.errors import BackupProtected
from tests.conftest import bearer


def post(client, path, body=None, headers=None):
    return client.post(path, data=json.dumps(body or {}), content_type="application/json", **(headers or {}))


def snapshot() -> tuple:
    return (
        list(Project.objects.order_by("pk").values_list("pk", "status")),
        list(Operation.objects.order_by("pk").values_list("pk", "state")),
        list(Backup.objects.order_by("pk").values_list("pk", "state")),
        list(BackupSchedule.objects.values_list("pk", "hour", "keep", "enabled")),
    )


@pytest.fixture
def running(user) -> Project:
    return Project.objects.get(pk=lifecycle.project_create(owner=user, name="mine").project_id)


@pytest.fixture
def deleted(user) -> Project:
    project = Project.objects.get(pk=lifecycle.project_create(owner=user, name="gone").project_id)
    lifecycle.project_delete(project=project, requested_by=user)
    return project


@pytest.fixture
def backup(running, user) -> Backup:
    backups.project_backup(project=running, requested_by=user)
    return running.backups.get()


def grant(user) -> None:
    user.user_permissions.add(Permission.objects.get(codename="change_project", content_type__app_label="projects"))


def api_writes(running: Project, deleted: Project, backup: Backup) -> list[tuple[str, str, dict | None]]:
    p, d, b = running.public_id, deleted.public_id, backup.public_id
    return [
        ("POST", f"/v1/projects/{p}/stop", None),
        ("POST", f"/v1/projects/{p}/start", None),
        ("DELETE", f"/v1/projects/{p}", None),
        ("POST", f"/v1/projects/{d}/restore", None),
        ("POST", f"/v1/projects/{d}/purge", {"confirm": d}),
        ("POST", f"/v1/projects/{p}/backups", None),
        ("PUT", f"/v1/projects/{p}/backup-schedule", {"hour": 3, "keep": 7}),
        ("POST", f"/v1/backups/{b}/verify", None),
        ("POST", f"/v1/backups/{b}/restore", {"confirm": p}),
        ("DELETE", f"/v1/backups/{b}", None),
    ]


def send(client, method: str, path: str, body, headers):
    return getattr(client, method.lower())(path, data=json.dumps(body or {}), content_type="application/json", **headers)


def test_staff_without_the_permission_get_403_for_every_api_write_and_nothing_changes(client, staff, running, deleted, backup):
    headers = bearer(staff)
    assert client.get(f"/v1/projects/{running.public_id}", **headers).status_code == 200  # seeing is allowed
    before = snapshot()
    for method, path, body in api_writes(running, deleted, backup):
        response = send(client, method, path, body, headers)
        assert response.status_code == 403, (method, path, response.content)
        error = response.json()["error"]
        assert error["code"] == "forbidden" and "projects.change_project" in error["message"], (method, path)
    assert snapshot() == before


def test_staff_with_the_permission_act_on_another_users_project(client, staff, running, deleted, backup):
    grant(staff)
    headers = bearer(staff)
    assert post(client, f"/v1/projects/{running.public_id}/stop?wait=5", headers=headers).status_code == 200
    assert post(client, f"/v1/projects/{deleted.public_id}/purge?wait=5", {"confirm": deleted.public_id}, headers).status_code == 200
    assert client.delete(f"/v1/backups/{backup.public_id}", **headers).status_code == 200


def test_another_user_still_gets_404_not_403(client, other_user, running):
    response = post(client, f"/v1/projects/{running.public_id}/stop", headers=bearer(other_user))
    assert response.status_code == 404


def test_staff_without_the_permission_get_403_on_the_dashboard_and_nothing_changes(client, staff, running, deleted, backup):
    client.force_login(staff)
    p, d, b = running.public_id, deleted.public_id, backup.public_id
    posts = [
        (f"/projects/{p}/stop", {}),
        (f"/projects/{p}/start", {}),
        (f"/projects/{p}/delete", {"confirm": "mine"}),
        (f"/projects/{d}/restore", {}),
        (f"/projects/{d}/purge", {"confirm": "gone"}),
        (f"/projects/{p}/backups/new", {}),
        (f"/projects/{p}/backup-schedule", {"hour": "3", "keep": "7", "enabled": "on"}),
        (f"/backups/{b}/verify", {}),
        (f"/backups/{b}/restore", {"confirm": "mine"}),
    ]
    before = snapshot()
    for headers in ({}, {"HX-Request": "true"}):
        for path, data in posts:
            response = client.post(path, data, headers=headers)
            assert response.status_code == 403, (path, headers)
            assert "projects.change_project" in response.content.decode(), path
    assert snapshot() == before


def test_the_dashboard_offers_no_buttons_to_staff_who_may_only_look(client, staff, running, backup):
    client.force_login(staff)
    p = running.public_id
    # The page with its backups section rendered in place (the no-JavaScript way).
    page = client.get(f"/projects/{p}/backups").content.decode()
    for action in ("stop", "delete", "backups/new", "backup-schedule"):
        assert f"/projects/{p}/{action}" not in page, action
    assert f"/backups/{backup.public_id}/verify" not in page
    grant(staff)
    page = client.get(f"/projects/{p}/backups").content.decode()
    for action in ("stop", "delete", "backups/new", "backup-schedule"):
        assert f"/projects/{p}/{action}" in page, action
    assert f"/backups/{backup.public_id}/verify" in page


def test_the_admin_offers_project_actions_only_with_the_permission(client, staff, running, django_user_model):
    staff.user_permissions.add(Permission.objects.get(codename="view_project", content_type__app_label="projects"))
    client.force_login(staff)
    before = snapshot()
    response = client.post("/admin/projects/project/", {"action": "stop_selected", "_selected_action": [running.pk]})
    assert response.status_code in (200, 302) and snapshot() == before  # no such action for them
    assert "stop_selected" not in client.get("/admin/projects/project/").content.decode()


# --- a purge's final backup -----------------------------------------------------------------------


@pytest.fixture
def final(user, deleted, settings) -> Backup:
    settings.BERTH_PURGE_BACKUP_DAYS = 30
    lifecycle.project_purge(project=deleted, confirm=deleted.public_id, requested_by=user)
    backup = deleted.backups.get(trigger=Backup.Trigger.PRE_PURGE)
    assert backup.keep_until is not None
    return backup


def test_a_purges_final_backup_cannot_be_deleted_within_its_grace_period(client, user, final):
    before = snapshot()
    path = backup_path(final)
    response = client.delete(f"/v1/backups/{final.public_id}", **bearer(user))
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "backup_protected" and "BERTH_PURGE_BACKUP_DAYS=30" in response.json()["error"]["message"]
    assert snapshot() == before and path.exists()


def test_a_purges_final_backup_can_go_once_its_grace_period_ended(client, user, final):
    Backup.objects.filter(pk=final.pk).update(keep_until=timezone.now() - timedelta(seconds=1))
    assert client.delete(f"/v1/backups/{final.public_id}", **bearer(user)).status_code == 200


def test_the_backup_pass_still_removes_it_when_it_expires(final):
    Backup.objects.filter(pk=final.pk).update(keep_until=timezone.now() - timedelta(seconds=1))
    report = backups_prune()
    assert report.removed and not Backup.objects.filter(pk=final.pk).exists()


def test_an_unfinished_purges_backup_is_protected_from_its_dump(user, running):
    dump = b"PGDMP x"
    backup = Backup.objects.create(
        project=running, trigger=Backup.Trigger.PRE_PURGE, state=Backup.State.VERIFIED, postgres_version="17",
        size=len(dump), sha256=hashlib.sha256(dump).hexdigest(),
    )  # fmt: skip
    with pytest.raises(BackupProtected):
        backups.backup_delete(backup=backup, requested_by=user)
    assert Backup.objects.filter(pk=backup.pk).exists()
