"""Two-factor sign-in in Chromium (projects/mfa.py): forced enrolment with the QR code, then a code after the password.

The engine is faked (no Docker needed); the code is what an authenticator app
would show, computed from the device's key with django_otp.oath.totp. Every
page must hold under the Content-Security-Policy (the QR code is inline SVG)
and log no error.
"""

import pytest
from django_otp.oath import totp
from django_otp.plugins.otp_totp.models import TOTPDevice

from tests.browser.conftest import ConsoleWatch
from tests.browser.test_without_engine import fake_engine  # noqa: F401 - a fixture

pytestmark = pytest.mark.browser


def app_code(device: TOTPDevice, *, ahead: int = 0) -> str:
    device.refresh_from_db()
    return f"{totp(device.bin_key, device.step, device.t0, device.digits, device.drift + ahead):06d}"


def test_enrol_when_required_then_sign_in_with_a_code(browser_page, live_server, user, settings, fake_engine):  # noqa: F811
    from playwright.sync_api import expect

    settings.BERTH_REQUIRE_2FA = "all"
    # django-otp makes the next try after a wrong code wait a second; a test types faster than that.
    settings.OTP_TOTP_THROTTLE_FACTOR = 0
    page = browser_page
    watch = ConsoleWatch(page)
    violations: list[str] = []
    page.on("console", lambda m: violations.append(m.text) if "Content Security Policy" in m.text else None)

    watch.step = "password"
    page.goto("/accounts/login/?next=/tokens")
    page.get_by_label("Username").fill("alice")
    page.get_by_label("Password").fill("alice-password-1")
    page.get_by_role("button", name="Sign in").click()

    watch.step = "enrolment"
    expect(page.get_by_role("heading", name="Set up two-factor sign-in")).to_be_visible()
    expect(page.locator("figure.qr svg")).to_be_visible()
    # Nothing else is reachable yet, nor offered.
    expect(page.get_by_role("navigation", name="Main").get_by_role("link", name="API tokens")).to_have_count(0)
    page.goto("/projects/new")
    expect(page.get_by_role("heading", name="Two-factor sign-in")).to_be_visible()  # the code page, which sends to enrolment
    page.goto("/accounts/2fa/enrol?next=/tokens")
    device = TOTPDevice.objects.get(user__username="alice", confirmed=False)
    watch.assert_clean()
    page.get_by_label("Code from the app").fill("000000" if app_code(device) != "000000" else "111111")
    page.get_by_role("button", name="Turn on two-factor sign-in").click()
    expect(page.locator(".field-error")).to_contain_text("not the one the app shows now")
    # That page came with 422 on purpose, which Chromium logs as a failed load: a fresh watch from here on.
    watch = ConsoleWatch(page)
    watch.step = "enrolment"
    page.get_by_label("Code from the app").fill(app_code(device))
    page.get_by_role("button", name="Turn on two-factor sign-in").click()
    codes = page.get_by_role("list", name="Recovery codes").locator("li")
    expect(codes).to_have_count(10)
    recovery = codes.first.inner_text().strip()
    page.get_by_role("link", name="I have kept them: continue").click()
    expect(page.get_by_role("heading", name="API tokens")).to_be_visible()

    watch.step = "second sign-in"
    page.get_by_role("button", name="Sign out").click()
    page.goto("/accounts/login/")
    page.get_by_label("Username").fill("alice")
    page.get_by_label("Password").fill("alice-password-1")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Two-factor sign-in")).to_be_visible()
    page.get_by_label("Code").fill(app_code(device, ahead=1))  # the enrolment's code is used up
    page.get_by_role("button", name="Verify").click()
    expect(page.get_by_role("heading", name="Projects")).to_be_visible()

    watch.step = "account page"
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Two-factor").click()
    expect(page.locator("#recovery-left")).to_have_text("10")
    page.locator("#id_regenerate_code").fill(recovery)
    page.get_by_role("button", name="Make new recovery codes").click()
    expect(page.get_by_role("list", name="Recovery codes").locator("li")).to_have_count(10)

    watch.assert_clean()
    assert violations == [], "\n".join(violations)
