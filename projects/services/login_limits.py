"""Sign-in rate limiting: failures counted per username and client address, in a cache all web processes share.

After BERTH_LOGIN_ATTEMPTS failures for one (username, address) pair, that pair
is locked out for BERTH_LOGIN_LOCKOUT_SECONDS, counted from the first failure
of the window; a success clears the count. Per pair, not per username alone, so
someone guessing from elsewhere cannot lock the owner out of their own desk;
per pair, not per address alone, so one office behind a NAT does not share a
single budget. The counter is a cache entry: it needs no table, and losing it
(a cleared cache) only forgives failures.
"""

import hashlib
import logging

from django.conf import settings
from django.core.cache import caches

logger = logging.getLogger(__name__)

CACHE = "login_limits"


def _key(username: str, address: str) -> str:
    # Hashed: usernames are arbitrary text, cache keys are not, and the cache
    # files then hold no usernames.
    digest = hashlib.sha256(f"{username.strip().lower()}\0{address}".encode()).hexdigest()
    return f"login-failures:{digest}"


def login_is_locked(*, username: str, address: str) -> bool:
    """True when this username may not sign in from this address for now."""
    return caches[CACHE].get(_key(username, address), 0) >= settings.BERTH_LOGIN_ATTEMPTS


def login_failure_record(*, username: str, address: str) -> int:
    """Count one failed sign-in; returns the failures in the current window."""
    cache = caches[CACHE]
    key = _key(username, address)
    # add() starts the window (its expiry is not pushed back by later
    # failures); incr() keeps it. Between processes the pair of calls is not
    # atomic: a burst can count a failure or two short, never lock too early.
    if cache.add(key, 1, timeout=settings.BERTH_LOGIN_LOCKOUT_SECONDS):
        failures = 1
    else:
        try:
            failures = cache.incr(key)
        except ValueError:  # expired between the two calls
            cache.add(key, 1, timeout=settings.BERTH_LOGIN_LOCKOUT_SECONDS)
            failures = 1
    if failures == settings.BERTH_LOGIN_ATTEMPTS:
        logger.warning(
            "sign-in for %r from %s locked for %d s after %d failures",
            username, address, settings.BERTH_LOGIN_LOCKOUT_SECONDS, failures,
        )  # fmt: skip
    return failures


def login_failures_clear(*, username: str, address: str) -> None:
    caches[CACHE].delete(_key(username, address))
