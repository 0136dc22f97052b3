"""The dashboard's backups section, against FakeRuntime with tasks run inline: full page and HTMX partial."""

import base64
import hashlib

import pytest

from projects.models import Backup, BackupSchedule, Project
from projects.runtime import RuntimeUnavailable
from projects.services.backups import requests as backups
from projects.services.lifecycle import requests as lifecycle

HTMX = {"HX-Request": "true"}


@pytest.fixture
def signed_in(client, user):
    client.force_login(user)
    return client


@pytest.fixture
def project(user, fake_runtime) -> Project:
    project = lifecycle.project_create(owner=user, name="shop").project
    fake_runtime.databases[f"project_{project.public_id}_data"] = {"public.items": 4}
    project.refresh_from_db()
    return project


@pytest.fixture
def made(project) -> Backup:
    operation = backups.project_backup(project=project)
    return Backup.objects.get(pk=operation.backup_id)


def test_the_project_page_loads_the_section_with_htmx_and_links_to_it_without(signed_in, project):
    page = signed_in.get(f"/projects/{project.public_id}")
    assert page.status_code == 200
    assert f'hx-get="/projects/{project.public_id}/backups" hx-trigger="load"'.encode() in page.content
    assert f'href="/projects/{project.public_id}/backups#backups"'.encode() in page.content


def test_the_section_lists_backups_with_their_state_rows_and_actions(signed_in, project, made):
    response = signed_in.get(f"/projects/{project.public_id}/backups", headers=HTMX)
    assert response.status_code == 200 and b"<html" not in response.content
    text = response.content.decode()
    assert made.public_id in text and "Verified" in text and ">4<" in text
    assert f'/backups/{made.public_id}/download' in text and f'/backups/{made.public_id}/verify' in text
    assert f'/backups/{made.public_id}/restore' in text and "Type <strong>shop</strong> to confirm" in text
    assert "every 2s" not in text  # nothing running: no polling


def test_without_javascript_the_section_is_rendered_in_the_whole_page(signed_in, project, made):
    response = signed_in.get(f"/projects/{project.public_id}/backups")
    assert response.status_code == 200 and b"</html>" in response.content
    assert made.public_id.encode() in response.content and b'id="connection"' in response.content


def test_back_up_now_queues_a_backup_and_renders_the_section(signed_in, project):
    response = signed_in.post(f"/projects/{project.public_id}/backups/new", headers=HTMX)
    assert response.status_code == 200
    backup = project.backups.get()
    assert backup.state == "verified" and backup.public_id in response.content.decode()
    assert "Backup queued" in response.content.decode()


def test_back_up_now_without_javascript_redirects_to_the_section(signed_in, project):
    response = signed_in.post(f"/projects/{project.public_id}/backups/new")
    assert response.status_code == 302 and response["Location"] == f"/projects/{project.public_id}/backups#backups"


def test_the_section_polls_while_a_backup_runs(signed_in, project, settings):
    settings.TASKS = {"default": {"BACKEND": "django.tasks.backends.dummy.DummyBackend"}}
    response = signed_in.post(f"/projects/{project.public_id}/backups/new", headers=HTMX)
    assert 'hx-trigger="every 2s, settled from:body"' in response.content.decode()
    assert "Back up now</button>" in response.content.decode() and "disabled" in response.content.decode()
    again = signed_in.post(f"/projects/{project.public_id}/backups/new", headers=HTMX)
    assert again.status_code == 409 and "already in flight" in again.content.decode()


def test_restore_needs_the_typed_name_then_replaces_the_data(signed_in, project, made, fake_runtime):
    volume = f"project_{project.public_id}_data"
    fake_runtime.databases[volume] = {}
    wrong = signed_in.post(f"/backups/{made.public_id}/restore", {"confirm": project.public_id}, headers=HTMX)
    assert wrong.status_code == 422 and "That is not the project&#x27;s name" in wrong.content.decode()
    assert "<details class=\"confirm\" open>" in wrong.content.decode()
    assert fake_runtime.databases[volume] == {}
    right = signed_in.post(f"/backups/{made.public_id}/restore", {"confirm": "shop"}, headers=HTMX)
    assert right.status_code == 200 and "Restore of backup" in right.content.decode()
    assert fake_runtime.databases[volume] == {"public.items": 4}
    assert project.backups.filter(trigger="pre-restore", state="verified").exists()


def test_a_verify_failed_backup_offers_no_restore_and_shows_why(signed_in, project, made):
    path = backups.backup_path(made)
    path.write_bytes(path.read_bytes()[:-1] + b"?")
    response = signed_in.post(f"/backups/{made.public_id}/verify", headers=HTMX)
    text = response.content.decode()
    assert response.status_code == 200 and "Verify Failed" in text and "sha256" in text
    assert f"/backups/{made.public_id}/restore" not in text


def test_download_is_the_owners_alone(client, signed_in, project, made, staff, other_user):
    response = signed_in.get(f"/backups/{made.public_id}/download")
    assert response.status_code == 200
    assert hashlib.sha256(b"".join(response.streaming_content)).hexdigest() == made.sha256
    client.force_login(staff)
    assert client.get(f"/backups/{made.public_id}/download").status_code == 403
    page = client.get(f"/projects/{project.public_id}/backups", headers=HTMX).content.decode()
    assert made.public_id in page and "/download" not in page  # staff see the backups, not the file
    client.force_login(other_user)
    assert client.get(f"/backups/{made.public_id}/download").status_code == 404
    assert client.get(f"/projects/{project.public_id}/backups", headers=HTMX).status_code == 404


def test_a_backup_that_failed_verification_is_downloaded_only_when_forced(signed_in, project, made):
    path = backups.backup_path(made)
    path.write_bytes(path.read_bytes()[:-1] + b"?")
    page = signed_in.post(f"/backups/{made.public_id}/verify", headers=HTMX).content.decode()
    assert f"/backups/{made.public_id}/download?force=1" in page and "Download anyway" in page
    refused = signed_in.get(f"/backups/{made.public_id}/download")
    assert refused.status_code == 409 and "failed verification" in refused.content.decode()
    assert f"but {made.sha256} was recorded at dump time" in refused.content.decode()
    forced = signed_in.get(f"/backups/{made.public_id}/download?force=1")
    actual = hashlib.sha256(b"".join(forced.streaming_content)).digest()
    assert forced.status_code == 200 and forced["Repr-Digest"] == f"sha-256=:{base64.b64encode(actual).decode()}:"


def test_the_schedule_form_saves_and_validates(signed_in, project):
    response = signed_in.post(f"/projects/{project.public_id}/backup-schedule", {"enabled": "on", "hour": "5", "keep": "3"}, headers=HTMX)
    assert response.status_code == 200 and "Schedule saved" in response.content.decode()
    schedule = BackupSchedule.objects.get(project=project)
    assert (schedule.enabled, schedule.hour, schedule.keep) == (True, 5, 3)
    assert '<option value="5" selected>' in response.content.decode()
    bad = signed_in.post(f"/projects/{project.public_id}/backup-schedule", {"hour": "5", "keep": "0"}, headers=HTMX)
    assert bad.status_code == 422 and "keep: must be a whole number from 1 to 365" in bad.content.decode()


def test_an_unreachable_engine_refuses_the_backup_in_place(signed_in, project, fake_runtime):
    fake_runtime.fail_with("ping", RuntimeUnavailable("Docker Engine unreachable at unix:///var/run/docker.sock: gone"))
    response = signed_in.post(f"/projects/{project.public_id}/backups/new", headers=HTMX)
    assert response.status_code == 503 and "cannot be reached" in response.content.decode()
    assert not project.backups.exists()


@pytest.mark.parametrize(
    "method, path",
    [
        ("get", "/projects/{project}/backups"),
        ("post", "/projects/{project}/backups/new"),
        ("post", "/projects/{project}/backup-schedule"),
        ("post", "/backups/{backup}/verify"),
        ("post", "/backups/{backup}/restore"),
        ("get", "/backups/{backup}/download"),
    ],
)
def test_every_backup_view_sends_a_stranger_to_sign_in_and_refuses_other_methods(client, user, project, made, method, path):
    url = path.format(project=project.public_id, backup=made.public_id)
    response = getattr(client, method)(url)
    assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")
    client.force_login(user)
    assert getattr(client, "put")(url).status_code == 405
