"""The second factor (projects/mfa.py, services/accounts/mfa.py): who owes a code, enrolment, recovery codes, and every way in refused until it is given."""

import logging

import pytest
from django_otp.oath import totp
from django_otp.plugins.otp_static.models import StaticToken
from django_otp.plugins.otp_totp.models import TOTPDevice

from projects.models import SecondFactorRequirement
from projects.services.accounts.mfa import recovery_codes_replace
from tests.conftest import bearer
from tests.unit.test_access import MATRIX, world  # noqa: F401 - the matrix's URLs and its fixture

VERIFY = "/accounts/2fa/verify"
ENROL = "/accounts/2fa/enrol"
ACCOUNT = "/accounts/2fa/"
# What a session that owes its code may still reach (projects/mfa.py _open_while_owed).
OPEN_WHILE_OWED = {"accounts/login/", "accounts/logout/", "accounts/2fa/verify", "accounts/2fa/enrol"}


@pytest.fixture(autouse=True)
def _no_device_throttle(settings):
    # django-otp refuses any code within 2^(n-1) s of the n-th wrong one: real
    # protection, but a test that sends a wrong code and then the right one
    # would wait for it. Berth's own limits (login_limits) stay on.
    settings.OTP_TOTP_THROTTLE_FACTOR = 0
    settings.OTP_STATIC_THROTTLE_FACTOR = 0


def code(device: TOTPDevice, *, ahead: int = 0) -> str:
    """The code the authenticator app shows now (or `ahead` windows later: a code once used is refused)."""
    device.refresh_from_db()
    return f"{totp(device.bin_key, device.step, device.t0, device.digits, device.drift + ahead):06d}"


def enrol(user) -> tuple[TOTPDevice, list[str]]:
    device = TOTPDevice.objects.create(user=user, name="Authenticator app", confirmed=True)
    return device, recovery_codes_replace(user=user)


def sign_in(client, username: str = "alice", password: str = "alice-password-1", address: str = "203.0.113.7"):
    response = client.post("/accounts/login/", {"username": username, "password": password}, REMOTE_ADDR=address)
    assert response.status_code == 302, "the password step itself is unchanged"
    return response


def give(client, value: str, *, path: str = VERIFY, next_url: str = "/", address: str = "203.0.113.7"):
    return client.post(path, {"code": value, "next": next_url}, REMOTE_ADDR=address)


def sent_to_second_factor(response) -> bool:
    return response.status_code == 302 and response["Location"].startswith(f"{VERIFY}?next=")


# --- off by default ---------------------------------------------------------------------


class TestOffByDefault:
    def test_it_signs_in_with_the_password_alone(self, client, user, settings):
        assert settings.BERTH_REQUIRE_2FA == "off"
        assert sign_in(client)["Location"] == "/"
        assert client.get("/").status_code == 200
        assert client.get("/admin/login/").status_code == 200  # the admin's own form too (not staff: its form)

    def test_the_login_form_asks_for_nothing_more(self, client, db):
        page = client.get("/accounts/login/").content.decode()
        assert 'name="username"' in page and 'name="password"' in page and 'name="code"' not in page

    def test_staff_may_use_the_admin_without_enrolling(self, admin_client):
        assert admin_client.get("/admin/").status_code == 200


# --- enrolment --------------------------------------------------------------------------


class TestEnrolment:
    def test_it_shows_a_qr_code_inline_and_the_key_once(self, client, user):
        client.force_login(user)
        page = client.get(ENROL).content.decode()
        device = TOTPDevice.objects.get(user=user)
        assert not device.confirmed
        assert '<svg' in page and 'class="segno"' in page  # drawn here: no image from elsewhere
        assert "<img" not in page
        from projects.services.accounts.mfa import totp_secret_text

        assert totp_secret_text(device=device) in page
        client.get(ENROL)  # a second visit: a new key, the first one void
        assert TOTPDevice.objects.filter(user=user).count() == 1 and TOTPDevice.objects.get(user=user).key != device.key

    def test_a_wrong_code_is_refused(self, client, user):
        client.force_login(user)
        client.get(ENROL)
        response = give(client, "000000", path=ENROL)
        device = TOTPDevice.objects.get(user=user)
        if code(device) == "000000":  # one chance in a million
            pytest.skip("the app's code happened to be 000000")
        assert response.status_code == 422
        assert "not the one the app shows now" in response.content.decode()
        assert not TOTPDevice.objects.get(user=user).confirmed and not StaticToken.objects.exists()

    def test_the_right_code_turns_it_on_and_shows_ten_recovery_codes_once(self, client, user):
        client.force_login(user)
        client.get(ENROL)
        device = TOTPDevice.objects.get(user=user)
        response = give(client, code(device), path=ENROL)
        assert response.status_code == 200
        page = response.content.decode()
        codes = list(StaticToken.objects.filter(device__user=user).values_list("token", flat=True))
        assert len(codes) == 10 and all(c in page for c in codes)
        assert TOTPDevice.objects.get(user=user).confirmed
        # This session gave the code: it goes on; the codes are nowhere to be read again.
        account = client.get(ACCOUNT).content.decode()
        assert client.get("/").status_code == 200 and not any(c in account for c in codes)
        assert '<strong id="recovery-left">10</strong>' in account

    def test_an_enrolled_user_cannot_start_over_without_a_code(self, client, user):
        device, _ = enrol(user)
        sign_in(client)
        response = client.get(ENROL)
        assert response.status_code == 302 and response["Location"] == ACCOUNT
        assert sent_to_second_factor(client.get(ACCOUNT))
        assert list(TOTPDevice.objects.filter(user=user)) == [device]

    def test_no_secret_reaches_the_logs(self, client, user, caplog):
        caplog.set_level(logging.DEBUG)
        client.force_login(user)
        client.get(ENROL)
        device = TOTPDevice.objects.get(user=user)
        page = give(client, code(device), path=ENROL).content.decode()
        codes = StaticToken.objects.filter(device__user=user).values_list("token", flat=True)
        assert codes and all(c in page for c in codes)
        assert device.key not in caplog.text and not any(c in caplog.text for c in codes)


# --- the code after the password ---------------------------------------------------------


class TestSignIn:
    def test_an_enrolled_user_gives_a_code_after_the_password(self, client, user):
        device, _ = enrol(user)
        sign_in(client)
        assert sent_to_second_factor(client.get("/"))
        page = client.get(f"{VERIFY}?next=/tokens").content.decode()
        assert 'name="code"' in page and "API tokens" not in page  # no way on but the code and sign-out
        response = give(client, code(device), next_url="/tokens")
        assert response.status_code == 302 and response["Location"] == "/tokens"
        assert client.get("/").status_code == 200

    def test_a_wrong_code_is_refused_and_the_session_goes_nowhere(self, client, user):
        device, _ = enrol(user)
        sign_in(client)
        wrong = "000000" if code(device) != "000000" else "111111"
        response = give(client, wrong)
        assert response.status_code == 422 and "that code is not right" in response.content.decode().lower()
        assert sent_to_second_factor(client.get("/"))

    def test_a_used_code_is_refused_the_second_time(self, client, user):
        device, _ = enrol(user)
        sign_in(client)
        used = code(device)
        assert give(client, used).status_code == 302
        client.logout()
        sign_in(client)
        assert give(client, used).status_code == 422

    def test_a_recovery_code_works_once(self, client, user):
        _, codes = enrol(user)
        sign_in(client)
        assert give(client, codes[0].upper()).status_code == 302  # as people copy them
        assert client.get("/").status_code == 200
        client.logout()
        sign_in(client)
        assert give(client, codes[0]).status_code == 422
        assert give(client, codes[1]).status_code == 302
        assert StaticToken.objects.filter(device__user=user).count() == 8

    def test_right_after_a_wrong_code_the_app_is_throttled_and_says_so(self, client, user, settings):
        settings.OTP_TOTP_THROTTLE_FACTOR = 60  # django-otp's default is 1 s, doubling
        device, _ = enrol(user)
        sign_in(client)
        give(client, "000000" if code(device) != "000000" else "111111")
        response = give(client, code(device))
        assert response.status_code == 403 and "wait 60 s before the next try" in response.content.decode()

    def test_next_may_not_leave_the_site(self, client, user):
        device, _ = enrol(user)
        sign_in(client)
        response = give(client, code(device), next_url="https://evil.example/")
        assert response["Location"] == "/"

    def test_sign_out_stays_open(self, client, user):
        enrol(user)
        sign_in(client)
        assert client.post("/accounts/logout/").status_code == 302
        assert client.get("/").status_code == 302 and "_auth_user_id" not in client.session

    def test_wrong_codes_are_rate_limited_like_passwords_and_a_password_does_not_clear_them(self, client, user, settings):
        settings.BERTH_LOGIN_ATTEMPTS = 3
        device, _ = enrol(user)
        sign_in(client)
        wrong = "000000" if code(device) != "000000" else "111111"
        give(client, wrong)
        give(client, wrong)
        client.logout()
        sign_in(client)  # a right password clears the password's count, not the codes'
        give(client, wrong)
        response = give(client, code(device))
        assert response.status_code == 403 and "Too many failed sign-ins" in response.content.decode()
        assert sent_to_second_factor(client.get("/"))
        # From elsewhere the pair is another: the owner is not locked out of their own desk.
        assert give(client, code(device), address="198.51.100.9").status_code == 302


# --- who must give one --------------------------------------------------------------------


class TestRequired:
    def test_staff_must_enrol_and_others_are_left_alone(self, client, user, staff, settings):
        settings.BERTH_REQUIRE_2FA = "staff"
        sign_in(client, "sam", "sam-password-1")
        assert sent_to_second_factor(client.get("/"))
        response = client.get(f"{VERIFY}?next=/")
        assert response.status_code == 302 and response["Location"].startswith(ENROL)
        assert "requires a second factor" in client.get(ENROL).content.decode()
        client.logout()
        sign_in(client)
        assert client.get("/").status_code == 200

    def test_all_means_everyone(self, client, user, settings):
        settings.BERTH_REQUIRE_2FA = "all"
        sign_in(client)
        assert sent_to_second_factor(client.get("/"))
        client.get(ENROL)
        device = TOTPDevice.objects.get(user=user)
        assert give(client, code(device), path=ENROL).status_code == 200  # the recovery codes
        assert client.get("/").status_code == 200

    def test_an_operator_can_require_it_of_one_user(self, client, user, other_user):
        SecondFactorRequirement.objects.create(user=user)
        sign_in(client)
        assert sent_to_second_factor(client.get("/"))
        client.logout()
        sign_in(client, "bob", "bob-password-1")
        assert client.get("/").status_code == 200

    def test_an_operator_requires_it_in_the_admin(self, admin_client, user):
        response = admin_client.post("/admin/projects/secondfactorrequirement/add/", {"user": user.pk})
        assert response.status_code == 302 and SecondFactorRequirement.objects.filter(user=user).exists()

    def test_the_admin_never_shows_a_key_or_a_recovery_code(self, admin_client, user):
        device, codes = enrol(user)
        for path in (f"/admin/otp_totp/totpdevice/{device.pk}/change/", "/admin/otp_static/staticdevice/",
                     f"/admin/otp_static/staticdevice/{user.staticdevice_set.get().pk}/change/"):  # fmt: skip
            page = admin_client.get(path).content.decode()
            assert device.key not in page and not any(c in page for c in codes)
        assert admin_client.get(f"/admin/otp_totp/totpdevice/{device.pk}/config/").status_code == 403


# --- every way in, refused while a code is owed --------------------------------------------


class TestEveryWayIn:
    @pytest.mark.parametrize("method, path", [
        ("get", "/"), ("get", "/projects/new"), ("post", "/projects/new"), ("get", "/tokens"), ("post", "/tokens"),
        ("get", "/drift"), ("get", "/nodes"), ("get", "/projects/0123456789ab"), ("get", "/accounts/password_change/"),
        ("get", ACCOUNT), ("post", "/accounts/2fa/recovery-codes"), ("post", "/accounts/2fa/remove"),
        ("get", "/admin/"), ("get", "/admin/login/"), ("get", "/admin/projects/project/"), ("get", "/admin/auth/user/"),
        ("get", "/metrics"),
    ])  # fmt: skip
    def test_it_is_sent_to_the_code_page(self, client, staff, settings, method, path):
        settings.BERTH_REQUIRE_2FA = "staff"
        sign_in(client, "sam", "sam-password-1")
        assert sent_to_second_factor(getattr(client, method)(path))

    def test_every_url_of_the_authorisation_matrix_waits_for_the_code(self, client, world, settings):
        # Every session cell of tests/unit/test_access.py, as staff (who may see them all):
        # each is refused before its view runs, so one world serves them all.
        settings.BERTH_REQUIRE_2FA = "all"
        let_through = []
        for key, cells in MATRIX.items():
            for cell in cells:
                if cell.api or key in OPEN_WHILE_OWED:
                    continue
                response = cell.request(client, world, "staff")
                if cell.htmx:
                    sent = response.status_code == 200 and response.get("HX-Redirect", "").startswith(f"{VERIFY}?next=")
                else:
                    sent = sent_to_second_factor(response)
                if not sent:
                    let_through.append(f"{cell.method} {cell.path(world)}: {response.status_code}")
        assert let_through == []

    def test_every_api_read_answers_a_token_as_before_beside_an_owed_session(self, client, world, settings):
        settings.BERTH_REQUIRE_2FA = "all"
        client.force_login(world.a)
        for key, cells in MATRIX.items():
            for cell in cells:
                if cell.api and cell.method == "GET":
                    assert cell.request(client, world, "a").status_code == cell.expect["a"], f"GET {cell.path(world)}"

    def test_an_htmx_request_sends_the_whole_page(self, client, user):
        enrol(user)
        sign_in(client)
        response = client.get("/", headers={"HX-Request": "true"})
        assert response.status_code == 200 and response["HX-Redirect"].startswith(f"{VERIFY}?next=")

    def test_the_admin_site_refuses_an_unverified_session_by_itself(self, client, staff, settings):
        # Without the middleware in front, the admin's own permission check still says no.
        settings.MIDDLEWARE = [m for m in settings.MIDDLEWARE if m != "projects.mfa.SecondFactorMiddleware"]
        settings.BERTH_REQUIRE_2FA = "staff"
        sign_in(client, "sam", "sam-password-1")
        for path in ("/admin/", "/admin/projects/project/"):
            response = client.get(path)
            assert response.status_code == 302 and response["Location"].startswith("/admin/login/")

    def test_the_admin_opens_once_the_code_is_given(self, client, staff, settings):
        settings.BERTH_REQUIRE_2FA = "staff"
        device, _ = enrol(staff)
        sign_in(client, "sam", "sam-password-1")
        give(client, code(device))
        assert client.get("/admin/").status_code == 200

    def test_api_tokens_are_unchanged(self, client, user, staff, settings):
        settings.BERTH_REQUIRE_2FA = "all"
        assert client.get("/v1/projects", **bearer(user)).status_code == 200
        assert client.get("/metrics", **bearer(staff)).status_code == 200
        # Even beside a session that owes its code: the token is what /v1 reads.
        sign_in(client)
        assert client.get("/v1/projects", **bearer(user)).status_code == 200
        assert client.get("/v1/projects").status_code == 401  # the session alone never was a way into /v1


# --- the account's page --------------------------------------------------------------------


class TestAccount:
    @pytest.fixture
    def verified(self, client, user):
        device, codes = enrol(user)
        sign_in(client)
        assert give(client, code(device)).status_code == 302
        return device, codes

    def test_it_offers_to_set_up_when_off(self, client, user):
        client.force_login(user)
        page = client.get(ACCOUNT).content.decode()
        assert "Set up two-factor sign-in" in page and ENROL in page

    def test_new_recovery_codes_need_a_code_and_void_the_old_ones(self, client, user, verified):
        device, old = verified
        response = client.post("/accounts/2fa/recovery-codes", {"code": "not-a-code"})
        assert response.status_code == 422
        response = client.post("/accounts/2fa/recovery-codes", {"code": old[0]})
        assert response.status_code == 200
        new = list(StaticToken.objects.filter(device__user=user).values_list("token", flat=True))
        assert len(new) == 10 and not set(new) & set(old) and all(c in response.content.decode() for c in new)

    def test_removing_needs_a_code(self, client, user, verified):
        device, _ = verified
        wrong = "000000" if code(device, ahead=1) != "000000" else "111111"
        assert client.post("/accounts/2fa/remove", {"code": wrong}).status_code == 422
        assert TOTPDevice.objects.filter(user=user).exists()
        response = client.post("/accounts/2fa/remove", {"code": code(device, ahead=1)})
        assert response.status_code == 302 and response["Location"] == ACCOUNT
        assert not TOTPDevice.objects.filter(user=user).exists() and not StaticToken.objects.exists()
        client.logout()
        sign_in(client)
        assert client.get("/").status_code == 200  # the password alone again

    def test_removing_when_required_sends_to_a_new_enrolment(self, client, user, verified, settings):
        settings.BERTH_REQUIRE_2FA = "all"
        _, codes = verified
        response = client.post("/accounts/2fa/remove", {"code": codes[0]})
        assert response.status_code == 302 and response["Location"] == ENROL
        assert sent_to_second_factor(client.get("/"))
