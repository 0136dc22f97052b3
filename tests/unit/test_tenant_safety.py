"""What the bootstrap's heal repaired becomes the project's security events (services/operations/tenant_safety.py): a row, a
warning, a counter on /metrics, a notice on its page; nothing when there was nothing to heal."""

import logging

from prometheus_client.parser import text_string_to_metric_families

from projects.models import Project, SecurityEvent
from projects.services.lifecycle import requests as lifecycle
from tests.conftest import bearer

HEALED = ("superuser_demoted role sneaky was a superuser: it is not any more", "role_revoked role app was granted pg_execute_server_program: revoked")


def running_project(user) -> Project:
    return Project.objects.get(pk=lifecycle.project_create(owner=user, name="shop").project_id)


def test_a_start_whose_bootstrap_healed_records_each_repair_on_the_project_and_warns(user, fake_runtime, caplog):
    project = running_project(user)
    assert not SecurityEvent.objects.exists()  # a create that healed nothing records nothing
    lifecycle.project_stop(project=project, requested_by=user)
    fake_runtime.healed[project.public_id] = HEALED
    with caplog.at_level(logging.WARNING, logger="projects.services.operations.tenant_safety"):
        operation = lifecycle.project_start(project=project, requested_by=user)
    events = list(SecurityEvent.objects.filter(project=project).order_by("id"))
    assert [(e.kind, e.detail, e.operation_id) for e in events] == [
        ("superuser_demoted", "role sneaky was a superuser: it is not any more", operation.pk),
        ("role_revoked", "role app was granted pg_execute_server_program: revoked", operation.pk),
    ]
    assert f"security: project {project.public_id}: role sneaky was a superuser" in caplog.text
    for secret in (project.db_password, project.admin_password, project.monitor_password):
        assert secret not in caplog.text


def test_security_events_are_counted_on_metrics_and_said_on_the_project_page(user, staff, client, fake_runtime):
    project = running_project(user)
    lifecycle.project_stop(project=project, requested_by=user)
    fake_runtime.healed[project.public_id] = HEALED
    lifecycle.project_start(project=project, requested_by=user)
    text = client.get("/metrics", **bearer(staff)).content.decode()
    family = next(f for f in text_string_to_metric_families(text) if f.name == "berth_security_events")
    assert {s.labels["kind"]: s.value for s in family.samples if s.name.endswith("_total")} == {"role_revoked": 1.0, "superuser_demoted": 1.0}
    client.force_login(user)
    page = client.get(f"/projects/{project.public_id}").content.decode()
    assert "Berth repaired this project's database server" in page and "role sneaky was a superuser" in page
