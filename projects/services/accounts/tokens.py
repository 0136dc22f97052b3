"""API tokens: shown once at creation, stored only as a hash; optionally expiring and read-only.

A user's tokens are revoked when their password changes (`RevokeTokensOnPasswordChange`,
wired as a password validator: Django calls its `password_changed` after every
`set_password` that is saved, whichever page, command or admin form did it).
"""

import re
import secrets
from datetime import datetime, timedelta

from django.contrib.auth.models import User
from django.utils import timezone

from projects.models import ApiToken, token_hash

from projects.services.errors import InvalidInput

PREFIX = "berth_"
# Only reads: a read-only token may use these methods, and nothing else.
READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
EXPIRY_MAX_DAYS = 3650
_DURATION = re.compile(r"([1-9][0-9]{0,5})([hdw])")
_UNIT = {"h": "hours", "d": "days", "w": "weeks"}


def token_lifetime_parse(text: str) -> timedelta:
    """`30d`, `12h`, `2w` into a timedelta; InvalidInput("expires", …) for anything else."""
    match = _DURATION.fullmatch(text.strip().lower())
    if match is None:
        raise InvalidInput("expires", f"must be a number of hours, days or weeks like 12h, 30d or 2w, got {text!r}")
    lifetime = timedelta(**{_UNIT[match.group(2)]: int(match.group(1))})
    if lifetime > timedelta(days=EXPIRY_MAX_DAYS):
        raise InvalidInput("expires", f"must be at most {EXPIRY_MAX_DAYS} days")
    return lifetime


def api_token_create(*, user: User, name: str = "", lifetime: timedelta | None = None, read_only: bool = False) -> tuple[ApiToken, str]:
    """Create a token for `user`; returns it with the raw value, which is never stored. `lifetime` None: it never expires."""
    raw = PREFIX + secrets.token_urlsafe(32)
    expires_at: datetime | None = timezone.now() + lifetime if lifetime is not None else None
    token = ApiToken.objects.create(
        user=user, name=name.strip() or "token", prefix=raw[: len(PREFIX) + 4], key_hash=token_hash(raw),
        expires_at=expires_at, read_only=read_only,
    )  # fmt: skip
    return token, raw


def api_token_user(raw: str) -> User | None:
    """The active user a valid, unexpired token belongs to; None for anything else (read-only tokens included: reads only)."""
    token = ApiToken.objects.select_related("user").filter(key_hash=token_hash(raw.strip())).first() if raw.strip() else None
    if token is None or not token.user.is_active or token.is_expired(timezone.now()):
        return None
    return token.user


def api_token_revoke(*, user: User, token_id: int) -> bool:
    """Delete one of `user`'s tokens; False when there is no such token of theirs."""
    deleted, _ = ApiToken.objects.filter(user=user, pk=token_id).delete()
    return bool(deleted)


def api_tokens_revoke_all(*, user: User) -> int:
    """Delete every token of `user` (their password changed: whoever had it may have made tokens)."""
    if user.pk is None:
        return 0
    deleted, _ = ApiToken.objects.filter(user=user).delete()
    return deleted


class RevokeTokensOnPasswordChange:
    """Not a rule for passwords: Django's hook for "this user's password just changed" (settings.AUTH_PASSWORD_VALIDATORS)."""

    def validate(self, password: str, user: User | None = None) -> None:
        return None

    def password_changed(self, password: str, user: User | None = None) -> None:
        if user is not None:
            api_tokens_revoke_all(user=user)

    def get_help_text(self) -> str:
        return "Changing your password revokes your API tokens."
