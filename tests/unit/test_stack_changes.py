"""An existing project's page says what its next start changes in its stack, and afterwards what that start changed
(stack/changes.py); a new project's says nothing."""

from datetime import timedelta

from django.utils import timezone

from projects.models import Project
from projects.services.lifecycle import requests as lifecycle
from projects.stack.changes import STACK_CHANGES, STACK_REVISION
from tests.factories import project_made

COMING = "At its next start"
MADE = "What changed at its start"


def page(client, user, project: Project) -> str:
    client.force_login(user)
    return client.get(f"/projects/{project.public_id}").content.decode()


def from_before_the_numbering(project: Project) -> Project:
    """As the migration leaves a project whose stack came up under an older Berth."""
    Project.objects.filter(pk=project.pk).update(stack_revision=0, stack_revised_from=None, stack_revised_at=None)
    project.refresh_from_db()
    return project


def test_a_new_project_has_the_current_stack_and_its_page_says_nothing_about_changes(user, client):
    project = project_made(user)
    assert (project.stack_revision, project.stack_revised_from, project.stack_revised_at) == (STACK_REVISION, None, None)
    html = page(client, user, project)
    assert COMING not in html and MADE not in html


def test_an_existing_project_is_told_what_its_next_start_changes_then_what_it_changed(user, client):
    project = from_before_the_numbering(project_made(user))
    html = page(client, user, project)
    assert COMING in html and MADE not in html
    assert "GRANT EXECUTE ON FUNCTION … TO anon" in html and "only what anon was granted" in html

    lifecycle.project_stop(project=project, requested_by=user)
    lifecycle.project_start(project=project, requested_by=user)
    project.refresh_from_db()
    assert (project.stack_revision, project.stack_revised_from) == (STACK_REVISION, 0)
    html = page(client, user, project)
    assert COMING not in html and MADE in html
    assert html.count("<li>") >= len(STACK_CHANGES)


def test_what_a_start_changed_is_said_for_two_weeks_only(user, client):
    project = project_made(user)
    Project.objects.filter(pk=project.pk).update(stack_revised_from=0, stack_revised_at=timezone.now() - timedelta(days=13))
    assert MADE in page(client, user, Project.objects.get(pk=project.pk))
    Project.objects.filter(pk=project.pk).update(stack_revised_at=timezone.now() - timedelta(days=15))
    assert MADE not in page(client, user, Project.objects.get(pk=project.pk))


def test_a_project_that_never_ran_or_was_purged_is_told_nothing(user, client):
    project = from_before_the_numbering(project_made(user))
    Project.objects.filter(pk=project.pk).update(first_running_at=None)
    assert COMING not in page(client, user, Project.objects.get(pk=project.pk))
    Project.objects.filter(pk=project.pk).update(first_running_at=timezone.now(), status=Project.Status.PURGED)
    assert COMING not in page(client, user, Project.objects.get(pk=project.pk))
