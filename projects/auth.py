"""Authentication with sign-in rate limiting, for every sign-in form (the dashboard's and the admin's).

It wraps Django's ModelBackend: everything that calls `authenticate()` goes
through it, so there is no form or view to forget.
"""

from django.conf import settings
from django.contrib.auth.backends import ModelBackend
from django.core.exceptions import ValidationError
from django.http import HttpRequest

from .services.login_limits import login_failure_record, login_failures_clear, login_is_locked


def client_address(request: HttpRequest | None) -> str:
    # REMOTE_ADDR only: X-Forwarded-For is whatever the client wants it to be.
    # Behind a proxy every client shares the proxy's address, and the limit is
    # then per username, which still stops guessing one account's password.
    return (request.META.get("REMOTE_ADDR") if request is not None else None) or "-"


class RateLimitedModelBackend(ModelBackend):
    def authenticate(self, request: HttpRequest | None, username: str | None = None, password: str | None = None, **kwargs):
        if username is None:
            username = kwargs.get(self._username_field(), "")
        address = client_address(request)
        if login_is_locked(username=username or "", address=address):
            # Refused without checking the password, so a locked pair learns
            # nothing about it. A ValidationError reaches the sign-in form
            # (Django's and the admin's) as its message, so a person who finally
            # remembers the password is told why it is refused.
            minutes = max(1, round(settings.BERTH_LOGIN_LOCKOUT_SECONDS / 60))
            raise ValidationError(
                f"Too many failed sign-ins for this username from your address. Try again in up to {minutes} minutes.",
                code="locked",
            )
        user = super().authenticate(request, username=username, password=password, **kwargs)
        if user is None:
            login_failure_record(username=username or "", address=address)
        else:
            login_failures_clear(username=username, address=address)
        return user

    def _username_field(self) -> str:
        from django.contrib.auth import get_user_model

        return get_user_model().USERNAME_FIELD
