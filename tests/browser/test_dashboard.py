"""A person's whole path through the dashboard, in Chromium, on the real engine.

Sign in, create a project and watch it reach running without reloading, copy
its database URL (and use it), stop and start it, delete it with the typed
confirmation, restore it, and purge it so nothing is left.
"""

import os
import re
import shutil
from pathlib import Path

import psycopg
import pytest

from projects.models import Project
from tests.browser.conftest import ARTIFACTS, ConsoleWatch
from tests.engine import TEST_LABEL

pytestmark = pytest.mark.browser

DOCS = Path(__file__).resolve().parents[2] / "docs"
# Operations on the real engine: create runs initdb and starts PostGraphile.
SETTLE_MS = 120_000


# Every word the panel's health badge shows, one per swap of the polling panel.
HEALTH_SEEN = """
window.__healthSeen = [document.querySelector("#panel .badge.health").textContent.trim()];
document.addEventListener("htmx:afterSettle", () => {
  const badge = document.querySelector("#panel .badge.health");
  if (badge) window.__healthSeen.push(badge.textContent.trim());
});
"""


def expect_status(page, label: str) -> None:
    from playwright.sync_api import expect

    expect(page.locator("#panel .badge.status")).to_have_text(label, timeout=SETTLE_MS)


def click_action(page, name: str) -> None:
    page.locator("#panel").get_by_role("button", name=name, exact=True).click()


def confirm_by_name(page, action: str, typed: str) -> None:
    """Open the Delete…/Purge… disclosure, type the name, press the button."""
    details = page.locator("#panel details.confirm", has=page.locator(f"#confirm-{action}"))
    if details.get_attribute("open") is None:
        details.locator("summary").click()
    page.fill(f"#confirm-{action}", typed)
    details.get_by_role("button", name={"delete": "Delete project", "purge": "Purge for good"}[action]).click()


def phone_screenshots(page, project: Project) -> None:
    """The list and the project page as a 390-px-wide phone shows them, signed in as the same person."""
    phone = page.context.browser.new_context(
        viewport={"width": 390, "height": 844}, device_scale_factor=2, base_url=page.url.split("/projects/")[0],
        storage_state=page.context.storage_state(),
    )  # fmt: skip
    try:
        shot = phone.new_page()
        shot.goto("/")
        shot.screenshot(path=str(ARTIFACTS / "project-list-phone.png"))
        shot.goto(f"/projects/{project.public_id}")
        shot.locator("#backups").get_by_role("button", name="Back up now").wait_for()
        shot.screenshot(path=str(ARTIFACTS / "project-page-phone.png"))
    finally:
        phone.close()


def test_a_project_from_sign_in_to_purge(browser_page, live_server, workers, user, engine):
    page = browser_page
    watch = ConsoleWatch(page)
    from playwright.sync_api import expect

    # Signing in: every page sends a stranger to the login form first.
    page.goto("/")
    expect(page).to_have_url(re.compile(r"/accounts/login/\?next=/$"))
    page.get_by_label("Username").fill("alice")
    page.get_by_label("Password").fill("alice-password-1")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Projects")).to_be_visible()

    # Create: the form posts with HTMX and the browser is sent to the project page.
    page.get_by_role("link", name="New project").first.click()
    page.get_by_label("Name").fill("shop")
    page.get_by_label("PostgreSQL version").select_option("17")
    page.get_by_label("PostGraphile").check()  # the offline images have no PostgREST
    page.get_by_role("button", name="Create project").click()
    expect(page).to_have_url(re.compile(r"/projects/[0-9a-f]{12}$"))
    project = Project.objects.get(owner=user)

    # It comes up while the page polls: a marker set now would vanish with a reload.
    page.evaluate("window.__sameDocument = true")
    page.evaluate(HEALTH_SEEN)
    expect_status(page, "Running")
    assert page.evaluate("window.__sameDocument") is True
    # On the way up the health badge says "Starting", never a red word.
    assert {"Unhealthy", "Missing", "Down"}.isdisjoint(page.evaluate("window.__healthSeen")), page.evaluate("window.__healthSeen")
    expect(page.locator("#panel .badge.health")).to_have_text("Healthy")
    expect(page.locator("#panel")).to_contain_text(f"project_{project.public_id}_db")
    # The sections rendered while it was provisioning read themselves again when it
    # settled: the containers' own lines, and a backup that can now be taken.
    expect(page.locator("#logs pre.log").first).to_contain_text("database system is ready to accept connections")
    expect(page.locator("#logs pre.log")).to_have_count(2)
    expect(page.locator("#backups").get_by_role("button", name="Back up now")).to_be_visible()

    # The pictures for the README and the CI artifacts, before any secret is on screen.
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "project-page.png"), full_page=True)
    phone_screenshots(page, project)
    assert project.db_password not in page.content()

    # Copy the database URL: masked until the owner reveals the password, complete after.
    page.get_by_role("button", name="Reveal password").click()
    expect(page.locator("#db-password")).to_have_value(project.db_password)
    page.get_by_role("button", name="Copy the database URL").click()
    expect(page.locator("#announce")).to_have_text("Copied")
    copied = page.evaluate("navigator.clipboard.readText()")
    assert copied == project.db_url()
    with psycopg.connect(copied, connect_timeout=5) as conn:  # and it is a URL that works
        assert conn.execute("SELECT 1").fetchone() == (1,)

    # Stop and start, each watched to the end without a reload.
    click_action(page, "Stop")
    expect_status(page, "Stopped")
    expect(page.locator("#announce")).to_have_text("Status: Stopped")  # said to screen readers too
    click_action(page, "Start")
    expect_status(page, "Running")

    # A rename answers in the Settings section and shows in the page's head at once.
    page.locator("#settings-name").fill("store")
    page.get_by_role("button", name="Save settings").click()
    expect(page.locator("#settings [role=status]")).to_have_text("Saved.")
    expect(page.get_by_role("heading", level=1)).to_have_text("store")
    page.locator("#settings-name").fill("shop")
    page.get_by_role("button", name="Save settings").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("shop")

    # Delete asks for the name: a wrong one is refused in place, the right one deletes.
    confirm_by_name(page, "delete", "not-shop")
    expect(page.locator("#panel [role=alert]")).to_contain_text("That is not the project's name")
    expect_status(page, "Running")
    confirm_by_name(page, "delete", "shop")
    expect_status(page, "Deleted")
    assert not engine.containers.list(all=True, filters={"label": f"berth.project={project.public_id}"})

    # Restore brings it back stopped, with its data volume.
    click_action(page, "Restore")
    expect_status(page, "Stopped")

    # Purge (after another delete) so nothing of this test is left on the engine.
    confirm_by_name(page, "delete", "shop")
    expect_status(page, "Deleted")
    confirm_by_name(page, "purge", "shop")
    expect_status(page, "Purged")
    assert page.evaluate("window.__sameDocument") is True
    label = {"label": TEST_LABEL}
    leftovers = [c.name for c in engine.containers.list(all=True, filters=label)]
    leftovers += [v.name for v in engine.volumes.list(filters=label)]
    assert leftovers == []

    watch.assert_clean()  # every page and swap of the whole life, on the real engine

    # Keep the docs' screenshots in step with the page when asked to (BERTH_UPDATE_DOCS=1).
    if os.environ.get("BERTH_UPDATE_DOCS") == "1":
        DOCS.mkdir(exist_ok=True)
        for name in ("project-page.png", "project-list-phone.png", "project-page-phone.png"):
            shutil.copyfile(ARTIFACTS / name, DOCS / name)
