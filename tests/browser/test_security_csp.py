"""The Content-Security-Policy in a real browser: every page works under it and Chromium reports no violation.

A policy that the dashboard silently breaks (a blocked script, a blocked
style) would only show in a browser's console, so that is what is read here.
"""

import pytest

from projects.models import Project
from projects.services.lifecycle import requests as lifecycle
from tests.browser.test_without_engine import fake_engine, sign_in  # noqa: F401 - fixtures

pytestmark = pytest.mark.browser


def test_no_page_breaks_the_content_security_policy(browser_page, live_server, user, staff, fake_engine):  # noqa: F811
    violations: list[str] = []
    browser_page.on("console", lambda m: violations.append(m.text) if "Content Security Policy" in m.text else None)
    project = Project.objects.get(pk=lifecycle.project_create(owner=user, name="csp").project_id)

    sign_in(browser_page)
    for path in ["/", "/projects/new", f"/projects/{project.public_id}", "/tokens"]:
        browser_page.goto(path)
        browser_page.wait_for_load_state("networkidle")
    # HTMX at work: the logs refresh is a swap, the Reveal button another.
    browser_page.goto(f"/projects/{project.public_id}")
    browser_page.get_by_role("button", name="Reveal").click()
    browser_page.wait_for_load_state("networkidle")

    browser_page.context.clear_cookies()
    browser_page.goto("/admin/login/")
    browser_page.get_by_label("Username").fill("sam")
    browser_page.get_by_label("Password").fill("sam-password-1")
    browser_page.get_by_role("button", name="Log in").click()
    for path in ["/admin/", "/admin/projects/project/", f"/admin/projects/project/{project.pk}/change/"]:
        browser_page.goto(path)
        browser_page.wait_for_load_state("networkidle")

    assert violations == [], "\n".join(violations)
