"""The project page's metrics charts and the list's sparklines render in Chromium without a console error.

On the FakeRuntime, with an hour of samples written as the sampler writes them
(a load that rises and falls), so the screenshots show charts a person reads.
"""

import math
from datetime import timedelta

import pytest
from django.utils import timezone

from projects.models import MetricSample, Project
from projects.services.lifecycle import requests as lifecycle
from tests.browser.conftest import ARTIFACTS, ConsoleWatch
from tests.browser.test_without_engine import fake_engine, no_js_page, sign_in  # noqa: F401 - fixtures

pytestmark = pytest.mark.browser
MIB = 2**20


def an_hour_of_samples(project: Project, *, busy: float) -> None:
    now = timezone.now().replace(microsecond=0)
    rows, commits, cpu, hit, read = [], 0, 0.0, 0, 0
    for i in range(120):  # every 30 s
        load = busy * (0.5 + 0.5 * math.sin(i / 12))
        commits += int(30 * 40 * load)
        cpu += 30 * 0.3 * load
        hit += int(30 * 2000 * load) + 100
        read += int(30 * 40 * load * (1.5 - load)) + 1
        rows.append(MetricSample(
            project=project, at=now - timedelta(seconds=30 * (119 - i)), cpu_seconds=cpu,
            memory_bytes=int((90 + 180 * load) * MIB), memory_limit_bytes=768 * MIB, db_size_bytes=int((9 + i * 0.05) * MIB),
            connections=3 + int(25 * load), max_connections=100, commits=commits, rollbacks=commits // 200,
            blocks_hit=hit, blocks_read=read, api_up=0.0 if 70 <= i < 73 else 1.0,
        ))  # fmt: skip
    MetricSample.objects.bulk_create(rows)


def test_the_charts_render_without_console_errors_and_read_without_javascript(browser_page, no_js_page, live_server, user, fake_engine):  # noqa: F811
    from playwright.sync_api import expect

    busy = Project.objects.get(pk=lifecycle.project_create(owner=user, name="shop").project_id)
    quiet = Project.objects.get(pk=lifecycle.project_create(owner=user, name="blog").project_id)
    an_hour_of_samples(busy, busy=1.0)
    an_hour_of_samples(quiet, busy=0.15)

    page = browser_page
    watch = ConsoleWatch(page)
    sign_in(page)
    watch.step = "list"
    page.goto("/")
    page.wait_for_load_state("networkidle")
    expect(page.locator(f"#project-{busy.public_id} svg.sparkline polyline")).to_have_count(1)
    ARTIFACTS.mkdir(exist_ok=True)
    page.locator("table.projects").screenshot(path=str(ARTIFACTS / "metrics-sparklines.png"))

    for range_name in ("1h", "24h", "7d"):
        watch.step = f"project page, {range_name}"
        page.goto(f"/projects/{busy.public_id}?range={range_name}#metrics")
        page.wait_for_load_state("networkidle")
        expect(page.locator("#metrics .range-current")).to_have_text(range_name)
    watch.step = "project page, 1h"
    page.goto(f"/projects/{busy.public_id}#metrics")
    page.wait_for_load_state("networkidle")
    metrics = page.locator("#metrics")
    expect(metrics.locator("figure.chart")).to_have_count(7)
    expect(metrics.locator("#chart-memory")).to_contain_text("limit 768 MiB")
    expect(metrics.locator("#chart-connections")).to_contain_text("max_connections 100")
    # Drawn, not just present: the memory line has a width on the page.
    box = metrics.locator("#chart-memory polyline").first.bounding_box()
    assert box is not None and box["width"] > 200
    metrics.screenshot(path=str(ARTIFACTS / "metrics-charts.png"))
    watch.assert_clean()

    # Without JavaScript the same charts are there: they are the server's SVG.
    sign_in(no_js_page)
    no_js_page.goto(f"/projects/{busy.public_id}?range=1h")
    expect(no_js_page.locator("#metrics figure.chart svg")).to_have_count(7)
    expect(no_js_page.locator("#metrics").get_by_role("link", name="24h")).to_have_attribute("href", f"/projects/{busy.public_id}?range=24h#metrics")
