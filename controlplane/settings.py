"""Berth's settings: one file, driven by the environment.

Every variable is read once here, at start-up. A bad value stops Berth with
ImproperlyConfigured naming the variable, so a typo never turns into a strange
failure half-way through provisioning a project.
"""

import ipaddress
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

import django_stubs_ext
from django.core.exceptions import ImproperlyConfigured
from django.utils.csp import CSP

from controlplane.files import private_dir, private_file, secret_file_read_or_create

# Makes Django's generic classes subscriptable at run time (admin.ModelAdmin[Project]),
# as the type checker reads them. django-tasks-db happens to do it too; Berth does not rely on that.
django_stubs_ext.monkeypatch()

BASE_DIR = Path(__file__).resolve().parent.parent
ENV = os.environ


# The helpers below read one variable each (from `environ`, the process
# environment unless a test passes its own). An empty value means the default.


def env_text(name: str, default: str, *, environ: Mapping[str, str] = ENV) -> str:
    return environ.get(name, "").strip() or default


def env_bool(name: str, default: bool, *, environ: Mapping[str, str] = ENV) -> bool:
    raw = environ.get(name)
    if raw is None or raw == "":
        return default
    value = raw.strip().lower()
    if value in {"1", "true", "yes", "on"}:
        return True
    if value in {"0", "false", "no", "off"}:
        return False
    raise ImproperlyConfigured(f"{name} must be a boolean (1/0, true/false), got {raw!r}")


def env_int(name: str, default: int, minimum: int | None = None, *, environ: Mapping[str, str] = ENV) -> int:
    raw = environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be a whole number, got {raw!r}") from None
    if minimum is not None and value < minimum:
        raise ImproperlyConfigured(f"{name} must be at least {minimum}, got {value}")
    return value


def env_float(name: str, default: float, minimum: float = 0.0, *, environ: Mapping[str, str] = ENV) -> float:
    raw = environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be a number, got {raw!r}") from None
    if not minimum <= value < float("inf"):
        raise ImproperlyConfigured(f"{name} must be a finite number of at least {minimum}, got {raw!r}")
    return value


def env_choice(name: str, default: str, choices: Sequence[str], *, environ: Mapping[str, str] = ENV) -> str:
    value = env_text(name, default, environ=environ)
    if value not in choices:
        raise ImproperlyConfigured(f"{name} must be {' or '.join(choices)}, got {value!r}")
    return value


def env_key(name: str, default: str, mapping: Mapping[str, object], *, of: str, environ: Mapping[str, str] = ENV) -> str:
    """One of the keys of another setting (`of` names it), e.g. a default version among the offered ones."""
    value = env_text(name, default, environ=environ)
    if value not in mapping:
        raise ImproperlyConfigured(f"{name}={value} is not one of {of} ({', '.join(mapping)})")
    return value


def env_port_range(
    name: str, default: str, *, apart_from: tuple[str, tuple[int, int]] | None = None, environ: Mapping[str, str] = ENV
) -> tuple[int, int]:
    """Parse `6200-6999`; `apart_from=(other name, other range)` refuses a range that overlaps it."""
    raw = env_text(name, default, environ=environ)
    try:
        low_text, high_text = raw.split("-")
        low, high = int(low_text), int(high_text)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must look like 6200-6999, got {raw!r}") from None
    if not (1024 <= low <= high <= 65535):
        raise ImproperlyConfigured(f"{name} must be a range within 1024-65535 with low <= high, got {raw!r}")
    if apart_from is not None:
        other_name, (other_low, other_high) = apart_from
        if other_low <= high and low <= other_high:
            raise ImproperlyConfigured(f"{other_name} {(other_low, other_high)} and {name} {(low, high)} overlap")
    return low, high


def env_network_pool(name: str, default: str, *, environ: Mapping[str, str] = ENV) -> tuple[str, int]:
    """Parse `10.240.0.0/16` or `10.240.0.0/16:28` (a pool, then the size of each project's subnet; /28 by default)."""
    raw = env_text(name, default, environ=environ)
    pool_text, _, size_text = raw.partition(":")
    try:
        pool = ipaddress.IPv4Network(pool_text.strip())
        size = int(size_text) if size_text.strip() else 28
    except ValueError:
        raise ImproperlyConfigured(f"{name} must look like 10.240.0.0/16 or 10.240.0.0/16:28, got {raw!r}") from None
    # /29 is the smallest that holds the gateway, a db, an api and one spare.
    if not pool.prefixlen <= size <= 29:
        raise ImproperlyConfigured(f"{name}: the subnet size must be from /{pool.prefixlen} to /29, got /{size} in {raw!r}")
    return str(pool), size


def env_images(name: str, default: str, *, environ: Mapping[str, str] = ENV) -> dict[str, str]:
    """Parse `15=postgres:15,17=postgres:17` into {"15": "postgres:15", ...}."""
    raw = env_text(name, default, environ=environ)
    images: dict[str, str] = {}
    for item in raw.split(","):
        version, sep, image = item.strip().partition("=")
        if not sep or not version.strip().isdigit() or not image.strip():
            raise ImproperlyConfigured(f"{name} must look like 15=postgres:15,17=postgres:17, got {raw!r}")
        images[version.strip()] = image.strip()
    return images


def env_pairs(name: str, *, environ: Mapping[str, str] = ENV) -> dict[str, str]:
    """Parse `key=value,key=value`; an item without `=` is a mistake, not something to skip."""
    raw = environ.get(name, "").strip()
    pairs: dict[str, str] = {}
    for item in filter(None, (i.strip() for i in raw.split(","))):
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ImproperlyConfigured(f"{name} must look like key=value,key=value, got {raw!r}")
        pairs[key.strip()] = value.strip()
    return pairs


# One warm pool: the stacks of one PostgreSQL version and API flavour kept ready;
# version and api None mean the default ones, as the offer has them (a bare count).
WarmPool = tuple[str | None, str | None, int]


def env_warm_pool(
    name: str, default: str, *, versions: Mapping[str, object], apis: Sequence[str], environ: Mapping[str, str] = ENV
) -> tuple[WarmPool, ...]:
    """Parse `17/postgrest=2,15/postgraphile=1`, or a bare `2` (that many of the default version and flavour).

    Unset means `default`; set but empty means no pool at all. A bad part is named.
    """
    raw = environ.get(name)
    raw = default if raw is None else raw.strip()
    if not raw:
        return ()
    if raw.isdigit():
        return ((None, None, int(raw)),) if int(raw) else ()
    pools: dict[tuple[str, str], int] = {}
    for part in (p.strip() for p in raw.split(",")):
        key, sep, count_text = part.partition("=")
        version, slash, api = key.strip().partition("/")
        version, api, count_text = version.strip(), api.strip(), count_text.strip()
        if not sep or not slash or not count_text.isdigit():
            raise ImproperlyConfigured(f"{name}: {part!r} must look like <postgres version>/<api>=<count>, e.g. 17/postgrest=2 (in {raw!r})")
        if version not in versions:
            raise ImproperlyConfigured(f"{name}: {part!r} names PostgreSQL {version!r}, not one of BERTH_POSTGRES_IMAGES ({', '.join(versions)})")
        if api not in apis:
            raise ImproperlyConfigured(f"{name}: {part!r} names the api {api!r}, not one of {', '.join(apis)}")
        if (version, api) in pools:
            raise ImproperlyConfigured(f"{name}: {version}/{api} is given twice (in {raw!r})")
        pools[version, api] = int(count_text)
    return tuple((version, api, count) for (version, api), count in pools.items() if count)


def env_list(name: str, *, environ: Mapping[str, str] = ENV) -> list[str]:
    """Parse `a,b,c`, dropping empty items."""
    return [item.strip() for item in environ.get(name, "").split(",") if item.strip()]


def env_networks(name: str, *, environ: Mapping[str, str] = ENV) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    """Parse `127.0.0.1,10.0.0.0/8` into networks; a bad item stops Berth naming it."""
    networks = []
    for item in env_list(name, environ=environ):
        try:
            networks.append(ipaddress.ip_network(item, strict=False))
        except ValueError:
            raise ImproperlyConfigured(f"{name} must be addresses or networks like 127.0.0.1,10.0.0.0/8, got {item!r}") from None
    return networks


def database_from_url(url: str) -> dict[str, Any]:
    """Turn DATABASE_URL (postgres://… or sqlite:///path) into a DATABASES entry."""
    parts = urlsplit(url)
    options = dict(parse_qsl(parts.query))
    if parts.scheme in {"postgres", "postgresql"}:
        return {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": unquote(parts.path.lstrip("/")),
            "USER": unquote(parts.username or ""),
            "PASSWORD": unquote(parts.password or ""),
            "HOST": parts.hostname or "",
            "PORT": str(parts.port or ""),
            "CONN_MAX_AGE": 60,
            "CONN_HEALTH_CHECKS": True,
            "OPTIONS": options,
        }
    if parts.scheme == "sqlite":
        return sqlite_database(parts.path if parts.path != "/:memory:" else ":memory:")
    raise ImproperlyConfigured(f"DATABASE_URL must start with postgres:// or sqlite:///, got scheme {parts.scheme!r}")


def sqlite_database(path: str | Path) -> dict[str, Any]:
    # A web process and several workers write at once: WAL, a busy timeout and
    # IMMEDIATE transactions keep SQLite from answering "database is locked".
    return {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": str(path),
        "OPTIONS": {
            "transaction_mode": "IMMEDIATE",
            "timeout": 20,
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        },
        # A file, not memory: integration and browser tests share the test database
        # with worker and server processes.
        "TEST": {"NAME": str(Path(path).parent / "test.sqlite3") if str(path) != ":memory:" else ":memory:"},
    }


# Where Berth keeps its own files when no database server is configured.
# 0700, its files 0600 (controlplane/files.py): it holds the secret key and the sessions.
DATA_DIR = private_dir(Path(env_text("BERTH_DATA_DIR", str(BASE_DIR / "var"))))

DEBUG = env_bool("DEBUG", False)


def _secret_key() -> str:
    """SECRET_KEY from the environment, or one generated once and kept in DATA_DIR."""
    if key := ENV.get("SECRET_KEY", "").strip():
        return key
    return secret_file_read_or_create(DATA_DIR / "secret_key")


SECRET_KEY = _secret_key()
ALLOWED_HOSTS = [h.strip() for h in ENV.get("ALLOWED_HOSTS", "localhost,127.0.0.1,[::1]").split(",") if h.strip()]
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS")

INSTALLED_APPS = [
    # The admin, whose site also asks for the second factor (projects/mfa.py).
    "projects.apps.BerthAdminConfig",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django_htmx",
    "django_tasks_db",
    # The second factor's TOTP devices and recovery codes (README, "Two-factor sign-in").
    "django_otp",
    "django_otp.plugins.otp_totp",
    "django_otp.plugins.otp_static",
    "projects",
]

MIDDLEWARE = [
    # Outermost: HEAD answers carry GET's headers and no body (controlplane/head.py).
    "controlplane.head.head_without_body",
    "django.middleware.security.SecurityMiddleware",
    # Content-Security-Policy on every response (SECURE_CSP below).
    "django.middleware.csp.ContentSecurityPolicyMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    # request.user.is_verified(): a second factor was given in this session.
    "django_otp.middleware.OTPMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    # A session that owes its second factor reaches nothing but that page (projects/mfa.py).
    "projects.mfa.SecondFactorMiddleware",
]

ROOT_URLCONF = "controlplane.urls"
WSGI_APPLICATION = "controlplane.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "django.template.context_processors.csp",  # {{ csp_nonce }} for an inline script or style
                "projects.context_processors.engine",  # the "engine unreachable" banner
            ],
        },
    },
]

if database_url := ENV.get("DATABASE_URL", "").strip():
    DATABASES = {"default": database_from_url(database_url)}
else:
    # Created 0600 before SQLite opens it; its -wal and -shm files take the same mode.
    DATABASES = {"default": sqlite_database(private_file(DATA_DIR / "berth.sqlite3"))}

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# Operations run in the worker (django-tasks-db's db_worker). Unit tests switch
# to the immediate backend in their conftest.
TASKS = {"default": {"BACKEND": "django_tasks_db.DatabaseBackend"}}

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    # Not a rule: revokes the user's API tokens whenever their password changes.
    {"NAME": "projects.services.accounts.tokens.RevokeTokensOnPasswordChange"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "project-list"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = False
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = DATA_DIR / "static"
STATIC_ROOT.mkdir(exist_ok=True)  # collectstatic fills it in production; whitenoise wants it to exist
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"
        if not DEBUG
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}
# Berth is served by gunicorn without a separate collectstatic step in dev:
# whitenoise finds files through the finders when autorefresh is on.
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = DEBUG

BERTH_LOG_LEVEL = env_text("BERTH_LOG_LEVEL", "INFO")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    # No token from a query string in any line (controlplane/access_log.py): on the
    # handler for whatever reaches it, on the loggers that name request URLs.
    "filters": {"redact_query": {"()": "controlplane.access_log.RedactQueryFilter"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain", "filters": ["redact_query"]}},
    "root": {"handlers": ["console"], "level": BERTH_LOG_LEVEL},
    "loggers": {
        "docker": {"level": "WARNING"},
        "urllib3": {"level": "WARNING"},
        "django.request": {"filters": ["redact_query"]},
        # runserver's request lines, query strings and all.
        "django.server": {"handlers": ["console"], "level": "INFO", "propagate": False, "filters": ["redact_query"]},
    },
}

# --- Berth ---------------------------------------------------------------
# One assignment per setting, in this style: `BERTH_X = env_int("BERTH_X", 5, 1)`.
# The helpers above raise ImproperlyConfigured naming the variable; the order
# here is the order in which bad values are reported.

BERTH_POSTGRES_IMAGES = env_images("BERTH_POSTGRES_IMAGES", "15=postgres:15,17=postgres:17")
BERTH_DEFAULT_POSTGRES_VERSION = env_key("BERTH_DEFAULT_POSTGRES_VERSION", "17", BERTH_POSTGRES_IMAGES, of="BERTH_POSTGRES_IMAGES")
BERTH_POSTGREST_IMAGE = env_text("BERTH_POSTGREST_IMAGE", "postgrest/postgrest:v12.2.8")
BERTH_POSTGRAPHILE_IMAGE = env_text("BERTH_POSTGRAPHILE_IMAGE", "graphile/postgraphile:4")
BERTH_DEFAULT_API = env_choice("BERTH_DEFAULT_API", "postgrest", ("postgrest", "postgraphile"))
BERTH_PUBLISH_HOST = env_text("BERTH_PUBLISH_HOST", "127.0.0.1")
BERTH_PUBLIC_HOST = env_text("BERTH_PUBLIC_HOST", "localhost")
BERTH_DB_PORTS = env_port_range("BERTH_DB_PORTS", "6200-6999")
BERTH_API_PORTS = env_port_range("BERTH_API_PORTS", "7200-7999", apart_from=("BERTH_DB_PORTS", BERTH_DB_PORTS))
# Each project's network gets a subnet of this pool, allocated by Berth, clear
# of Docker's default pools (172.17-31/16, 192.168/16), which hold ~31 networks.
BERTH_NETWORK_POOL = env_network_pool("BERTH_NETWORK_POOL", "10.240.0.0/16")
BERTH_DELETE_RETENTION_DAYS = env_int("BERTH_DELETE_RETENTION_DAYS", 7, 0)
# How long an operation waits for the db to answer a query and the api HTTP.
BERTH_READY_TIMEOUT = env_int("BERTH_READY_TIMEOUT", 60, 1)
# Memory limits per container, in the engine's notation.
BERTH_DB_MEMORY = env_text("BERTH_DB_MEMORY", "512m")
BERTH_API_MEMORY = env_text("BERTH_API_MEMORY", "256m")
# Confinement of every container (RELIABILITY.md, "Security model"): CPUs
# (0 = no limit), processes, and the json-file log's rotation.
BERTH_DB_CPUS = env_float("BERTH_DB_CPUS", 1.0, 0.0)
BERTH_API_CPUS = env_float("BERTH_API_CPUS", 1.0, 0.0)
BERTH_DB_PIDS_LIMIT = env_int("BERTH_DB_PIDS_LIMIT", 256, 32)
BERTH_API_PIDS_LIMIT = env_int("BERTH_API_PIDS_LIMIT", 128, 16)
BERTH_LOG_MAX_SIZE = env_text("BERTH_LOG_MAX_SIZE", "10m")
BERTH_LOG_MAX_FILE = env_int("BERTH_LOG_MAX_FILE", 3, 1)
# Databases accept TLS always (certificates from Berth's CA); with this on,
# only TLS from outside their container (pg_hba `hostssl`).
BERTH_DB_REQUIRE_TLS = env_bool("BERTH_DB_REQUIRE_TLS", False)
# PostGraphile's GraphiQL page on each api's /graphiql: off, since anyone who
# reaches the port gets it; on, it loads nothing from elsewhere (stack/postgraphile.py, GRAPHIQL_PLUGIN).
BERTH_GRAPHIQL = env_bool("BERTH_GRAPHIQL", False)
# Which engine runs the projects: one Docker Engine (DOCKER_HOST), or a Docker
# Swarm (DOCKER_HOST at a manager) whose nodes' own engines are BERTH_SWARM_NODES.
BERTH_RUNTIME = env_choice("BERTH_RUNTIME", "docker", ("docker", "swarm"))
BERTH_SWARM_NODES = env_pairs("BERTH_SWARM_NODES")
# Pull a missing image from its registry before failing with ImageUnavailable.
BERTH_PULL_IMAGES = env_bool("BERTH_PULL_IMAGES", True)
# What `up` does about an image it cannot pull: auto builds Berth's own
# equivalent from images/ (berth/postgres:17, …); pull only warns.
BERTH_IMAGES = env_choice("BERTH_IMAGES", "auto", ("auto", "pull"))
# Extra labels on every object Berth creates (tests use `berth.test=<run>`
# to find and remove what they made).
BERTH_EXTRA_LABELS = env_pairs("BERTH_EXTRA_LABELS")
# Postgres server settings merged over the small-footprint defaults in
# projects/stack/spec.py, e.g. `shared_buffers=128MB,max_connections=100`.
BERTH_POSTGRES_SETTINGS = env_pairs("BERTH_POSTGRES_SETTINGS")
# Secrets at rest: comma-separated Fernet keys, newest first (README,
# "Secrets"). Without one, a key is derived from SECRET_KEY.
BERTH_SECRETS_KEYS = env_list("BERTH_SECRETS_KEY")
BERTH_WORKERS = env_int("BERTH_WORKERS", 4, 1)
# Stacks kept created, started and probed for creates to claim (README, "Warm pool"):
# `17/postgrest=2,…`, or a count of the default version and flavour; empty: none.
BERTH_WARM_POOL = env_warm_pool("BERTH_WARM_POOL", "2", versions=BERTH_POSTGRES_IMAGES, apis=("postgrest", "postgraphile"))
# Workers wake when an operation is queued and `?wait` when its operation
# settles (projects/wakeup.py); without a wake-up they look this often anyway.
BERTH_POLL_SECONDS = env_float("BERTH_POLL_SECONDS", 1.0, 0.01)
# The worker touches a running operation's heartbeat this often; one
# silent for BERTH_STALE_OPERATION_SECONDS belonged to a worker that died.
BERTH_HEARTBEAT_SECONDS = env_int("BERTH_HEARTBEAT_SECONDS", 5, 1)
BERTH_STALE_OPERATION_SECONDS = env_int("BERTH_STALE_OPERATION_SECONDS", 60, 2)
# Backups (README, "Backups"): dump files live in <dir>/<project id>/;
# a purge's final backup is kept this many days; a dump or restore
# command that sends nothing for BERTH_BACKUP_IDLE_TIMEOUT s is abandoned.
BERTH_BACKUP_DIR = Path(env_text("BERTH_BACKUP_DIR", str(DATA_DIR / "backups")))
BERTH_PURGE_BACKUP_DAYS = env_int("BERTH_PURGE_BACKUP_DAYS", 30, 1)
BERTH_BACKUP_IDLE_TIMEOUT = env_int("BERTH_BACKUP_IDLE_TIMEOUT", 600, 10)
# Berth is reached over HTTPS through a reverse proxy that terminates TLS
# and sets X-Forwarded-Proto (RELIABILITY.md, "Access"). Off by default:
# `up` serves plain HTTP on 127.0.0.1.
BERTH_HTTPS = env_bool("BERTH_HTTPS", False)
BERTH_HSTS_SECONDS = env_int("BERTH_HSTS_SECONDS", 31_536_000, 0)
BERTH_HSTS_PRELOAD = env_bool("BERTH_HSTS_PRELOAD", False)
# Sign-in: this many failures for one username from one address lock
# that pair out for BERTH_LOGIN_LOCKOUT_SECONDS (projects/services/accounts/login_limits.py).
BERTH_LOGIN_ATTEMPTS = env_int("BERTH_LOGIN_ATTEMPTS", 5, 1)
BERTH_LOGIN_LOCKOUT_SECONDS = env_int("BERTH_LOGIN_LOCKOUT_SECONDS", 900, 1)
# ... and this many failures from one address (any usernames), or from
# everywhere at once, within the same window lock that address, or every
# sign-in, for the rest of the window: a spray over many usernames is stopped too.
BERTH_LOGIN_ATTEMPTS_PER_ADDRESS = env_int("BERTH_LOGIN_ATTEMPTS_PER_ADDRESS", 30, 1)
BERTH_LOGIN_ATTEMPTS_GLOBAL = env_int("BERTH_LOGIN_ATTEMPTS_GLOBAL", 300, 1)
# Proxies whose forwarded-for header names the client (addresses or networks,
# e.g. `127.0.0.1,10.0.0.0/8`); empty: REMOTE_ADDR is the client (projects/auth.py).
BERTH_TRUSTED_PROXIES = env_networks("BERTH_TRUSTED_PROXIES")
BERTH_PROXY_HEADER = env_text("BERTH_PROXY_HEADER", "X-Forwarded-For")
# Who must give a TOTP code after the password (README, "Two-factor sign-in"):
# staff, everyone, or only those who enrolled or an operator named. Off by default,
# so an upgrade locks nobody out.
BERTH_REQUIRE_2FA = env_choice("BERTH_REQUIRE_2FA", "off", ("off", "staff", "all"))
# Per-user quotas (README, "Quotas"); an operator sets a user's own in the admin.
BERTH_QUOTA_PROJECTS = env_int("BERTH_QUOTA_PROJECTS", 50, 0)
BERTH_QUOTA_BACKUPS = env_int("BERTH_QUOTA_BACKUPS", 20, 0)
BERTH_QUOTA_BACKUP_BYTES = env_int("BERTH_QUOTA_BACKUP_BYTES", 10 * 1024**3, 0)
# A dump starts only when the backup directory has the database's size plus
# this many bytes free; pg_dump gives up on a table lock after
# BERTH_BACKUP_LOCK_WAIT_SECONDS instead of queueing behind a long lock.
BERTH_BACKUP_FREE_MARGIN = env_int("BERTH_BACKUP_FREE_MARGIN", 256 * 1024**2, 0)
BERTH_BACKUP_LOCK_WAIT_SECONDS = env_int("BERTH_BACKUP_LOCK_WAIT_SECONDS", 60, 1)
# Requests that may hold a web thread in ?wait=N at once, per web process;
# the next one answers 202 at once (projects/services/waiting.py).
BERTH_MAX_WAITING = env_int("BERTH_MAX_WAITING", 4, 0)
# The sync watcher samples every running project's metrics this often (0: never),
# reading at most BERTH_METRICS_CONCURRENCY projects at once (projects/services/fleet/metrics.py).
BERTH_METRICS_SECONDS = env_int("BERTH_METRICS_SECONDS", 30, 0)
BERTH_METRICS_CONCURRENCY = env_int("BERTH_METRICS_CONCURRENCY", 8, 1)

# --- Security (RELIABILITY.md, "Access") ------------------------------------------

# Cookies only over HTTPS, HSTS, and plain HTTP redirected, once Berth is served
# over HTTPS. The proxy header is trusted then because `up` binds loopback: only
# the proxy in front reaches the server.
SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = SECURE_SSL_REDIRECT = BERTH_HTTPS
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https") if BERTH_HTTPS else None
SECURE_HSTS_SECONDS = BERTH_HSTS_SECONDS if BERTH_HTTPS else 0
SECURE_HSTS_INCLUDE_SUBDOMAINS = True
SECURE_HSTS_PRELOAD = BERTH_HSTS_PRELOAD
# Preloading commits a whole domain for months: the domain owner's decision
# (BERTH_HSTS_PRELOAD=1), never an application default; check --deploy says so once.
SILENCED_SYSTEM_CHECKS = [] if SECURE_HSTS_PRELOAD else ["security.W021"]
# The session cookie is never readable by scripts; the CSRF one is sent as a
# header by HTMX from the page, not read from the cookie.
SESSION_COOKIE_HTTPONLY = CSRF_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = CSRF_COOKIE_SAMESITE = "Lax"
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"

# Only Berth's own files run or style a page: htmx and berth.js are static files,
# and anything inline needs the per-response {{ csp_nonce }}.
SECURE_CSP = {
    "default-src": [CSP.SELF],
    "script-src": [CSP.SELF, CSP.NONCE],
    "style-src": [CSP.SELF, CSP.NONCE],
    "img-src": [CSP.SELF, "data:"],
    "connect-src": [CSP.SELF],
    "font-src": [CSP.SELF],
    "object-src": [CSP.NONE],
    "base-uri": [CSP.NONE],
    "form-action": [CSP.SELF],
    "frame-ancestors": [CSP.NONE],
}

# The authenticator app names the account "Berth:<username>"; the admin never
# shows a TOTP key or a recovery code.
OTP_TOTP_ISSUER = "Berth"
OTP_ADMIN_HIDE_SENSITIVE_DATA = True

# Sign-in failures are counted in a cache every web process shares (files in
# DATA_DIR: gunicorn's workers are separate processes), so a lockout holds
# whichever worker answers. The default cache stays per process.
AUTHENTICATION_BACKENDS = ["projects.auth.RateLimitedModelBackend"]
CACHES = {
    "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
    "login_limits": {"BACKEND": "django.core.cache.backends.filebased.FileBasedCache", "LOCATION": str(DATA_DIR / "cache" / "login_limits")},
}
