"""The dashboard's second factor: who owes one, TOTP enrolment, recovery codes, checking a code.

django-otp keeps the devices: one TOTPDevice (the authenticator app) and one
StaticDevice (the recovery codes, each deleted as it is used) per user. This
module is the only one that makes, reads or deletes them, and the only one
that imports segno (the QR code).

Who must give a second factor (second_factor_required): whoever has enrolled,
always; whoever an operator named (a SecondFactorRequirement row, made in the
admin); and staff or everyone as BERTH_REQUIRE_2FA says. API tokens never
reach here: they are the non-interactive way in.

The secrets stay as django-otp stores them (the TOTP key as hex, the recovery
codes as text), not encrypted with projects/crypto.py: doing so would mean a
device model of our own re-implementing django-otp's verification (drift,
replay and throttling), which is the part worth taking from a kept library.
They sit beside the password hashes and sessions, in a database that is
already as secret as they are (README, "Two-factor sign-in").
"""

import logging
import re
from math import ceil
from base64 import b32encode

import segno
from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser, AnonymousUser, User
from django.db import transaction
from django.db.models import Exists, OuterRef
from django.utils import timezone
from django_otp import verify_token
from django_otp.models import Device
from django_otp.plugins.otp_static.models import StaticDevice, StaticToken
from django_otp.plugins.otp_totp.models import TOTPDevice

from projects.models import SecondFactorRequirement
from projects.services.errors import Forbidden, InvalidInput
from projects.services.accounts.login_limits import login_failure_record, login_failures_clear, login_lock_reason

logger = logging.getLogger(__name__)

RECOVERY_CODES = 10
# django-otp's device names, as the admin lists them.
TOTP_NAME = "Authenticator app"
RECOVERY_NAME = "Recovery codes"
_TOTP_CODE = re.compile(r"\d{6}")


def _required_by_policy(user: User) -> bool:
    # Superusers count as staff here: they can do everything staff can and more.
    policy = settings.BERTH_REQUIRE_2FA
    return policy == "all" or (policy == "staff" and (user.is_staff or user.is_superuser))


def second_factor_required(*, user: AbstractBaseUser | AnonymousUser) -> bool:
    """True when this signed-in user must give a second factor before the session counts."""
    if not isinstance(user, User) or not user.is_authenticated:
        return False
    if _required_by_policy(user):
        return True
    # One query for both other reasons: the check runs on every request of a
    # session that has not given its second factor.
    enrolled = TOTPDevice.objects.filter(user=OuterRef("pk"), confirmed=True)
    named = SecondFactorRequirement.objects.filter(user=OuterRef("pk"))
    row = User.objects.filter(pk=user.pk).values_list(Exists(enrolled), Exists(named)).first()
    return row is not None and any(row)


def second_factor_mandatory(*, user: User) -> bool:
    """True when this user would have to enrol again if they removed their authenticator (BERTH_REQUIRE_2FA, or an operator's row)."""
    return _required_by_policy(user) or SecondFactorRequirement.objects.filter(user=user).exists()


def totp_device_for(*, user: User) -> TOTPDevice | None:
    """The user's confirmed authenticator, or None when they have not enrolled."""
    return TOTPDevice.objects.filter(user=user, confirmed=True).first()


def totp_enrolment_start(*, user: User) -> TOTPDevice:
    """A new unconfirmed authenticator with a fresh key, replacing any earlier unfinished one.

    Its key is shown on the enrolment page only while it is unconfirmed; it
    counts for nothing until a code from it is given (totp_enrolment_confirm).
    """
    with transaction.atomic():
        TOTPDevice.objects.filter(user=user, confirmed=False).delete()
        return TOTPDevice.objects.create(user=user, name=TOTP_NAME, confirmed=False)


def totp_enrolment_pending(*, user: User) -> TOTPDevice | None:
    return TOTPDevice.objects.filter(user=user, confirmed=False).order_by("-id").first()


def totp_enrolment_confirm(*, user: User, device: TOTPDevice, code: str, address: str) -> list[str]:
    """Confirm the authenticator with a code from it; returns the new recovery codes (shown once).

    A wrong code is refused and counted like a failed sign-in.
    """
    if device.user_id != user.pk or device.confirmed:
        raise InvalidInput("code", "this set-up has ended; start again")
    _unlocked(user=user, address=address)
    _not_throttled(device)
    if not _totp_shaped(code) or verify_token(user, device.persistent_id, _totp_shaped(code)) is None:
        _failed(user=user, address=address)
        raise InvalidInput("code", "that code is not the one the app shows now")
    login_failures_clear(username=_limit_name(user), address=address)
    with transaction.atomic():
        # One authenticator per user: a confirmed earlier one (an operator's
        # reset leaves none) would be a second way in nobody sees.
        TOTPDevice.objects.filter(user=user).exclude(pk=device.pk).delete()
        TOTPDevice.objects.filter(pk=device.pk).update(confirmed=True)
        codes = recovery_codes_replace(user=user)
    device.confirmed = True
    logger.info("second factor enrolled for user %s", user.pk)
    return codes


def recovery_codes_replace(*, user: User) -> list[str]:
    """New recovery codes, the old ones void; returned once, to be shown once."""
    with transaction.atomic():
        StaticDevice.objects.filter(user=user).delete()
        device = StaticDevice.objects.create(user=user, name=RECOVERY_NAME, confirmed=True)
        codes = [StaticToken.random_token() for _ in range(RECOVERY_CODES)]
        StaticToken.objects.bulk_create(StaticToken(device=device, token=code) for code in codes)
    return codes


def recovery_codes_left(*, user: User) -> int:
    return int(StaticToken.objects.filter(device__user=user, device__confirmed=True).count())


def second_factor_check(*, user: User, code: str, address: str) -> Device:
    """The device that accepts this code: the authenticator's current code, or an unused recovery code (then used up).

    Refused (Forbidden) without a look at the code while this user's sign-ins
    from this address are locked; a wrong code counts as a failed sign-in
    (services/accounts/login_limits.py), on its own count per user and address, so a
    correct password cannot clear the count of wrong codes.
    """
    _unlocked(user=user, address=address)
    device: Device | None = None
    if totp_code := _totp_shaped(code):
        if totp := totp_device_for(user=user):
            _not_throttled(totp)
            device = verify_token(user, totp.persistent_id, totp_code)
    elif recovery := _recovery_shaped(code):
        if static := StaticDevice.objects.filter(user=user, confirmed=True).first():
            _not_throttled(static)
            device = verify_token(user, static.persistent_id, recovery)
    if device is None:
        _failed(user=user, address=address)
        raise InvalidInput("code", "that code is not right, or a recovery code that was already used")
    login_failures_clear(username=_limit_name(user), address=address)
    return device


def second_factor_remove(*, user: User) -> None:
    """Remove the user's authenticator and recovery codes (the edge first checks a code: second_factor_check)."""
    with transaction.atomic():
        TOTPDevice.objects.filter(user=user).delete()
        StaticDevice.objects.filter(user=user).delete()
    logger.info("second factor removed for user %s", user.pk)


def totp_qr_svg(*, device: TOTPDevice) -> str:
    """The authenticator's otpauth:// link as an inline SVG QR code: no image from elsewhere (the CSP allows none)."""
    code = segno.make_qr(device.config_url, error="m")
    return str(code.svg_inline(scale=4, dark="#000", light="#fff", title="QR code for your authenticator app"))


def totp_secret_text(*, device: TOTPDevice) -> str:
    """The key as an authenticator app takes it typed in: base32, in groups of four."""
    secret = b32encode(device.bin_key).decode().rstrip("=")
    return " ".join(secret[i : i + 4] for i in range(0, len(secret), 4))


def _totp_shaped(code: str) -> str:
    digits = re.sub(r"[\s-]", "", code)
    return digits if _TOTP_CODE.fullmatch(digits) else ""


def _recovery_shaped(code: str) -> str:
    # As StaticToken.random_token() makes them: base32, lower case; people
    # copy them with spaces, dashes or capitals.
    text = re.sub(r"[\s-]", "", code).lower()
    return text if 0 < len(text) <= 16 and text.isalnum() else ""


def _limit_name(user: User) -> str:
    # Wrong codes have their own per-(user, address) count, apart from the
    # password's: a correct password clears the password's count only. The
    # per-address and global counts are shared with passwords.
    return f"{user.get_username()} (second factor)"


def _unlocked(*, user: User, address: str) -> None:
    if reason := login_lock_reason(username=_limit_name(user), address=address):
        minutes = max(1, round(settings.BERTH_LOGIN_LOCKOUT_SECONDS / 60))
        raise Forbidden(f"{reason} Try again in up to {minutes} minutes.")


def _not_throttled(device: Device) -> None:
    """Refuse while django-otp's own throttle holds the device (1, 2, 4, … s after successive wrong codes).

    django-otp would refuse even the right code then, silently; said here, a
    person who retypes at once learns to wait rather than doubt the app.
    """
    allowed, data = device.verify_is_allowed()
    if not allowed:
        until = (data or {}).get("locked_until")
        seconds = max(1, ceil((until - timezone.now()).total_seconds())) if until else 1
        raise Forbidden(f"too many wrong codes in a row: wait {seconds} s before the next try.")


def _failed(*, user: User, address: str) -> None:
    login_failure_record(username=_limit_name(user), address=address)
