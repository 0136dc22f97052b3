"""The secret scan: every operation logged at DEBUG, every page a non-owner can open, every stored row — no secret.

The engine is FakeRuntime here; tests/integration/test_reliability.py runs the
same scan on the real engine, with the docker SDK's and psycopg's logs in it.
"""

import json
import logging
from urllib.parse import quote

import pytest
from django.db import connection
from django_tasks_db.models import DBTaskResult

from projects.keys import project_keys
from projects.models import Operation, Project
from projects.runtime import ImageUnavailable, RuntimeFailure, RuntimeUnavailable
from projects.services.lifecycle import requests as lifecycle
from projects.services.fleet.drift import drift_report
from projects.services.operations.queue import operation_recover_stale
from projects.services.fleet.watcher import projects_sync
from tests.conftest import bearer


@pytest.fixture
def everything_at_debug(caplog, settings):
    """Every logger at DEBUG and propagating to the capture, SQL with its parameters included."""
    settings.DEBUG = True
    saved = []
    for name in list(logging.root.manager.loggerDict):
        logger = logging.getLogger(name)
        saved.append((logger, logger.level, logger.propagate))
        logger.setLevel(logging.DEBUG)
        logger.propagate = True
    caplog.set_level(logging.DEBUG)
    connection.force_debug_cursor = True
    yield caplog
    connection.force_debug_cursor = False
    for logger, level, propagate in saved:
        logger.setLevel(level)
        logger.propagate = propagate


def secrets_of(*projects: Project) -> list[str]:
    values = [v for p in projects for v in (p.db_password, p.jwt_secret, p.admin_password, p.authenticator_password)]
    values += [p.tls_key for p in projects if p.tls_key_encrypted]
    values += [key for p in projects for key in project_keys(p).values()]
    return values + [quote(v, safe="") for v in values]


def assert_no_secret(secrets: list[str], **texts: str) -> None:
    for where, text in texts.items():
        for secret in secrets:
            assert secret not in text, f"a project secret is in {where}"


def test_no_operation_logs_a_secret_at_debug_even_when_it_fails(user, staff, fake_runtime, everything_at_debug, client, settings):
    project = Project.objects.get(pk=lifecycle.project_create(owner=user, name="scan").project_id)
    for act in (lifecycle.project_stop, lifecycle.project_start, lifecycle.project_delete, lifecycle.project_restore, lifecycle.project_start):
        act(project=project)
    # Failures of every kind, one carrying the password in the engine's own words.
    fake_runtime.fail_with("stack_up", RuntimeFailure(f"refused: POSTGRES_PASSWORD={project.db_password}"))
    lifecycle.project_start(project=project)
    fake_runtime.fail_with("stack_up", RuntimeFailure(f"denied: {project.admin_password} {project.authenticator_password}"))
    lifecycle.project_start(project=project)
    fake_runtime.fail_with("stack_up", RuntimeUnavailable("Docker Engine unreachable at unix:///nowhere"))
    lifecycle.project_start(project=project)
    fake_runtime.heal()
    fake_runtime.fail_with("stack_stop", ImageUnavailable("image gone"))
    lifecycle.project_stop(project=project)
    fake_runtime.heal()
    lifecycle.project_delete(project=project)
    lifecycle.project_purge(project=project, confirm=project.public_id)
    other = Project.objects.get(pk=lifecycle.project_create(owner=user, name="scan2").project_id)
    projects_sync()
    drift_report()
    operation_recover_stale()
    # Through the API too, as its owner and as staff.
    for who in (user, staff):
        client.get("/v1/projects?include_deleted=1", **bearer(who))
        client.get(f"/v1/projects/{other.public_id}/operations", **bearer(who))

    secrets = secrets_of(project, other)
    captured = everything_at_debug
    assert any(r.name == "django.db.backends" and r.levelno == logging.DEBUG for r in captured.records)
    assert any(r.name.startswith("projects.") for r in captured.records)
    assert_no_secret(
        secrets,
        log="\n".join(r.getMessage() for r in captured.records),
        operation_errors="\n".join(Operation.objects.values_list("error", flat=True)),
        task_rows=json.dumps(list(DBTaskResult.objects.values("traceback", "return_value")), default=str),
        stored_rows=json.dumps(list(Project.objects.values()), default=str),
    )
    assert "POSTGRES_PASSWORD=********" in Operation.objects.filter(error__contains="refused").get().error


def test_no_page_a_non_owner_can_open_shows_a_secret(user, client, django_user_model):
    staff = django_user_model.objects.create_superuser("root", password="root-password-1")
    project = Project.objects.get(pk=lifecycle.project_create(owner=user, name="scan").project_id)
    pid = project.public_id
    pages = {}
    client.force_login(staff)
    for path in ["/", f"/projects/{pid}", f"/projects/{pid}/logs", f"/projects/{pid}/backups"]:
        pages[f"dashboard {path}"] = client.get(path).content.decode()
    for path in [
        "/admin/projects/project/",
        f"/admin/projects/project/{project.pk}/change/",
        "/admin/projects/operation/",
        f"/admin/projects/operation/{project.operations.first().pk}/change/",
        f"/admin/projects/project/?q={pid}",
    ]:
        response = client.get(path)
        assert response.status_code == 200, path
        pages[f"admin {path}"] = response.content.decode()
    pages["api as staff"] = client.get(f"/v1/projects/{pid}", **bearer(staff)).content.decode()
    assert_no_secret(secrets_of(project), **pages)
    # Nor the ciphertext: the admin shows neither the secrets nor their encrypted columns.
    assert project.db_password_encrypted not in pages[f"admin /admin/projects/project/{project.pk}/change/"]


def test_the_owner_sees_the_password_only_when_asking_for_it(user, client):
    project = Project.objects.get(pk=lifecycle.project_create(owner=user, name="scan").project_id)
    client.force_login(user)
    assert project.db_password not in client.get(f"/projects/{project.public_id}").content.decode()
    assert project.db_password in client.post(f"/projects/{project.public_id}/reveal").content.decode()
