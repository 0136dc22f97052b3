"""Secrets at rest: Fernet tokens, keys from BERTH_SECRETS_KEY (newest first).

Without BERTH_SECRETS_KEY one key is derived from SECRET_KEY, so a fresh
install works; production sets its own key. Several keys, comma-separated,
decrypt with any and encrypt with the first: that is how a key is rotated
(`manage.py rotate_secrets` re-encrypts every row with the first key).
"""

import base64
import hashlib
from functools import cache

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import models


def derived_key(secret_key: str) -> str:
    """The Fernet key an install without BERTH_SECRETS_KEY uses, derived from SECRET_KEY."""
    return base64.urlsafe_b64encode(hashlib.sha256(f"berth-secrets:{secret_key}".encode()).digest()).decode()


def first_key() -> str:
    """The key new tokens are encrypted with: the first of BERTH_SECRETS_KEY, else the derived one."""
    return (settings.BERTH_SECRETS_KEYS or [derived_key(settings.SECRET_KEY)])[0]


@cache
def _fernet(keys: tuple[str, ...], secret_key: str) -> MultiFernet:
    if not keys:
        return MultiFernet([Fernet(derived_key(secret_key).encode())])
    try:
        return MultiFernet([Fernet(k.encode()) for k in keys])
    except ValueError:
        raise ImproperlyConfigured(
            "BERTH_SECRETS_KEY must be Fernet keys (32 url-safe base64 bytes), comma-separated"
        ) from None


def fernet() -> MultiFernet:
    return _fernet(tuple(settings.BERTH_SECRETS_KEYS), settings.SECRET_KEY)


def secret_encrypt(plaintext: str) -> str:
    return fernet().encrypt(plaintext.encode()).decode()


def secret_decrypt(token: str) -> str:
    try:
        return fernet().decrypt(token.encode()).decode()
    except InvalidToken:
        raise ImproperlyConfigured(
            "a stored secret cannot be decrypted: BERTH_SECRETS_KEY (or SECRET_KEY) changed without keeping the old key"
        ) from None


def secret_rotate(token: str) -> str:
    return fernet().rotate(token.encode()).decode()


def token_hash(token: str) -> str:
    """An API token as it is kept: its SHA-256, never the token."""
    # Tokens are 256 random bits, so a fast hash is enough: there is nothing to brute-force.
    return hashlib.sha256(token.encode()).hexdigest()


def encrypted(column: str) -> property:
    """The plaintext of an encrypted column, as a property: reading decrypts, assigning encrypts."""

    def get(instance: models.Model) -> str:
        return secret_decrypt(getattr(instance, column))

    def set_(instance: models.Model, value: str) -> None:
        setattr(instance, column, secret_encrypt(value))

    return property(get, set_)
