"""GET /metrics (projects/scrape.py, projects/prometheus.py): the text format, parsed back, and who may read it."""

from datetime import timedelta

import pytest
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from projects.models import ApiToken, Operation, Project
from projects.services.lifecycle import requests as lifecycle
from projects.services.fleet.metrics import metrics_sample, watch_pass_record
from projects.services.pool.requests import pool_refill
from tests.conftest import bearer


def running_project(user, name: str = "shop") -> Project:
    return Project.objects.get(pk=lifecycle.project_create(owner=user, name=name).project_id)


def scrape(client, staff) -> dict:
    response = client.get("/metrics", **bearer(staff))
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("text/plain; version=")
    return {family.name: family for family in text_string_to_metric_families(response.content.decode())}


def samples(family, name: str | None = None) -> list:
    return [s for s in family.samples if name is None or s.name == name]


class TestOutput:
    def test_it_labels_each_running_projects_series_by_id_and_name(self, client, user, staff):
        project = running_project(user)
        metrics_sample()
        families = scrape(client, staff)
        [memory] = samples(families["berth_project_memory_bytes"])
        assert memory.labels == {"project_id": project.public_id, "name": "shop"} and memory.value > 0
        [commits] = samples(families["berth_project_commits"], "berth_project_commits_total")
        assert families["berth_project_commits"].type == "counter" and commits.value == 10
        assert samples(families["berth_project_max_connections"])[0].value == 100
        assert samples(families["berth_project_api_up"])[0].value == 1

    def test_a_stopped_project_has_no_series(self, client, user, staff):
        project = running_project(user)
        metrics_sample()
        lifecycle.project_stop(project=project)
        assert samples(scrape(client, staff)["berth_project_memory_bytes"]) == []

    def test_it_counts_operations_by_kind_and_outcome_with_a_duration_histogram(self, client, user, staff):
        project = running_project(user)
        lifecycle.project_stop(project=project)
        now = timezone.now()
        Operation.objects.filter(kind="stop").update(started_at=now - timedelta(seconds=3), finished_at=now)
        Operation.objects.create(project=project, kind="start", state=Operation.State.QUEUED)
        families = scrape(client, staff)
        counts = {(s.labels["kind"], s.labels["outcome"]): s.value for s in samples(families["berth_operations"], "berth_operations_total")}
        assert counts == {("create", "succeeded"): 1, ("stop", "succeeded"): 1}
        histogram = families["berth_operation_duration_seconds"]
        assert histogram.type == "histogram"
        stop = {s.labels["le"]: s.value for s in samples(histogram, "berth_operation_duration_seconds_bucket") if s.labels["kind"] == "stop"}
        assert stop["2.5"] == 0 and stop["5.0"] == 1 and stop["+Inf"] == 1
        [total] = [s for s in samples(histogram, "berth_operation_duration_seconds_sum") if s.labels["kind"] == "stop"]
        assert total.value == pytest.approx(3.0)
        assert samples(families["berth_operation_queue_depth"])[0].value == 1

    def test_it_reports_the_watchers_passes_and_engine_calls(self, client, staff):
        watch_pass_record(kind="sync", seconds=0.125, engine_calls=1, projects=40)
        watch_pass_record(kind="metrics", seconds=1.5, engine_calls=80, projects=40)
        families = scrape(client, staff)
        assert {s.labels["loop"]: s.value for s in samples(families["berth_watch_pass_seconds"])} == {"metrics": 1.5, "sync": 0.125}
        assert {s.labels["loop"]: s.value for s in samples(families["berth_watch_engine_calls"], "berth_watch_engine_calls_total")} == {
            "metrics": 80, "sync": 1,
        }  # fmt: skip

    def test_it_reports_the_warm_pools_target_ready_and_filling(self, client, staff, settings):
        settings.BERTH_WARM_POOL = ((None, None, 2),)
        pool_refill()  # the immediate backend fills both at once
        families = scrape(client, staff)
        [target] = samples(families["berth_pool_target"])
        [ready] = samples(families["berth_pool_ready"])
        assert target.value == 2 and ready.value == 2 and set(target.labels) == {"postgres_version", "api"}
        assert samples(families["berth_pool_filling"])[0].value == 0

    def test_a_project_name_with_quotes_and_newlines_is_escaped_not_broken(self, client, user, staff):
        running_project(user, name='a "b" \\ c')
        metrics_sample()
        [memory] = samples(scrape(client, staff)["berth_project_memory_bytes"])
        assert memory.labels["name"] == 'a "b" \\ c'


class TestAccess:
    def test_anonymous_is_401_with_a_bearer_challenge(self, client, db):
        response = client.get("/metrics")
        assert response.status_code == 401 and response["WWW-Authenticate"].startswith("Bearer")

    def test_a_bad_or_expired_token_is_401(self, client, staff):
        assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer nope").status_code == 401
        headers = bearer(staff)
        ApiToken.objects.update(expires_at=timezone.now() - timedelta(seconds=1))
        assert client.get("/metrics", **headers).status_code == 401

    def test_a_users_token_or_session_that_is_not_staff_is_403(self, client, user):
        assert client.get("/metrics", **bearer(user)).status_code == 403
        client.force_login(user)
        assert client.get("/metrics").status_code == 403

    def test_a_staff_session_may_read_it(self, client, staff):
        client.force_login(staff)
        assert client.get("/metrics").status_code == 200

    def test_a_deactivated_staff_users_token_is_401(self, client, staff):
        headers = bearer(staff)
        staff.is_active = False
        staff.save()
        assert client.get("/metrics", **headers).status_code == 401

    def test_it_answers_get_only(self, client, staff):
        assert client.post("/metrics", **bearer(staff)).status_code == 405
