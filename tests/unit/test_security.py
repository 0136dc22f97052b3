"""Security settings, sign-in rate limiting and secret rotation."""

import base64
import json
import os
import re
import secrets
import subprocess
import sys
import time
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from django.core.management import call_command
from django.core.management.base import CommandError

from projects.models import Project
from projects.services import lifecycle
from projects.services.login_limits import login_failure_record, login_is_locked

ROOT = Path(__file__).resolve().parents[2]


def production_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """The environment of a production Berth behind a TLS proxy, for a subprocess."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BERTH_", "DJANGO_"))}
    return {
        **env,
        "DEBUG": "0",
        "SECRET_KEY": secrets.token_urlsafe(50),
        "ALLOWED_HOSTS": "berth.example.com",
        "BERTH_SECRETS_KEY": Fernet.generate_key().decode(),
        "BERTH_DATA_DIR": str(tmp_path),
        "BERTH_HTTPS": "1",
        "DJANGO_SETTINGS_MODULE": "controlplane.settings",
        **extra,
    }


def manage(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "manage.py"), *args], env=env, cwd=ROOT, capture_output=True, text=True, timeout=120)


# --- production settings ---------------------------------------------------------------


def test_check_deploy_is_clean_under_production_settings(tmp_path):
    result = manage("check", "--deploy", "--fail-level", "WARNING", env=production_env(tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout


def test_check_deploy_over_plain_http_names_exactly_the_https_warnings(tmp_path):
    # Without BERTH_HTTPS everything else must still be clean: only what plain HTTP implies is left.
    result = manage("check", "--deploy", env=production_env(tmp_path, BERTH_HTTPS="0"))
    assert set(re.findall(r"\(security\.(W\d+)\)", result.stderr + result.stdout)) == {"W004", "W008", "W012", "W016"}


def test_production_settings_secure_the_cookies_and_trust_the_proxy(tmp_path):
    script = (
        "import django, json; django.setup(); from django.conf import settings as s; print(json.dumps({k: getattr(s, k) for k in "
        "['SESSION_COOKIE_SECURE', 'CSRF_COOKIE_SECURE', 'SECURE_SSL_REDIRECT', 'SECURE_HSTS_SECONDS', "
        "'SECURE_HSTS_INCLUDE_SUBDOMAINS', 'SECURE_PROXY_SSL_HEADER', 'SESSION_COOKIE_HTTPONLY', 'DEBUG']}))"
    )
    result = subprocess.run([sys.executable, "-c", script], env=production_env(tmp_path), cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert json.loads(result.stdout) == {
        "SESSION_COOKIE_SECURE": True,
        "CSRF_COOKIE_SECURE": True,
        "SECURE_SSL_REDIRECT": True,
        "SECURE_HSTS_SECONDS": 31_536_000,
        "SECURE_HSTS_INCLUDE_SUBDOMAINS": True,
        "SECURE_PROXY_SSL_HEADER": ["HTTP_X_FORWARDED_PROTO", "https"],
        "SESSION_COOKIE_HTTPONLY": True,
        "DEBUG": False,
    }


def test_every_page_carries_the_security_headers_and_a_strict_content_security_policy(client, user):
    response = client.get("/accounts/login/")
    policy = response["Content-Security-Policy"]
    directives = dict(d.strip().split(" ", 1) for d in policy.split(";"))
    assert directives["default-src"] == "'self'"
    assert re.fullmatch(r"'self' 'nonce-[A-Za-z0-9+/=_-]+'", directives["script-src"])
    assert "unsafe-inline" not in policy and "unsafe-eval" not in policy
    assert directives["frame-ancestors"] == "'none'" and directives["object-src"] == "'none'"
    assert response["X-Frame-Options"] == "DENY"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Referrer-Policy"] == "same-origin"
    assert response["Cross-Origin-Opener-Policy"] == "same-origin"


def test_the_session_cookie_is_http_only_and_same_site(client, user):
    response = client.post("/accounts/login/", {"username": "alice", "password": "alice-password-1"})
    assert response.status_code == 302
    cookie = response.cookies["sessionid"]
    assert cookie["httponly"] and cookie["samesite"] == "Lax"


def test_plain_http_by_default_so_up_on_loopback_keeps_working(settings):
    # `up` serves http://127.0.0.1:8000: Secure cookies would never come back.
    assert settings.BERTH_HTTPS is False and settings.SESSION_COOKIE_SECURE is False and settings.SECURE_SSL_REDIRECT is False


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
        "import django; django.setup(); from projects.services.login_limits import login_failure_record, login_is_locked; "
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


# --- secrets at rest -----------------------------------------------------------------------------


def test_rotate_secrets_re_encrypts_every_row_with_the_new_key_and_keeps_the_values(user, settings, capsys):
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    settings.BERTH_SECRETS_KEYS = [old]
    projects = [Project.objects.get(pk=lifecycle.project_create(owner=user, name=f"r{n}").project_id) for n in range(3)]
    values = {p.pk: (p.db_password, p.jwt_secret) for p in projects}

    settings.BERTH_SECRETS_KEYS = [new, old]
    call_command("rotate_secrets")

    assert "3 project(s) checked, 3 re-encrypted" in capsys.readouterr().out
    settings.BERTH_SECRETS_KEYS = [new]  # the old key is gone: every row must still open
    for project in Project.objects.all():
        assert (project.db_password, project.jwt_secret) == values[project.pk]
        Fernet(new.encode()).decrypt(project.db_password_encrypted.encode())


def test_rotate_secrets_without_the_old_key_changes_nothing_and_says_what_to_add(user, settings):
    settings.BERTH_SECRETS_KEYS = [Fernet.generate_key().decode()]
    project = Project.objects.get(pk=lifecycle.project_create(owner=user, name="r").project_id)
    before = project.db_password_encrypted
    settings.BERTH_SECRETS_KEYS = [Fernet.generate_key().decode()]
    with pytest.raises(CommandError, match="cannot be decrypted with any key"):
        call_command("rotate_secrets")
    project.refresh_from_db()
    assert project.db_password_encrypted == before


def test_the_derived_key_printed_is_the_one_an_install_without_a_key_uses(user, settings, capsys):
    settings.BERTH_SECRETS_KEYS = []
    project = Project.objects.get(pk=lifecycle.project_create(owner=user, name="r").project_id)
    call_command("rotate_secrets", "--print-derived-key")
    derived = capsys.readouterr().out.strip()
    settings.BERTH_SECRETS_KEYS = [Fernet.generate_key().decode(), derived]
    call_command("rotate_secrets")
    settings.BERTH_SECRETS_KEYS = settings.BERTH_SECRETS_KEYS[:1]
    project.refresh_from_db()
    assert len(project.db_password) >= 24


def test_rotate_secrets_help_prints_the_steps_it_promises():
    from projects.management.commands.rotate_secrets import Command

    text = Command().create_parser("manage.py", "rotate_secrets").format_help()
    assert "(the steps are below)" in text
    # Numbered and on lines of their own, as in RELIABILITY.md, not folded into one paragraph.
    for step in ("\n1. `manage.py rotate_secrets --generate-key`", "\n2. Put it first", "\n3. `manage.py rotate_secrets`", "\n4. Drop OLD"):
        assert step in text


def test_generate_key_prints_a_usable_fernet_key(capsys):
    call_command("rotate_secrets", "--generate-key")
    key = capsys.readouterr().out.strip().encode()
    assert len(base64.urlsafe_b64decode(key)) == 32  # Fernet's 256-bit key, url-safe base64
    assert Fernet(key).decrypt(Fernet(key).encrypt(b"a secret")) == b"a secret"


def test_secrets_are_never_stored_in_clear_and_tokens_only_as_hashes(user, client):
    from projects.models import ApiToken
    from tests.conftest import bearer

    project = Project.objects.get(pk=lifecycle.project_create(owner=user, name="r").project_id)
    row = Project.objects.values().get(pk=project.pk)
    flat = json.dumps(row, default=str)
    assert project.db_password not in flat and project.jwt_secret not in flat
    raw = bearer(user)["HTTP_AUTHORIZATION"].removeprefix("Bearer ")
    stored = json.dumps(list(ApiToken.objects.values()), default=str)
    assert raw not in stored and raw[len("berth_") + 4 :] not in stored


def test_password_reset_is_not_offered_since_berth_sends_no_mail(client):
    assert client.get("/accounts/password_reset/").status_code == 404
