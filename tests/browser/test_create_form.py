"""The create form in Chromium: a refused name is said on the form, in place, and nothing is created."""

import pytest

from projects.models import Project
from projects.services.lifecycle import requests as lifecycle
from tests.browser.conftest import ConsoleWatch
from tests.browser.test_without_engine import fake_engine, sign_in  # noqa: F401 - fixtures

pytestmark = pytest.mark.browser


def test_the_create_form_refuses_a_name_the_owner_already_uses(browser_page, live_server, user, fake_engine):  # noqa: F811
    from playwright.sync_api import expect

    lifecycle.project_create(owner=user, name="shop")
    page = browser_page
    watch = ConsoleWatch(page)
    sign_in(page)
    page.goto("/projects/new")
    page.evaluate("window.__sameDocument = true")
    page.get_by_label("Name").fill(" shop ")  # trimmed, it is the same name
    page.get_by_role("button", name="Create project").click()

    expect(page.get_by_text("already have a project called 'shop'")).to_be_visible()
    expect(page).to_have_url(f"{live_server.url}/projects/new")
    assert page.evaluate("window.__sameDocument") is True  # swapped into the form, not a new page
    assert Project.objects.filter(owner=user).count() == 1
    watch.assert_clean()  # the 422 is an answer shown in place, not a console error
