"""No page and no HTMX swap writes an error to the browser's console, and nothing the pages load is missing.

A blocked inline style, a favicon that 404s or htmx reporting a refusal as a
failure show only in the console; this walks every page and every kind of
swap on the FakeRuntime and reads it (conftest.ConsoleWatch).
"""

import re

import pytest
from django.contrib.auth import get_user_model

from projects.models import Project
from tests.browser.conftest import ConsoleWatch
from tests.browser.test_without_engine import fake_engine, sign_in  # noqa: F401 - fixtures

pytestmark = pytest.mark.browser


def settle(page, watch: ConsoleWatch, step: str, action) -> None:
    """Do one step and wait until the page and every swap it caused are done."""
    watch.step = step
    action()
    page.wait_for_load_state("networkidle")


def redirected(page, action):
    """`action`, for a step answered with HX-Redirect: done once the new page is there.

    The old page stays until the browser navigates, with what the test typed in
    it: a check of that page would pass, and the next click land on a page about
    to go."""
    def step() -> None:
        with page.expect_navigation():
            action()

    return step


def test_no_page_and_no_swap_logs_a_console_error(browser_page, live_server, user, fake_engine, settings, tmp_path):  # noqa: F811
    from playwright.sync_api import expect

    settings.BERTH_BACKUP_DIR = tmp_path / "backups"
    page = browser_page
    watch = ConsoleWatch(page)
    sign_in(page)
    panel = page.locator("#panel")

    settle(page, watch, "list", lambda: page.goto("/"))
    settle(page, watch, "create form", lambda: page.goto("/projects/new"))
    page.get_by_label("Name").fill("console")
    settle(page, watch, "create (HX-Redirect)", lambda: page.get_by_role("button", name="Create project").click())
    expect(page).to_have_url(re.compile(r"/projects/[0-9a-f]{12}$"))
    project = Project.objects.get(name="console")
    expect(page.get_by_role("button", name="Back up now")).to_be_visible()  # the backups section swapped in on load

    settle(page, watch, "refresh logs", lambda: page.get_by_role("link", name="Refresh logs").click())
    settle(page, watch, "reveal", lambda: page.get_by_role("button", name="Reveal password").click())
    expect(page.locator("#db-password")).to_have_value(project.db_password)
    settle(page, watch, "hide", lambda: page.get_by_role("link", name="Hide").click())
    settle(page, watch, "back up now", lambda: page.get_by_role("button", name="Back up now").click())
    expect(page.locator("#backups")).to_contain_text("Verified")
    settle(page, watch, "save schedule", lambda: page.locator("#backups").get_by_role("button", name="Save").click())
    expect(page.locator("#backups")).to_contain_text("Schedule saved.")

    section = page.locator("#settings")

    def save_settings(**fields: str):
        for name, value in fields.items():
            page.fill(f"#setting-{name}", value)
        section.get_by_role("button", name="Save settings").click()

    settle(page, watch, "settings refused (422)", lambda: save_settings(work_mem="lots"))
    expect(section.locator("[role=alert]")).to_contain_text("amount of memory")
    settle(page, watch, "settings kept for a restart (swap)", lambda: save_settings(work_mem="", max_connections="60"))
    expect(section).to_contain_text("waits for a restart")
    settle(page, watch, "settings reconfigured (HX-Redirect)", redirected(page, lambda: save_settings(work_mem="8MB")))
    expect(page.locator("#setting-work_mem")).to_have_value("8MB")
    section.locator("summary", has_text="New API keys…").click()
    settle(page, watch, "rotate keys (HX-Redirect)", redirected(page, lambda: section.get_by_role("button", name="Replace the keys").click()))
    expect(page.locator("#settings")).to_be_visible()

    def delete(typed: str):
        panel.locator("summary", has_text="Delete…").click()
        page.fill("#confirm-delete", typed)
        panel.get_by_role("button", name="Delete project").click()

    settle(page, watch, "delete refused (422)", lambda: delete("not-console"))
    expect(panel.locator("[role=alert]")).to_contain_text("That is not the project's name")
    settle(page, watch, "stop (settles: sections refresh)", lambda: panel.get_by_role("button", name="Stop", exact=True).click())
    expect(panel.locator(".badge.status")).to_have_text("Stopped")
    settle(page, watch, "start", lambda: panel.get_by_role("button", name="Start", exact=True).click())
    expect(panel.locator(".badge.status")).to_have_text("Running")
    settle(page, watch, "restore refused (409)", lambda: page.evaluate(
        "htmx.ajax('POST', location.pathname + '/restore', {target: '#panel', swap: 'outerHTML'})"
    ))  # fmt: skip
    expect(panel.locator("[role=alert]")).to_contain_text("cannot restore")

    settle(page, watch, "delete", lambda: delete("console"))
    expect(panel.locator(".badge.status")).to_have_text("Deleted")
    settle(page, watch, "restore", lambda: panel.get_by_role("button", name="Restore").click())
    expect(panel.locator(".badge.status")).to_have_text("Stopped")

    settle(page, watch, "list", lambda: page.goto("/"))
    settle(page, watch, "show deleted (swap)", lambda: page.get_by_label("Show deleted projects").check())
    settle(page, watch, "tokens", lambda: page.goto("/tokens"))
    page.get_by_label("Name").fill("ci")
    settle(page, watch, "create token", lambda: page.get_by_role("button", name="Create token").click())
    page.once("dialog", lambda dialog: dialog.accept())  # hx-confirm asks first
    settle(page, watch, "revoke token", lambda: page.get_by_role("button", name="Revoke ci").click())
    expect(page.get_by_text("No tokens yet.")).to_be_visible()

    # An operator: drift and the admin (a superuser, so every admin page answers).
    get_user_model().objects.create_superuser("root", password="root-password-1")
    page.context.clear_cookies()
    settle(page, watch, "admin login", lambda: page.goto("/admin/login/"))
    page.get_by_label("Username").fill("root")
    page.get_by_label("Password").fill("root-password-1")
    settle(page, watch, "admin sign in", lambda: page.get_by_role("button", name="Log in").click())
    for path in [
        "/drift",
        "/admin/",
        "/admin/projects/project/",
        f"/admin/projects/project/{project.pk}/change/",
        "/admin/projects/operation/",
        "/admin/projects/backup/",
        "/admin/projects/apitoken/",
    ]:
        settle(page, watch, path, lambda path=path: page.goto(path))

    watch.assert_clean()
