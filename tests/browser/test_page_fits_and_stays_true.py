"""The project page stays true while the project changes, and the pages fit the screens people use.

On the FakeRuntime: the project's state is set directly, so the page can be
watched while it is provisioning and when it settles, without an engine.
"""

from dataclasses import replace

import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone

from projects.models import Project
from projects.services.lifecycle import requests as lifecycle
from tests.browser.conftest import ConsoleWatch
from tests.browser.test_without_engine import fake_engine, sign_in  # noqa: F401 - fixtures

pytestmark = pytest.mark.browser

S, H = Project.Status, Project.Health
PHONE = {"width": 390, "height": 844}


def test_backups_and_logs_refresh_when_the_project_settles(browser_page, live_server, user, fake_engine):  # noqa: F811
    from playwright.sync_api import expect

    page = browser_page
    watch = ConsoleWatch(page)
    project = lifecycle.project_create(owner=user, name="settles").project
    # As a person sees it right after create: provisioning, no container made yet.
    made = {n: c for n, c in fake_engine.containers_by_name.items() if c.project_id == project.public_id}
    for name in made:
        del fake_engine.containers_by_name[name]
    Project.objects.filter(pk=project.pk).update(status=S.PROVISIONING, health=H.UNKNOWN, observed_at=None)

    sign_in(page)
    page.goto(f"/projects/{project.public_id}")
    page.evaluate("window.__sameDocument = true")
    backups, logs = page.locator("#backups"), page.locator("#logs")
    expect(page.locator("#panel .badge.health")).to_have_text("Starting")
    expect(page.locator("#panel .badge.engine-pending")).to_have_count(2)
    expect(backups.get_by_role("heading", name="Daily backup")).to_be_visible()  # the section has loaded
    expect(backups.get_by_role("button", name="Back up now")).to_have_count(0)
    expect(logs).to_contain_text("Nothing yet")

    # The worker finishes: containers made, the project settled running.
    fake_engine.containers_by_name.update(made)
    Project.objects.filter(pk=project.pk).update(status=S.RUNNING, health=H.HEALTHY, observed_at=timezone.now())

    expect(page.locator("#panel .badge.status")).to_have_text("Running")
    expect(backups.get_by_role("button", name="Back up now")).to_be_visible()
    expect(logs).to_contain_text(f"project_{project.public_id}_db log line")
    expect(logs).to_contain_text(f"project_{project.public_id}_api log line")
    assert page.evaluate("window.__sameDocument") is True  # no reload did it
    watch.assert_clean()


def test_a_phone_width_list_shows_name_status_and_health_without_sideways_scrolling(chromium, live_server, user, fake_engine):  # noqa: F811
    lifecycle.project_create(owner=user, name="a-project-with-a-rather-long-name-that-goes-on")
    lifecycle.project_create(owner=user, name="shop")
    context = chromium.new_context(viewport=PHONE, base_url=live_server.url)
    try:
        page = context.new_page()
        sign_in(page)
        page.goto("/")
        rows = page.locator("#projects tbody tr")
        assert rows.count() == 2
        for i in range(2):
            row = rows.nth(i)
            for part in (row.get_by_role("link"), row.locator(".badge.status"), row.locator(".badge.health")):
                box = part.bounding_box()
                assert box is not None and box["width"] > 0, part
                assert 0 <= box["x"] and box["x"] + box["width"] <= PHONE["width"], (part, box)
        assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
        # Not even inside the table's own box: nothing is hidden to the right.
        assert page.evaluate("(() => { const w = document.querySelector('#projects .table-wrap'); return w.scrollWidth <= w.clientWidth; })()")
    finally:
        context.close()


def test_the_project_pages_tables_wrap_on_a_phone(chromium, live_server, user, fake_engine, settings, tmp_path):  # noqa: F811
    settings.BERTH_BACKUP_DIR = tmp_path / "backups"
    project = lifecycle.project_create(owner=user, name="phone").project
    context = chromium.new_context(viewport=PHONE, base_url=live_server.url)
    try:
        page = context.new_page()
        sign_in(page)
        page.goto(f"/projects/{project.public_id}")
        page.get_by_role("button", name="Back up now").click()
        page.locator("#backups table.backups .op-succeeded").wait_for()  # verified
        assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
        overflowing = page.evaluate(
            "Array.from(document.querySelectorAll('.table-wrap')).filter(w => w.scrollWidth > w.clientWidth).map(w => w.closest('section').id)"
        )
        assert overflowing == []
        assert page.locator(".table-wrap").count() == 3  # containers, operations, backups
    finally:
        context.close()


def test_the_drift_page_shows_its_fix_column_at_1280_pixels(browser_page, live_server, user, fake_engine):  # noqa: F811
    from playwright.sync_api import expect

    page = browser_page  # 1280 wide
    # The longest sentences drift has: a volume gone, a container on another port.
    gone = lifecycle.project_create(owner=user, name="gone").project
    for service in ("db", "api"):
        del fake_engine.containers_by_name[f"project_{gone.public_id}_{service}"]
    del fake_engine.volumes[f"project_{gone.public_id}_data"]
    moved = lifecycle.project_create(owner=user, name="moved").project
    api = f"project_{moved.public_id}_api"
    fake_engine.containers_by_name[api] = replace(fake_engine.containers_by_name[api], host_ports=(65001,))
    get_user_model().objects.create_user("sam", password="sam-password-1", is_staff=True)
    page.goto("/accounts/login/")
    page.get_by_label("Username").fill("sam")
    page.get_by_label("Password").fill("sam-password-1")
    page.get_by_role("button", name="Sign in").click()
    page.goto("/drift")
    fixes = page.locator("table.drift td.fix")
    expect(fixes).to_have_count(2)  # a vanished volume is one entry (not also its containers), a port one
    viewport = page.viewport_size["width"]
    for i in range(fixes.count()):
        box = fixes.nth(i).bounding_box()
        assert box["x"] + box["width"] <= viewport, box
    assert page.evaluate("(() => { const w = document.querySelector('.table-wrap'); return w.scrollWidth <= w.clientWidth; })()")
