"""Sign-in rate limiting: failures counted in a cache all web processes share, at three levels.

- per (username, address): after BERTH_LOGIN_ATTEMPTS failures that pair is
  locked out for BERTH_LOGIN_LOCKOUT_SECONDS, counted from the first failure of
  the window; a success clears this count. Per pair, not per username alone,
  so someone guessing from elsewhere cannot lock the owner out of their own
  desk; per pair, not per address alone, so one office behind a NAT does not
  share a single budget for its own typos.
- per address: BERTH_LOGIN_ATTEMPTS_PER_ADDRESS failures from one address,
  whatever the usernames, lock that address out for the rest of the window:
  a spray of one password over many usernames is stopped too.
- global: BERTH_LOGIN_ATTEMPTS_GLOBAL failures from everywhere within a
  window lock every sign-in for the rest of it: a spray from many addresses
  cannot go on at full speed. This trades an attacker's budget for the
  availability of sign-in, so its default is high; a success does not clear
  it, nor the address count (or one valid account would reset them).

Counters are cache entries: no table, and losing them (a cleared cache) only
forgives failures.
"""

import hashlib
import logging

from django.conf import settings
from django.core.cache import caches

logger = logging.getLogger(__name__)

CACHE = "login_limits"


def _digest(*parts: str) -> str:
    # Hashed: usernames are arbitrary text, cache keys are not, and the cache
    # files then hold no usernames.
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()


def _key(username: str, address: str) -> str:
    return f"login-failures:{_digest(username.strip().lower(), address)}"


def _address_key(address: str) -> str:
    return f"login-failures-address:{_digest(address)}"


GLOBAL_KEY = "login-failures-global"


def _limits(username: str, address: str) -> list[tuple[str, int, str]]:
    return [
        (_key(username, address), settings.BERTH_LOGIN_ATTEMPTS, "Too many failed sign-ins for this username from your address."),
        (_address_key(address), settings.BERTH_LOGIN_ATTEMPTS_PER_ADDRESS, "Too many failed sign-ins from your address."),
        (GLOBAL_KEY, settings.BERTH_LOGIN_ATTEMPTS_GLOBAL, "Too many failed sign-ins on this Berth right now."),
    ]


def login_lock_reason(*, username: str, address: str) -> str:
    """Why this username may not sign in from this address for now, or "" when it may."""
    cache = caches[CACHE]
    for key, limit, reason in _limits(username, address):
        if cache.get(key, 0) >= limit:
            return reason
    return ""


def login_is_locked(*, username: str, address: str) -> bool:
    """True when this username may not sign in from this address for now."""
    return bool(login_lock_reason(username=username, address=address))


def _count(key: str) -> int:
    cache = caches[CACHE]
    # add() starts the window (its expiry is not pushed back by later
    # failures); incr() keeps it. Between processes the pair of calls is not
    # atomic: a burst can count a failure or two short, never lock too early.
    if cache.add(key, 1, timeout=settings.BERTH_LOGIN_LOCKOUT_SECONDS):
        return 1
    try:
        return cache.incr(key)
    except ValueError:  # expired between the two calls
        cache.add(key, 1, timeout=settings.BERTH_LOGIN_LOCKOUT_SECONDS)
        return 1


def login_failure_record(*, username: str, address: str) -> int:
    """Count one failed sign-in at every level; returns the failures of this (username, address) in the current window."""
    failures = 0
    for key, limit, _ in _limits(username, address):
        count = _count(key)
        if key == _key(username, address):
            failures = count
        if count == limit:
            logger.warning(
                "sign-in locked for %d s after %d failures (%s): username %r from %s",
                settings.BERTH_LOGIN_LOCKOUT_SECONDS, count, key.split(":")[0], username, address,
            )  # fmt: skip
    return failures


def login_failures_clear(*, username: str, address: str) -> None:
    caches[CACHE].delete(_key(username, address))
