"""Sign-in throttles (services/accounts/login_limits.py) beyond the (username, address) pair, and whose address counts (auth.py)."""

import ipaddress

import pytest
from django.test import RequestFactory

from projects.auth import client_address


@pytest.fixture
def limits(settings):
    settings.BERTH_LOGIN_ATTEMPTS = 3
    settings.BERTH_LOGIN_ATTEMPTS_PER_ADDRESS = 5
    settings.BERTH_LOGIN_ATTEMPTS_GLOBAL = 8
    settings.BERTH_LOGIN_LOCKOUT_SECONDS = 600
    return settings


def sign_in(client, username: str, password: str, address: str, **headers):
    return client.post("/accounts/login/", {"username": username, "password": password}, REMOTE_ADDR=address, **headers)


def test_one_address_spraying_many_usernames_is_locked_out(client, user, limits):
    for n in range(5):
        sign_in(client, f"guess{n}", "wrong", "203.0.113.7")
    response = sign_in(client, "alice", "alice-password-1", "203.0.113.7")
    assert response.status_code == 200 and "Too many failed sign-ins from your address" in response.content.decode()
    assert "_auth_user_id" not in client.session
    assert sign_in(client, "alice", "alice-password-1", "198.51.100.9").status_code == 302  # elsewhere: fine


def test_a_spray_from_many_addresses_locks_every_sign_in_for_the_window(client, user, limits):
    for n in range(8):
        sign_in(client, f"guess{n}", "wrong", f"203.0.113.{n + 1}")
    response = sign_in(client, "alice", "alice-password-1", "198.51.100.9")
    assert response.status_code == 200 and "Too many failed sign-ins on this Berth" in response.content.decode()


def test_a_success_does_not_reset_the_address_count(client, user, limits):
    for n in range(4):
        sign_in(client, f"guess{n}", "wrong", "203.0.113.7")
    assert sign_in(client, "alice", "alice-password-1", "203.0.113.7").status_code == 302
    client.logout()
    sign_in(client, "guess9", "wrong", "203.0.113.7")
    assert sign_in(client, "alice", "alice-password-1", "203.0.113.7").status_code == 200  # locked now


def request(remote: str, forwarded: str | None = None):
    headers = {"HTTP_X_FORWARDED_FOR": forwarded} if forwarded is not None else {}
    return RequestFactory().get("/", REMOTE_ADDR=remote, **headers)


def test_without_trusted_proxies_the_forwarded_header_is_ignored(settings):
    settings.BERTH_TRUSTED_PROXIES = []
    assert client_address(request("203.0.113.7", "1.2.3.4")) == "203.0.113.7"


def test_a_trusted_proxys_header_names_the_client_read_from_the_right(settings):
    settings.BERTH_TRUSTED_PROXIES = [ipaddress.ip_network("10.0.0.0/8")]
    # The client wrote "1.2.3.4" itself; the proxies appended what they saw.
    assert client_address(request("10.0.0.2", "1.2.3.4, 198.51.100.9, 10.0.0.1")) == "198.51.100.9"


def test_an_untrusted_peer_cannot_choose_its_address_by_header(settings):
    settings.BERTH_TRUSTED_PROXIES = [ipaddress.ip_network("10.0.0.0/8")]
    assert client_address(request("203.0.113.7", "198.51.100.9")) == "203.0.113.7"


def test_a_malformed_header_counts_against_the_proxy(settings):
    settings.BERTH_TRUSTED_PROXIES = [ipaddress.ip_network("10.0.0.0/8")]
    assert client_address(request("10.0.0.2", "not-an-address")) == "10.0.0.2"
    assert client_address(request("10.0.0.2", "")) == "10.0.0.2"


def test_behind_a_trusted_proxy_each_client_has_its_own_budget(client, user, limits):
    limits.BERTH_TRUSTED_PROXIES = [ipaddress.ip_network("127.0.0.1/32")]
    for _ in range(3):
        sign_in(client, "alice", "wrong", "127.0.0.1", HTTP_X_FORWARDED_FOR="203.0.113.7")
    locked = sign_in(client, "alice", "alice-password-1", "127.0.0.1", HTTP_X_FORWARDED_FOR="203.0.113.7")
    assert "Too many failed sign-ins" in locked.content.decode()
    assert sign_in(client, "alice", "alice-password-1", "127.0.0.1", HTTP_X_FORWARDED_FOR="198.51.100.9").status_code == 302
