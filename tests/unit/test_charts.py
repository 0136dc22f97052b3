"""projects/charts.py and the dashboard's metrics: SVG geometry, the project page's charts, the list's sparklines."""

import re
from datetime import timedelta

import pytest
from django.utils import timezone

from projects.charts import HEIGHT, WIDTH, project_charts, sparkline
from projects.models import MetricSample, Project
from projects.services.lifecycle import requests as lifecycle
from projects.services.fleet.metrics import MetricsSeries, metrics_sample

START = 1_764_000_000


def series(**points) -> MetricsSeries:
    return MetricsSeries(range="1h", step_seconds=30, series=points, start=START, end=START + 3600)


def chart(charts, key):
    return next(c for c in charts if c.key == key)


def test_memory_draws_its_limit_line_and_says_the_current_value():
    memory = chart(project_charts(series(memory_bytes=[(START, 100 * 2**20), (START + 30, 200 * 2**20)],
                                         memory_limit_bytes=[(START + 30, 768 * 2**20)])), "memory")  # fmt: skip
    assert memory.current == "200 MiB" and memory.limit_label == "limit 768 MiB"
    # The limit is the highest value: drawn below the top (15 % headroom), above every point.
    assert memory.limit_y is not None and 0 < memory.limit_y < HEIGHT
    [segment] = memory.lines[0].segments
    ys = [float(p.split(",")[1]) for p in segment.split()]
    assert all(y > memory.limit_y for y in ys)


def test_connections_draw_max_connections():
    connections = chart(project_charts(series(connections=[(START, 3)], max_connections=[(START, 100)])), "connections")
    assert connections.limit_label == "max_connections 100" and connections.current == "3"


def test_a_pause_in_the_samples_breaks_the_line_instead_of_bridging_it():
    points = [(START, 1.0), (START + 30, 2.0), (START + 1800, 3.0), (START + 1830, 4.0)]
    cpu = chart(project_charts(series(cpu_percent=points)), "cpu")
    assert len(cpu.lines[0].segments) == 2
    xs = [float(p.split(",")[0]) for seg in cpu.lines[0].segments for p in seg.split()]
    assert min(xs) == 0.0 and max(xs) <= WIDTH


def test_no_samples_is_an_empty_chart_with_a_dash():
    charts = project_charts(series())
    assert all(c.empty and c.current == "—" for c in charts)


def test_a_sparkline_spans_its_box_and_none_without_data():
    line = sparkline([0.0, 2.0, 1.0])
    assert line is not None and line.points.startswith("0.0,") and line.peak == "2/s"
    assert sparkline([]) is None


# --- the dashboard ------------------------------------------------------------------


@pytest.fixture
def signed_in(client, user):
    client.force_login(user)
    return client


def running_project(user) -> Project:
    return Project.objects.get(pk=lifecycle.project_create(owner=user, name="charts").project_id)


def test_the_project_page_draws_every_chart_as_svg_with_range_links(signed_in, user):
    project = running_project(user)
    now = timezone.now()
    metrics_sample(now=now - timedelta(seconds=30))
    metrics_sample(now=now)
    html = signed_in.get(f"/projects/{project.public_id}").content.decode()
    section = html[html.index('id="metrics"'):]
    assert section.count("<svg") >= 7 and "<polyline" in section
    assert 'class="chart-limit"' in section and "max_connections 100" in section
    assert f'href="/projects/{project.public_id}?range=24h#metrics"' in section and 'aria-current="true">1h<' in section
    assert "style=" not in section and "<script" not in section  # CSP: nothing inline


def test_a_range_the_page_does_not_offer_shows_the_hour(signed_in, user):
    project = running_project(user)
    html = signed_in.get(f"/projects/{project.public_id}?range=1y").content.decode()
    assert 'aria-current="true">1h<' in html


def test_the_7d_range_reads_hourly_rows(signed_in, user):
    project = running_project(user)
    at = timezone.now() - timedelta(days=2)
    MetricSample.objects.create(project=project, at=at, period=MetricSample.HOURLY, memory_bytes=5 * 2**20, memory_limit_bytes=768 * 2**20)
    html = signed_in.get(f"/projects/{project.public_id}?range=7d").content.decode()
    assert "5 MiB" in html and 'aria-current="true">7d<' in html


def test_a_stopped_project_without_samples_says_why_it_has_no_charts(signed_in, user):
    project = running_project(user)
    lifecycle.project_stop(project=project)
    html = signed_in.get(f"/projects/{project.public_id}").content.decode()
    assert "metrics are read only while the project runs" in html


def test_the_list_shows_a_sparkline_for_a_project_with_activity(signed_in, user):
    project = running_project(user)
    now = timezone.now()
    for i in range(3):
        metrics_sample(now=now - timedelta(minutes=10 - i * 3))
    html = signed_in.get("/").content.decode()
    row = html[html.index(f'id="project-{project.public_id}"'):]
    assert re.search(r'<svg class="sparkline"[^>]*><polyline points="[0-9., ]+"/></svg>', row)
