"""Authentication with sign-in rate limiting, for every sign-in form (the dashboard's and the admin's).

It wraps Django's ModelBackend: everything that calls `authenticate()` goes
through it, so there is no form or view to forget.
"""

import ipaddress
from typing import Any

from django.conf import settings
from django.contrib.auth.backends import ModelBackend
from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.http import HttpRequest

from projects.services.accounts.login_limits import login_failure_record, login_failures_clear, login_lock_reason


def _trusted(address: str) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in settings.BERTH_TRUSTED_PROXIES)


def client_address(request: HttpRequest | None) -> str:
    """The address sign-in limits count against.

    REMOTE_ADDR, unless it is one of BERTH_TRUSTED_PROXIES: then the proxy's
    header (BERTH_PROXY_HEADER) names the client. Read from the right, skipping
    trusted proxies: the left part of X-Forwarded-For is whatever the client
    wrote. Without trusted proxies the header is ignored, so a client cannot
    pick a fresh address per attempt.
    """
    remote = (request.META.get("REMOTE_ADDR") if request is not None else None) or "-"
    if request is None or not settings.BERTH_TRUSTED_PROXIES or not _trusted(remote):
        return remote
    header = request.headers.get(settings.BERTH_PROXY_HEADER, "")
    for hop in reversed([h.strip() for h in header.split(",") if h.strip()]):
        if not _trusted(hop):
            try:
                return str(ipaddress.ip_address(hop))
            except ValueError:
                return remote  # a malformed header: count against the proxy, never a made-up name
    return remote


class RateLimitedModelBackend(ModelBackend):
    def authenticate(self, request: HttpRequest | None, username: str | None = None, password: str | None = None, **kwargs: Any) -> User | None:
        if username is None:
            username = kwargs.get(self._username_field(), "")
        address = client_address(request)
        if reason := login_lock_reason(username=username or "", address=address):
            # Refused without checking the password, so a locked pair learns
            # nothing about it. A ValidationError reaches the sign-in form
            # (Django's and the admin's) as its message, so a person who finally
            # remembers the password is told why it is refused.
            minutes = max(1, round(settings.BERTH_LOGIN_LOCKOUT_SECONDS / 60))
            raise ValidationError(f"{reason} Try again in up to {minutes} minutes.", code="locked")
        user = super().authenticate(request, username=username, password=password, **kwargs)
        if user is None:
            login_failure_record(username=username or "", address=address)
        else:
            login_failures_clear(username=username, address=address)
        return user

    def _username_field(self) -> str:
        from django.contrib.auth import get_user_model

        return get_user_model().USERNAME_FIELD
