"""Per-user quotas (services/lifecycle/quotas.py): every way in refuses with 403 quota_exceeded and changes nothing."""

import json

import pytest
from django.contrib.auth.models import Permission

from projects.models import Backup, Operation, Project, UserQuota
from projects.services.backups import requests as backups
from projects.services.lifecycle import requests as lifecycle
from projects.services.backups.schedule import backups_run_due
from projects.services.errors import QuotaExceeded
from projects.services.lifecycle.quotas import quota_limits
from tests.conftest import bearer


def post(client, path, body=None, headers=None):
    return client.post(path, data=json.dumps(body or {}), content_type="application/json", **(headers or {}))


def snapshot() -> tuple:
    """Everything a refused request must leave as it was."""
    return (
        list(Project.objects.order_by("pk").values_list("pk", "status", "db_port", "api_port")),
        list(Operation.objects.order_by("pk").values_list("pk", "state")),
        list(Backup.objects.order_by("pk").values_list("pk", "state")),
    )


def make(user, n: int = 1) -> list[Project]:
    # Unnamed: each gets its own name (one live name per owner).
    return [Project.objects.get(pk=lifecycle.project_create(owner=user).project_id) for _ in range(n)]


@pytest.fixture
def two_projects(settings):
    settings.BERTH_QUOTA_PROJECTS = 2
    return settings


def test_limits_come_from_the_settings_and_an_operator_overrides_them_per_field(user, settings):
    settings.BERTH_QUOTA_PROJECTS, settings.BERTH_QUOTA_BACKUPS, settings.BERTH_QUOTA_BACKUP_BYTES = 5, 6, 7
    assert quota_limits(user) == type(quota_limits(user))(projects=5, backups=6, backup_bytes=7)
    UserQuota.objects.create(user=user, projects=9)
    limits = quota_limits(user)
    assert (limits.projects, limits.backups, limits.backup_bytes) == (9, 6, 7)
    UserQuota.objects.filter(user=user).update(unlimited=True)
    assert quota_limits(user) is None


def test_the_api_refuses_a_create_over_the_project_quota_and_changes_nothing(client, user, two_projects):
    make(user, 2)
    before = snapshot()
    response = post(client, "/v1/projects", {"name": "third"}, bearer(user))
    assert response.status_code == 403
    error = response.json()["error"]
    assert error["code"] == "quota_exceeded" and error["limit"] == "projects" and "2 project(s)" in error["message"]
    assert snapshot() == before


def test_a_clone_counts_as_a_create(client, user, two_projects):
    first, _ = make(user, 2)
    backups.project_backup(project=first, requested_by=user)
    backup = first.backups.get()
    before = snapshot()
    response = post(client, "/v1/projects", {"from_backup": backup.public_id}, bearer(user))
    assert response.status_code == 403 and response.json()["error"]["code"] == "quota_exceeded"
    assert snapshot() == before


def test_deleted_projects_count_until_purged(client, user, two_projects):
    first, _ = make(user, 2)
    lifecycle.project_delete(project=first, requested_by=user)
    assert post(client, "/v1/projects", {}, bearer(user)).status_code == 403
    lifecycle.project_purge(project=first, confirm=first.public_id, requested_by=user)
    assert Project.objects.get(pk=first.pk).status == "purged"
    assert post(client, "/v1/projects?wait=5", {}, bearer(user)).status_code == 201


def test_the_quota_is_per_user(client, user, other_user, two_projects):
    make(user, 2)
    assert post(client, "/v1/projects?wait=5", {}, bearer(other_user)).status_code == 201


def test_staff_are_not_exempt_unless_an_operator_says_so(client, staff, two_projects):
    make(staff, 2)
    assert post(client, "/v1/projects", {}, bearer(staff)).status_code == 403
    UserQuota.objects.create(user=staff, unlimited=True)
    assert post(client, "/v1/projects?wait=5", {}, bearer(staff)).status_code == 201


def test_the_dashboard_refuses_a_create_over_the_quota_with_403_and_changes_nothing(client, user, two_projects):
    make(user, 2)
    client.force_login(user)
    before = snapshot()
    for headers in ({}, {"HX-Request": "true"}):
        response = client.post("/projects/new", {"name": "third", "postgres_version": "17", "api": "postgrest"}, headers=headers)
        assert response.status_code == 403
        assert "quota" in response.content.decode() and "Nothing was changed" in response.content.decode()
    assert snapshot() == before


def test_an_operator_raises_a_users_quota_in_the_admin(client, user, two_projects, django_user_model):
    make(user, 2)
    operator = django_user_model.objects.create_superuser("root", password="root-password-1")
    client.force_login(operator)
    response = client.post("/admin/projects/userquota/add/", {"user": user.pk, "projects": "3", "backups": "", "backup_bytes": ""})
    assert response.status_code == 302, response.content.decode()[:2000]
    assert quota_limits(user).projects == 3
    assert len(make(user, 1)) == 1


def test_staff_without_the_quota_permissions_cannot_set_quotas_in_the_admin(client, user, django_user_model):
    clerk = django_user_model.objects.create_user("clerk", password="clerk-password-1", is_staff=True)
    client.force_login(clerk)
    response = client.post("/admin/projects/userquota/add/", {"user": user.pk, "projects": "1000"})
    assert response.status_code == 403 and not UserQuota.objects.exists()


# --- backups -------------------------------------------------------------------------------


@pytest.fixture
def project(user) -> Project:
    return make(user)[0]


def test_the_api_refuses_a_manual_backup_over_the_count_quota_and_changes_nothing(client, user, project, settings):
    settings.BERTH_QUOTA_BACKUPS = 1
    assert post(client, f"/v1/projects/{project.public_id}/backups?wait=5", headers=bearer(user)).status_code == 201
    before = snapshot()
    response = post(client, f"/v1/projects/{project.public_id}/backups", headers=bearer(user))
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "quota_exceeded" and response.json()["error"]["limit"] == "backups"
    assert snapshot() == before


def test_failed_manual_backups_and_berths_own_backups_do_not_count(user, project, settings):
    settings.BERTH_QUOTA_BACKUPS = 1
    for trigger in (Backup.Trigger.SCHEDULED, Backup.Trigger.PRE_RESTORE, Backup.Trigger.PRE_PURGE):
        Backup.objects.create(project=project, trigger=trigger, state=Backup.State.VERIFIED, postgres_version="17", size=1)
    Backup.objects.create(project=project, state=Backup.State.FAILED, postgres_version="17")
    backups.project_backup(project=project, requested_by=user)  # the one allowed
    with pytest.raises(QuotaExceeded):
        backups.project_backup(project=project, requested_by=user)


def test_the_bytes_quota_counts_every_backup_file_and_refuses_manual_and_scheduled_ones(user, project, settings):
    settings.BERTH_QUOTA_BACKUP_BYTES = 1000
    Backup.objects.create(project=project, trigger=Backup.Trigger.SCHEDULED, state=Backup.State.VERIFIED, postgres_version="17", size=1000)
    before = snapshot()
    for trigger in (Backup.Trigger.MANUAL, Backup.Trigger.SCHEDULED):
        with pytest.raises(QuotaExceeded, match="1000 bytes"):
            backups.project_backup(project=project, requested_by=user, trigger=trigger)
    assert snapshot() == before


def test_the_dashboard_refuses_a_backup_over_the_quota_with_403(client, user, project, settings):
    settings.BERTH_QUOTA_BACKUPS = 0
    client.force_login(user)
    before = snapshot()
    response = client.post(f"/projects/{project.public_id}/backups/new", headers={"HX-Request": "true"})
    assert response.status_code == 403 and "quota" in response.content.decode()
    assert snapshot() == before


def test_no_quota_blocks_a_purge_and_its_final_backup(user, project, settings):
    settings.BERTH_QUOTA_BACKUPS = settings.BERTH_QUOTA_BACKUP_BYTES = 0
    lifecycle.project_delete(project=project, requested_by=user)
    lifecycle.project_purge(project=project, confirm=project.public_id, requested_by=user)
    project.refresh_from_db()
    assert project.status == "purged"
    assert project.backups.get().trigger == Backup.Trigger.PRE_PURGE


def test_no_quota_blocks_a_restores_safety_backup(user, project, settings):
    backups.project_backup(project=project, requested_by=user)
    source = project.backups.get()
    settings.BERTH_QUOTA_BACKUPS = settings.BERTH_QUOTA_BACKUP_BYTES = 0
    operation = backups.project_restore_backup(backup=source, confirm=project.public_id, requested_by=user)
    operation.refresh_from_db()
    assert operation.state == "succeeded", operation.error
    assert project.backups.filter(trigger=Backup.Trigger.PRE_RESTORE, state=Backup.State.VERIFIED).exists()


def test_a_due_schedule_over_the_bytes_quota_is_skipped_with_the_reason(user, project, settings):
    settings.BERTH_QUOTA_BACKUP_BYTES = 0
    backups.backup_schedule_set(project=project, hour=0, keep=3, requested_by=user)
    report = backups_run_due()
    assert report.queued == [] and "quota" in report.skipped[0]
    assert not project.backups.exists()


def test_the_permission_to_act_does_not_lift_the_owners_quota(client, user, project, staff, settings):
    # Staff act on someone else's project: the backup still counts against the owner.
    staff.user_permissions.add(Permission.objects.get(codename="change_project", content_type__app_label="projects"))
    settings.BERTH_QUOTA_BACKUPS = 0
    response = post(client, f"/v1/projects/{project.public_id}/backups", headers=bearer(staff))
    assert response.status_code == 403 and response.json()["error"]["code"] == "quota_exceeded"
