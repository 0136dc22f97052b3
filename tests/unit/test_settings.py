"""controlplane/settings.py: every BERTH_* variable parsed or refused with its name, and production settings that pass Django's deploy checks."""

import json
import os
import re
import secrets
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from django.core.exceptions import ImproperlyConfigured

from controlplane.settings import database_from_url, env_bool, env_int, env_list, env_pairs, env_port_range, env_warm_pool
from tests.settings_env import berth_settings

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def environ(tmp_path):
    """An environment with no BERTH_* setting, whose generated files go to the test's directory."""
    return {"BERTH_DATA_DIR": str(tmp_path), "SECRET_KEY": "test"}


@pytest.mark.parametrize(
    "variable, value",
    [
        ("BERTH_DB_PORTS", "lots"),
        ("BERTH_DB_PORTS", "7000-6000"),
        ("BERTH_API_PORTS", "6500-6600"),  # overlaps the db range
        ("BERTH_POSTGRES_IMAGES", "postgres:17"),
        ("BERTH_DEFAULT_POSTGRES_VERSION", "16"),
        ("BERTH_DEFAULT_API", "graphql"),
        ("BERTH_DELETE_RETENTION_DAYS", "a week"),
        ("BERTH_DELETE_RETENTION_DAYS", "-1"),
        ("BERTH_PULL_IMAGES", "maybe"),
        ("BERTH_GRAPHIQL", "please"),
        ("BERTH_IMAGES", "always"),
        ("BERTH_WORKERS", "0"),
        ("BERTH_EXTRA_LABELS", "no-equals-sign"),
        ("BERTH_NETWORK_POOL", "10.240.0.0"),  # a single address holds no subnet
        ("BERTH_NETWORK_POOL", "10.240.0.1/16"),  # host bits set: a typo, not a pool
        ("BERTH_NETWORK_POOL", "10.240.0.0/16:30"),  # too small for a stack
        ("BERTH_NETWORK_POOL", "10.240.0.0/16:8"),  # larger than the pool
        ("BERTH_NETWORK_POOL", "fd00::/64"),
        ("BERTH_REQUIRE_2FA", "yes"),  # staff, all or off: a guess at a boolean must not leave it off silently
    ],
)
def test_a_bad_value_stops_start_up_naming_the_variable(environ, variable, value):
    with pytest.raises(ImproperlyConfigured, match=variable):
        berth_settings({**environ, variable: value})


def test_defaults_are_the_documented_ones(environ, tmp_path):
    s = berth_settings(environ)
    assert s["BERTH_NETWORK_POOL"] == ("10.240.0.0/16", 28)
    assert berth_settings({**environ, "BERTH_NETWORK_POOL": "10.77.0.0/20:29"})["BERTH_NETWORK_POOL"] == ("10.77.0.0/20", 29)
    assert s["BERTH_POSTGRES_IMAGES"] == {"15": "postgres:15", "17": "postgres:17"}
    assert s["BERTH_DEFAULT_POSTGRES_VERSION"] == "17" and s["BERTH_DEFAULT_API"] == "postgrest"
    assert s["BERTH_POSTGRAPHILE_IMAGE"] == "graphile/postgraphile:4"
    assert s["BERTH_POSTGREST_IMAGE"].startswith("postgrest/postgrest:v")  # pinned, never :latest
    assert (s["BERTH_PUBLISH_HOST"], s["BERTH_PUBLIC_HOST"]) == ("127.0.0.1", "localhost")
    assert (s["BERTH_DB_PORTS"], s["BERTH_API_PORTS"]) == ((6200, 6999), (7200, 7999))
    assert s["BERTH_DELETE_RETENTION_DAYS"] == 7
    assert (s["BERTH_WORKERS"], s["BERTH_PULL_IMAGES"], s["BERTH_HTTPS"]) == (4, True, False)
    assert s["BERTH_IMAGES"] == "auto"
    assert s["BERTH_GRAPHIQL"] is False and berth_settings({**environ, "BERTH_GRAPHIQL": "1"})["BERTH_GRAPHIQL"] is True
    assert s["BERTH_BACKUP_DIR"] == tmp_path / "backups"
    assert (s["BERTH_EXTRA_LABELS"], s["BERTH_SECRETS_KEYS"]) == ({}, [])
    assert s["BERTH_REQUIRE_2FA"] == "off"  # an upgrade locks nobody out


def test_each_variable_reaches_its_setting(environ):
    s = berth_settings(
        {**environ, "BERTH_DB_PORTS": "20000-20009", "BERTH_SECRETS_KEY": "new, old", "BERTH_EXTRA_LABELS": "a=1, b=2"}
    )
    assert s["BERTH_DB_PORTS"] == (20000, 20009)
    assert s["BERTH_SECRETS_KEYS"] == ["new", "old"]  # the setting is plural, the variable is not
    assert s["BERTH_EXTRA_LABELS"] == {"a": "1", "b": "2"}
    assert berth_settings({**environ, "BERTH_REQUIRE_2FA": "staff"})["BERTH_REQUIRE_2FA"] == "staff"


def test_overlapping_port_ranges_are_refused_naming_both():
    with pytest.raises(ImproperlyConfigured, match=r"^BERTH_DB_PORTS \(6200, 6999\) and BERTH_API_PORTS \(6500, 6600\) overlap$"):
        env_port_range("BERTH_API_PORTS", "7200-7999", apart_from=("BERTH_DB_PORTS", (6200, 6999)), environ={"BERTH_API_PORTS": "6500-6600"})


def test_an_empty_value_means_the_default():
    empty = {"X": ""}
    assert env_int("X", 3, environ=empty) == 3 and env_bool("X", True, environ=empty) is True
    assert env_port_range("X", "2000-2001", environ=empty) == (2000, 2001)
    assert env_pairs("X", environ=empty) == {} and env_list("X", environ=empty) == []


def test_a_number_below_its_minimum_says_the_minimum():
    with pytest.raises(ImproperlyConfigured, match="^BERTH_WORKERS must be at least 1, got 0$"):
        env_int("BERTH_WORKERS", 4, 1, environ={"BERTH_WORKERS": "0"})


def warm_pool(value: str | None) -> object:
    environ = {} if value is None else {"BERTH_WARM_POOL": value}
    return env_warm_pool("BERTH_WARM_POOL", "2", versions={"15": "", "17": ""}, apis=("postgrest", "postgraphile"), environ=environ)


def test_the_warm_pool_is_two_of_the_defaults_unless_set_and_none_when_set_empty(environ):
    assert warm_pool(None) == ((None, None, 2),)
    assert warm_pool("") == warm_pool("  ") == warm_pool("0") == ()
    assert warm_pool("5") == ((None, None, 5),)
    assert warm_pool("17/postgrest=2, 15/postgraphile=1,15/postgrest=0") == (("17", "postgrest", 2), ("15", "postgraphile", 1))
    assert berth_settings(environ)["BERTH_WARM_POOL"] == ((None, None, 2),)
    assert berth_settings({**environ, "BERTH_WARM_POOL": ""})["BERTH_WARM_POOL"] == ()


@pytest.mark.parametrize(
    "value, named",
    [
        ("17/postgrest", "'17/postgrest' must look like <postgres version>/<api>=<count>"),
        ("17=2", "'17=2' must look like"),
        ("17/postgrest=two", "'17/postgrest=two' must look like"),
        ("17/postgrest=-1", "'17/postgrest=-1' must look like"),
        ("17/postgrest=2,,15/postgrest=1", "'' must look like"),
        ("16/postgrest=2", "'16/postgrest=2' names PostgreSQL '16', not one of BERTH_POSTGRES_IMAGES"),
        ("17/graphql=2", "'17/graphql=2' names the api 'graphql'"),
        ("17/postgrest=1,17/postgrest=2", "17/postgrest is given twice"),
    ],
)
def test_a_bad_warm_pool_names_the_bad_part(value, named):
    with pytest.raises(ImproperlyConfigured, match=f"^BERTH_WARM_POOL: {re.escape(named)}"):
        warm_pool(value)


def test_database_url_switches_to_postgresql_with_decoded_credentials():
    db = database_from_url("postgres://berth:p%40ss@db.internal:5433/berth")
    assert db["ENGINE"] == "django.db.backends.postgresql"
    assert (db["USER"], db["PASSWORD"], db["HOST"], db["PORT"], db["NAME"]) == ("berth", "p@ss", "db.internal", "5433", "berth")


def test_sqlite_runs_in_wal_mode_with_immediate_transactions():
    db = database_from_url("sqlite:////tmp/berth.sqlite3")
    assert db["OPTIONS"]["transaction_mode"] == "IMMEDIATE" and "journal_mode=WAL" in db["OPTIONS"]["init_command"]


def test_an_unknown_database_scheme_is_refused():
    with pytest.raises(ImproperlyConfigured, match="DATABASE_URL"):
        database_from_url("mysql://x@y/z")


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
