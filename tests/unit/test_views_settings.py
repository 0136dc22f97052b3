"""The project page's Settings section (views.project_settings, views.project_rotate), against FakeRuntime."""

import json

import pytest
from django.contrib.auth.models import Permission

from projects.keys import project_keys
from projects.models import Project
from projects.services.lifecycle import requests as lifecycle

HTMX = {"HX-Request": "true"}
S = Project.Status


@pytest.fixture
def project(user) -> Project:
    return lifecycle.project_create(owner=user, name="shop").project


@pytest.fixture
def signed_in(client, user):
    client.force_login(user)
    return client


def form(project: Project, **fields: str) -> dict[str, str]:
    """What the section's form sends: every field, filled with the project's values, then `fields`."""
    sent = {"name": project.name, "db_memory": project.db_memory, "api_memory": project.api_memory}
    sent.update({f"setting_{k}": v for k, v in project.postgres_settings.items()})
    sent.update(fields)
    return sent


def test_the_project_page_shows_the_settings_form_with_the_projects_values(signed_in, project):
    Project.objects.filter(pk=project.pk).update(postgres_settings={"work_mem": "8MB"})
    response = signed_in.get(f"/projects/{project.public_id}")
    html = response.content.decode()
    assert response.status_code == 200 and 'id="settings"' in html
    assert 'name="setting_work_mem" value="8MB"' in html and 'placeholder="40"' in html  # max_connections' default
    assert f'name="db_memory" value="{project.db_memory}"' in html
    assert "New password…" in html and "New API keys…" in html


def test_the_section_answers_htmx_with_its_partial(signed_in, project):
    response = signed_in.get(f"/projects/{project.public_id}/settings", headers=HTMX)
    assert response.status_code == 200 and b"<html" not in response.content and b'id="settings"' in response.content


def test_saving_a_reloadable_setting_without_javascript_redirects_to_the_page_and_applies_it(signed_in, project):
    response = signed_in.post(f"/projects/{project.public_id}/settings", form(project, setting_work_mem="8MB"))
    assert response.status_code == 302 and response["Location"] == f"/projects/{project.public_id}"
    project.refresh_from_db()
    assert project.postgres_settings == {"work_mem": "8MB"}
    assert project.operations.first().kind == "reconfigure"


def test_saving_a_restart_setting_with_htmx_says_it_waits_for_a_restart(signed_in, project):
    response = signed_in.post(f"/projects/{project.public_id}/settings", form(project, setting_max_connections="60"), headers=HTMX)
    assert response.status_code == 200 and b"waits for a restart" in response.content
    project.refresh_from_db()
    assert project.restart_pending and project.postgres_settings == {"max_connections": "60"}


def test_a_rename_with_htmx_tells_the_pages_head_which_shows_the_name(signed_in, project):
    response = signed_in.post(f"/projects/{project.public_id}/settings", form(project, name="till"), headers=HTMX)
    assert response.status_code == 200 and json.loads(response["HX-Trigger"]) == {"changed": {}}
    head = signed_in.get(f"/projects/{project.public_id}", headers={**HTMX, "HX-Target": "head"}).content.decode()
    assert "<h1>till</h1>" in head


def test_a_refused_change_tells_the_head_nothing(signed_in, project):
    response = signed_in.post(f"/projects/{project.public_id}/settings", form(project, name=""), headers=HTMX)
    assert response.status_code == 422 and "HX-Trigger" not in response


def test_save_and_restart_queues_a_restart_and_sends_the_page_again(signed_in, project):
    response = signed_in.post(f"/projects/{project.public_id}/settings", form(project, db_memory="1g", restart="1"), headers=HTMX)
    assert response.status_code == 200 and response["HX-Redirect"] == f"/projects/{project.public_id}"
    project.refresh_from_db()
    assert project.db_memory == "1g" and not project.restart_pending and project.operations.first().kind == "restart"


def test_an_emptied_setting_goes_back_to_berths_default(signed_in, project):
    Project.objects.filter(pk=project.pk).update(postgres_settings={"work_mem": "8MB", "lock_timeout": "1s"})
    project.refresh_from_db()
    signed_in.post(f"/projects/{project.public_id}/settings", form(project, setting_work_mem=""))
    project.refresh_from_db()
    assert project.postgres_settings == {"lock_timeout": "1s"}


@pytest.mark.parametrize(
    "fields, says",
    [({"setting_work_mem": "lots"}, "amount of memory"), ({"db_memory": "1t"}, "memory limit such as"),
     ({"setting_timezone": "Mars/Olympus"}, "the server refused it"), ({"name": ""}, "must not be empty")],
)  # fmt: skip
def test_a_refused_change_is_shown_inline_as_422_with_what_was_typed_and_changes_nothing(signed_in, project, fields, says):
    before = Project.objects.filter(pk=project.pk).values().get()
    for headers in ({}, HTMX):
        response = signed_in.post(f"/projects/{project.public_id}/settings", form(project, **fields), headers=headers)
        html = response.content.decode()
        assert response.status_code == 422 and "Nothing was changed" in html and says in html
        typed = next(iter(fields.values()))
        if typed:
            assert f'value="{typed}"' in html
    assert Project.objects.filter(pk=project.pk).values().get() == before


def test_a_change_the_status_refuses_is_409_inline(signed_in, project, user):
    lifecycle.project_delete(project=project, requested_by=user)
    project.refresh_from_db()
    response = signed_in.post(f"/projects/{project.public_id}/settings", form(project, setting_work_mem="8MB"), headers=HTMX)
    assert response.status_code == 409 and b"cannot change the settings of a project that is deleted" in response.content
    assert b"cannot be changed" in response.content  # the form says so too, disabled


def test_rotating_the_keys_changes_them_and_sends_the_page_again(signed_in, project):
    before = project_keys(project)
    response = signed_in.post(f"/projects/{project.public_id}/rotate", {"what": "keys"})
    assert response.status_code == 302
    project.refresh_from_db()
    assert project_keys(project)["anon_key"] != before["anon_key"]


def test_rotating_something_unknown_is_422_inline(signed_in, project):
    response = signed_in.post(f"/projects/{project.public_id}/rotate", {"what": "everything"}, headers=HTMX)
    assert response.status_code == 422 and b"must be password or keys" in response.content


def test_staff_without_the_permission_see_the_form_disabled_and_cannot_change_or_rotate(client, project, staff):
    client.force_login(staff)
    html = client.get(f"/projects/{project.public_id}").content.decode()
    assert "projects.change_project permission" in html and '<fieldset class="stack" disabled>' in html and "New password…" not in html
    before = Project.objects.filter(pk=project.pk).values().get()
    response = client.post(f"/projects/{project.public_id}/settings", form(project, setting_work_mem="8MB"), headers=HTMX)
    assert response.status_code == 403
    response = client.post(f"/projects/{project.public_id}/rotate", {"what": "password"}, headers=HTMX)
    assert response.status_code == 403
    assert Project.objects.filter(pk=project.pk).values().get() == before


def test_staff_with_the_permission_may_change(client, project, staff):
    staff.user_permissions.add(Permission.objects.get(codename="change_project", content_type__app_label="projects"))
    client.force_login(staff)
    response = client.post(f"/projects/{project.public_id}/settings", form(project, setting_max_connections="60"), headers=HTMX)
    assert response.status_code == 200
    project.refresh_from_db()
    assert project.postgres_settings == {"max_connections": "60"}


def test_another_user_gets_404(client, project, other_user):
    client.force_login(other_user)
    assert client.get(f"/projects/{project.public_id}/settings").status_code == 404
    assert client.post(f"/projects/{project.public_id}/settings", form(project, setting_work_mem="8MB")).status_code == 404
    assert client.post(f"/projects/{project.public_id}/rotate", {"what": "keys"}).status_code == 404


def test_the_settings_section_needs_a_sign_in(client, project):
    response = client.post(f"/projects/{project.public_id}/settings", form(project))
    assert response.status_code == 302 and "/login" in response["Location"] or "accounts" in response["Location"]
