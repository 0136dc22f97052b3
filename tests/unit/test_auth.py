"""Signing in (auth.py, services/accounts/login_limits.py): failures are rate limited per username and address, and no password reset is offered."""

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from projects.services.accounts.login_limits import login_failure_record, login_is_locked

ROOT = Path(__file__).resolve().parents[2]


# --- sign-in rate limiting ------------------------------------------------------------------


@pytest.fixture
def limits(settings):
    settings.BERTH_LOGIN_ATTEMPTS = 3
    settings.BERTH_LOGIN_LOCKOUT_SECONDS = 600
    return settings


def sign_in(client, password: str, *, path: str = "/accounts/login/", address: str = "203.0.113.7", username: str = "alice"):
    return client.post(path, {"username": username, "password": password}, REMOTE_ADDR=address)


def test_after_the_allowed_failures_even_the_right_password_is_refused_with_a_reason(client, user, limits):
    for _ in range(3):
        assert sign_in(client, "wrong").status_code == 200
    response = sign_in(client, "alice-password-1")
    assert response.status_code == 200  # the form again, not a session
    assert "Too many failed sign-ins" in response.content.decode()
    assert "_auth_user_id" not in client.session


def test_failures_below_the_limit_are_forgiven_by_a_success(client, user, limits):
    for _ in range(2):
        sign_in(client, "wrong")
    assert sign_in(client, "alice-password-1").status_code == 302
    client.logout()
    for _ in range(2):
        sign_in(client, "wrong")
    assert sign_in(client, "alice-password-1").status_code == 302


def test_the_lockout_is_per_username_and_address(client, user, other_user, limits):
    for _ in range(3):
        sign_in(client, "wrong")
    assert sign_in(client, "alice-password-1", address="198.51.100.9").status_code == 302  # the owner, elsewhere
    client.logout()
    assert sign_in(client, "bob-password-1", username="bob").status_code == 302  # another user, same address


def test_the_admin_sign_in_is_limited_by_the_same_count(client, staff, limits):
    for _ in range(3):
        sign_in(client, "wrong", path="/admin/login/", username="sam")
    response = sign_in(client, "sam-password-1", path="/admin/login/", username="sam")
    assert response.status_code == 200 and "Too many failed sign-ins" in response.content.decode()


def test_the_lockout_ends_after_its_window(client, user, limits, monkeypatch):
    for _ in range(3):
        sign_in(client, "wrong")
    later = time.time() + limits.BERTH_LOGIN_LOCKOUT_SECONDS + 1
    monkeypatch.setattr("django.core.cache.backends.filebased.time.time", lambda: later)
    monkeypatch.setattr("django.core.cache.backends.locmem.time.time", lambda: later)
    assert sign_in(client, "alice-password-1").status_code == 302


def test_failures_are_counted_in_files_every_web_process_shares(settings, tmp_path):
    # gunicorn's workers are separate processes: a count kept in one process's
    # memory would give an attacker a fresh budget per worker.
    location = tmp_path / "cache" / "login_limits"  # where a process with BERTH_DATA_DIR=tmp_path keeps it
    settings.CACHES = {**settings.CACHES, "login_limits": {"BACKEND": "django.core.cache.backends.filebased.FileBasedCache", "LOCATION": str(location)}}
    settings.BERTH_LOGIN_ATTEMPTS = 2
    login_failure_record(username="alice", address="203.0.113.7")
    script = (
        "import django; django.setup(); from projects.services.accounts.login_limits import login_failure_record, login_is_locked; "
        "login_failure_record(username='alice', address='203.0.113.7'); print(login_is_locked(username='alice', address='203.0.113.7'))"
    )
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "controlplane.settings", "BERTH_DATA_DIR": str(tmp_path), "BERTH_LOGIN_ATTEMPTS": "2"}
    result = subprocess.run([sys.executable, "-c", script], env=env, cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.stdout.strip() == "True", result.stderr  # its one failure plus ours
    assert login_is_locked(username="alice", address="203.0.113.7")


def test_the_production_cache_for_failures_is_file_based_under_the_data_dir():
    from controlplane import settings as production  # the module, not the per-test override

    config = production.CACHES["login_limits"]
    assert config["BACKEND"] == "django.core.cache.backends.filebased.FileBasedCache"
    assert Path(config["LOCATION"]).is_relative_to(production.DATA_DIR)


def test_password_reset_is_not_offered_since_berth_sends_no_mail(client):
    assert client.get("/accounts/password_reset/").status_code == 404
