"""The dashboard in Chromium with the engine faked: no JavaScript, a phone's screen, the keyboard.

These need Chromium but no Docker Engine: FakeRuntime stands in for it and
operations run inline, as in the unit tests.
"""

import pytest

from projects.models import Project
from projects.runtime import use_runtime
from projects.runtime.fake import FakeRuntime
from projects.services.lifecycle import requests as lifecycle

pytestmark = pytest.mark.browser


@pytest.fixture
def fake_engine(settings):
    settings.TASKS = {"default": {"BACKEND": "django.tasks.backends.immediate.ImmediateBackend"}}
    runtime = FakeRuntime()
    use_runtime(runtime)
    yield runtime
    use_runtime(None)


def sign_in(page) -> None:
    page.goto("/accounts/login/")
    page.get_by_label("Username").fill("alice")
    page.get_by_label("Password").fill("alice-password-1")
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("heading", name="Projects").wait_for()


@pytest.fixture
def no_js_page(chromium, live_server):
    context = chromium.new_context(java_script_enabled=False, base_url=live_server.url)
    page = context.new_page()
    page.set_default_timeout(15_000)
    yield page
    context.close()


def test_every_form_and_link_works_without_javascript(no_js_page, live_server, user, fake_engine):
    from playwright.sync_api import expect

    page = no_js_page
    sign_in(page)
    page.get_by_role("link", name="New project").first.click()
    page.get_by_label("Name").fill("plain")
    page.get_by_role("button", name="Create project").click()
    project = Project.objects.get(name="plain")
    expect(page).to_have_url(f"{live_server.url}/projects/{project.public_id}")
    expect(page.locator("#panel .badge.status")).to_have_text("Running")
    # A copy button could not work without JavaScript, so none is shown; the text stays selectable.
    expect(page.get_by_role("button", name="Copy the database URL")).to_be_hidden()
    expect(page.locator("#db-url")).to_have_value(project.db_url(reveal=False))

    page.get_by_role("button", name="Reveal password").click()
    expect(page.locator("#db-password")).to_have_value(project.db_password)
    page.get_by_role("link", name="Hide").click()
    expect(page.locator("#db-password")).to_have_count(0)

    page.get_by_role("link", name="Refresh logs").click()
    expect(page.locator("#logs")).to_contain_text(f"project_{project.public_id}_db log line")

    page.get_by_role("button", name="Stop", exact=True).click()
    expect(page.locator("#panel .badge.status")).to_have_text("Stopped")

    # <details> opens without a script; a wrong name is refused on a full page.
    page.locator("summary", has_text="Delete…").click()
    page.fill("#confirm-delete", "wrong")
    page.get_by_role("button", name="Delete project").click()
    expect(page.locator("#panel [role=alert]")).to_contain_text("That is not the project's name")
    page.fill("#confirm-delete", "plain")
    page.get_by_role("button", name="Delete project").click()
    expect(page.locator("#panel .badge.status")).to_have_text("Deleted")

    # The list hides deleted projects until the filter asks for them (a plain GET form).
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Projects").click()
    expect(page.get_by_role("link", name="plain")).to_have_count(0)
    page.get_by_label("Show deleted projects").check()
    page.get_by_role("button", name="Apply").click()
    expect(page.get_by_role("link", name="plain")).to_be_visible()

    page.goto("/tokens")
    page.get_by_label("Name").fill("ci")
    page.get_by_role("button", name="Create token").click()
    token = page.locator("#new-token").input_value()
    assert token.startswith("berth_")
    page.get_by_role("button", name="Revoke ci").click()
    expect(page.get_by_text("No tokens yet.")).to_be_visible()


def test_delete_can_be_done_with_the_keyboard_alone(browser_page, user, fake_engine):
    from playwright.sync_api import expect

    page = browser_page
    project = lifecycle.project_create(owner=user, name="keys").project
    sign_in(page)
    page.goto(f"/projects/{project.public_id}")
    summary = page.locator("summary", has_text="Delete…")
    summary.focus()
    page.keyboard.press("Enter")  # a <summary> opens from the keyboard
    page.keyboard.press("Tab")
    expect(page.locator("#confirm-delete")).to_be_focused()
    page.keyboard.type("keys")
    page.keyboard.press("Enter")  # submits the form
    expect(page.locator("#panel .badge.status")).to_have_text("Deleted")


@pytest.mark.parametrize("path", ["/", "/projects/new", "/projects/{id}", "/tokens"])
def test_pages_fit_a_phone_screen(chromium, live_server, user, fake_engine, path):
    project = lifecycle.project_create(owner=user, name="a-project-with-a-rather-long-name").project
    context = chromium.new_context(viewport={"width": 360, "height": 740}, base_url=live_server.url)
    try:
        page = context.new_page()
        sign_in(page)
        page.goto(path.format(id=project.public_id))
        # Wide tables scroll inside their own box; the page itself never scrolls sideways.
        assert page.evaluate("document.documentElement.scrollWidth") <= 360
    finally:
        context.close()
