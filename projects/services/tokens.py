"""API tokens: shown once at creation, stored only as a hash."""

import secrets

from projects.models import ApiToken, token_hash

PREFIX = "berth_"


def api_token_create(*, user, name: str = "") -> tuple[ApiToken, str]:
    """Create a token for `user`; returns it with the raw value, which is never stored."""
    raw = PREFIX + secrets.token_urlsafe(32)
    token = ApiToken.objects.create(
        user=user, name=name.strip() or "token", prefix=raw[: len(PREFIX) + 4], key_hash=token_hash(raw)
    )
    return token, raw


def api_token_revoke(*, user, token_id: int) -> bool:
    """Delete one of `user`'s tokens; False when there is no such token of theirs."""
    deleted, _ = ApiToken.objects.filter(user=user, pk=token_id).delete()
    return bool(deleted)
