import pytest
from django.contrib.auth import get_user_model

from projects.services.accounts.tokens import api_token_create


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings):
    # PBKDF2's deliberate slowness is for attackers, not for test fixtures.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True)
def _login_limits_per_test(settings, request):
    # Sign-in failures live in a file cache under DATA_DIR in production; a test
    # gets its own empty in-memory one, so no test inherits another's lockout.
    settings.CACHES = {
        **settings.CACHES,
        "login_limits": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": request.node.nodeid},
    }


@pytest.fixture(autouse=True)
def _no_warm_pool(settings):
    # The pool's default (two stacks) would make every test that syncs or
    # creates fill it: only the pool's own tests turn it on.
    settings.BERTH_WARM_POOL = ()


@pytest.fixture(autouse=True)
def _no_metrics_thread(settings):
    # sync_watch starts the metrics sampler in a thread, on a database connection
    # of its own that a test's transaction cannot see; tests sample by calling
    # services/fleet/metrics.py directly.
    settings.BERTH_METRICS_SECONDS = 0


@pytest.fixture
def user(db):
    return get_user_model().objects.create_user("alice", password="alice-password-1")


@pytest.fixture
def other_user(db):
    return get_user_model().objects.create_user("bob", password="bob-password-1")


@pytest.fixture
def staff(db):
    return get_user_model().objects.create_user("sam", password="sam-password-1", is_staff=True)


def bearer(user) -> dict[str, str]:
    _, raw = api_token_create(user=user, name="test")
    return {"HTTP_AUTHORIZATION": f"Bearer {raw}"}
