"""Metrics on the real engine: the sampler reads a running project, and a pgbench run shows in its commits."""

import pytest
from django.utils import timezone

from projects.models import MetricSample, Project
from projects.runtime import get_runtime
from projects.runtime.base import container_name
from projects.services.fleet.metrics import metrics_sample, metrics_series
from tests.conftest import bearer

pytestmark = pytest.mark.integration

# Bounded load: 2 clients × 250 transactions of pgbench's TPC-B-like script.
CLIENTS, TRANSACTIONS = 2, 250


def test_a_pgbench_run_makes_commits_go_up_in_the_samples(client, user, workers):
    response = client.post("/v1/projects?wait=120", data={"name": "bench"}, content_type="application/json", **bearer(user))
    assert response.status_code == 201, response.json()
    project = Project.objects.get(public_id=response.json()["project_id"])

    before = metrics_sample()
    assert (before.projects, before.engine_calls, before.errors) == (1, 2, [])
    first = MetricSample.objects.get(project=project)
    assert first.memory_bytes and first.memory_bytes < first.memory_limit_bytes and first.api_up == 1.0
    assert first.max_connections and first.connections and first.connections <= first.max_connections

    # pgbench inside the db container, as the owner over its loopback; the password by environment, never argv.
    env = {"PGHOST": "127.0.0.1", "PGUSER": project.db_user, "PGPASSWORD": project.db_password, "PGDATABASE": project.db_name}
    runtime = get_runtime()
    for argv in (["pgbench", "-i", "-s", "1", "-q"], ["pgbench", "-n", "-c", str(CLIENTS), "-t", str(TRANSACTIONS)]):
        _, result = runtime.exec_stream(container_name(project.public_id, "db"), argv, environment=env, idle_timeout_s=120).read_all()
        assert result.exit_code == 0, result.stderr

    after = metrics_sample(now=timezone.now())
    assert after.errors == []
    second = MetricSample.objects.filter(project=project).order_by("-at").first()
    assert second is not None and second.commits is not None and first.commits is not None
    assert second.commits - first.commits >= CLIENTS * TRANSACTIONS
    assert second.db_size_bytes and first.db_size_bytes and second.db_size_bytes > first.db_size_bytes + 10 * 2**20  # pgbench -s 1: ~15 MB
    assert second.cpu_seconds and first.cpu_seconds and second.cpu_seconds > first.cpu_seconds

    series = metrics_series(project=project, range_name="1h").series
    [(_, rate)] = series["commits_per_s"]
    assert rate > 0
    assert 0 < series["cache_hit_ratio"][-1][1] <= 1
