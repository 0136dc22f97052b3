"""The operators' admin: read-only data, no secrets, and actions that go through the services."""

import pytest
from django.contrib.messages import get_messages
from django.utils import timezone

from projects.models import ApiToken, Operation, Project
from projects.runtime import RuntimeUnavailable
from projects.services.lifecycle import requests as lifecycle
from projects.services.accounts.tokens import api_token_create

S = Project.Status


@pytest.fixture
def project(user):
    return lifecycle.project_create(owner=user, name="shop").project


def act(admin_client, action: str, *projects: Project):
    response = admin_client.post(
        "/admin/projects/project/",
        {"action": action, "_selected_action": [p.pk for p in projects]},
        follow=True,
    )
    assert response.status_code == 200
    return [(m.level_tag, m.message) for m in get_messages(response.wsgi_request)] or [
        (m.level_tag, m.message) for m in response.context["messages"]
    ]


def test_project_list_shows_the_columns_and_filters(admin_client, project):
    response = admin_client.get("/admin/projects/project/")
    assert response.status_code == 200
    content = response.content.decode()
    assert project.public_id in content and "shop" in content and "alice" in content
    for filter_title in ("By status", "By health", "By api flavour"):
        assert filter_title in content


@pytest.mark.parametrize("query", ["shop", "{id}"])
def test_projects_are_searchable_by_name_and_id(admin_client, project, user, query):
    lifecycle.project_create(owner=user, name="other")
    content = admin_client.get("/admin/projects/project/", {"q": query.format(id=project.public_id)}).content.decode()
    assert project.public_id in content and ">other<" not in content


def test_filtering_by_status(admin_client, project, user):
    stopped = lifecycle.project_create(owner=user, name="sleepy").project
    lifecycle.project_stop(project=stopped)
    content = admin_client.get("/admin/projects/project/", {"status__exact": "stopped"}).content.decode()
    assert stopped.public_id in content and project.public_id not in content


def test_the_project_page_never_shows_a_secret(admin_client, project):
    response = admin_client.get(f"/admin/projects/project/{project.pk}/change/")
    assert response.status_code == 200
    content = response.content.decode()
    assert project.public_id in content
    for secret in (project.db_password, project.jwt_secret, project.db_password_encrypted, project.jwt_secret_encrypted):
        assert secret not in content
    assert "encrypted" not in content


def test_projects_are_read_only_in_the_admin(admin_client, project):
    assert admin_client.get("/admin/projects/project/add/").status_code == 403
    admin_client.post(f"/admin/projects/project/{project.pk}/change/", {"name": "renamed", "status": "stopped"})
    project.refresh_from_db()
    assert (project.name, project.status) == ("shop", S.RUNNING)
    # Deleting a row would strand its containers: only the Delete action (an operation) exists.
    assert admin_client.get(f"/admin/projects/project/{project.pk}/delete/").status_code == 403
    actions = admin_client.get("/admin/projects/project/").context["action_form"].fields["action"].choices
    assert "delete_selected" not in [name for name, _ in actions]


def test_stop_action_goes_through_the_service_and_reports_each_project(admin_client, user, project):
    other = lifecycle.project_create(owner=user, name="other").project
    messages = act(admin_client, "stop_selected", project, other)
    for p in (project, other):
        p.refresh_from_db()
        assert p.status == S.STOPPED
        assert p.operations.first().requested_by.username == "admin"
    assert sorted(messages) == sorted(
        [("success", f"{p}: stop queued (operation {p.operations.first().public_id}, now stopped)") for p in (project, other)]
    )


def test_a_refused_project_is_reported_without_hiding_the_others(admin_client, user, project):
    deleted = lifecycle.project_create(owner=user, name="gone").project
    lifecycle.project_delete(project=deleted)
    messages = act(admin_client, "start_selected", project, deleted)
    deleted.refresh_from_db()
    assert deleted.status == S.DELETED
    assert any(
        level == "error" and msg.startswith(f"{deleted}: start refused: cannot start a project that is deleted")
        for level, msg in messages
    )
    assert any(level == "success" and msg.startswith(f"{project}: start queued") for level, msg in messages)


def test_delete_action_soft_deletes(admin_client, project):
    act(admin_client, "delete_selected_projects", project)
    project.refresh_from_db()
    assert project.status == S.DELETED and project.deleted_at is not None


def test_sync_action_records_what_the_engine_shows(admin_client, project, fake_runtime):
    for service in ("db", "api"):
        fake_runtime.set_status(f"project_{project.public_id}_{service}", "exited")
    messages = act(admin_client, "sync_selected", project)
    project.refresh_from_db()
    assert project.health == "down"
    assert messages == [("success", f"{project}: health is down")]


def test_sync_action_reports_an_unreachable_engine(admin_client, project, fake_runtime):
    fake_runtime.fail_with("stack_state", RuntimeUnavailable("Docker Engine unreachable: refused"))
    messages = act(admin_client, "sync_selected", project)
    assert messages == [("error", f"{project}: sync refused: Docker Engine unreachable: refused")]


def test_staff_with_only_view_permission_get_no_actions(client, project, django_user_model):
    from django.contrib.auth.models import Permission

    viewer = django_user_model.objects.create_user("viewer", password="viewer-password-1", is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_project"))
    client.force_login(viewer)
    response = client.get("/admin/projects/project/")
    assert response.status_code == 200 and project.public_id in response.content.decode()
    client.post("/admin/projects/project/", {"action": "stop_selected", "_selected_action": [project.pk]})
    project.refresh_from_db()
    assert project.status == S.RUNNING


def test_operations_are_read_only(admin_client, project):
    operation = project.operations.get()
    listing = admin_client.get("/admin/projects/operation/").content.decode()
    assert operation.public_id in listing and "succeeded" in listing
    assert admin_client.get(f"/admin/projects/operation/{operation.pk}/change/").status_code == 200
    assert admin_client.get("/admin/projects/operation/add/").status_code == 403
    assert admin_client.get(f"/admin/projects/operation/{operation.pk}/delete/").status_code == 403
    admin_client.post(f"/admin/projects/operation/{operation.pk}/change/", {"state": "failed"})
    operation.refresh_from_db()
    assert operation.state == Operation.State.SUCCEEDED


def test_api_tokens_show_no_value_and_no_hash(admin_client, user):
    token, raw = api_token_create(user=user, name="ci")
    for url in ("/admin/projects/apitoken/", f"/admin/projects/apitoken/{token.pk}/change/"):
        content = admin_client.get(url).content.decode()
        assert token.prefix in content and "ci" in content
        assert raw not in content and token.key_hash not in content


def test_an_operator_can_revoke_a_token(admin_client, user):
    token, _ = api_token_create(user=user, name="leaked")
    admin_client.post(f"/admin/projects/apitoken/{token.pk}/delete/", {"post": "yes"})
    assert not ApiToken.objects.filter(pk=token.pk).exists()


def test_the_admin_changelist_does_not_call_the_engine(admin_client, user, fake_runtime):
    for n in range(3):
        lifecycle.project_create(owner=user, name=f"p{n}")
    before = dict(fake_runtime.calls)
    admin_client.get("/admin/projects/project/")
    assert dict(fake_runtime.calls) == before


def test_a_deleted_project_still_shows(admin_client, user):
    gone = lifecycle.project_create(owner=user, name="gone").project
    Project.objects.filter(pk=gone.pk).update(status=S.DELETED, deleted_at=timezone.now())
    assert gone.public_id in admin_client.get("/admin/projects/project/").content.decode()
