"""The dashboard's second factor (HTML): the code page after the password, enrolment, the account's page.

Sign-in stays Django's password form. A session whose user owes a second
factor (services/accounts/mfa.py second_factor_required) and has not given one in it
reaches nothing but these pages, sign-in and sign-out: SecondFactorMiddleware
sends every other request here, the admin's site refuses it too
(SecondFactorAdminSite), and /v1 never reads a session (API tokens are the
non-interactive way in, unchanged). Plain forms, no HTMX: these pages are
visited once in a while and must work without JavaScript.
"""

from collections.abc import Callable
from functools import cache
from http import HTTPStatus
from typing import Any
from urllib.parse import urlencode

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.contrib.auth.decorators import login_required
from django.contrib.auth.models import User
from django.contrib.auth.views import redirect_to_login
from django.http import HttpRequest, HttpResponse
from django.http.response import HttpResponseBase
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_http_methods, require_POST
from django_htmx.http import HttpResponseClientRedirect
from django_otp import login as otp_login
from django_otp.models import Device

from .auth import client_address
from .http import AuthedRequest
from .services.errors import ServiceError
from .services.accounts.mfa import (
    recovery_codes_left,
    recovery_codes_replace,
    second_factor_check,
    second_factor_mandatory,
    second_factor_remove,
    second_factor_required,
    totp_device_for,
    totp_enrolment_confirm,
    totp_enrolment_pending,
    totp_enrolment_start,
    totp_qr_svg,
    totp_secret_text,
)

VERIFY = "registration/second_factor_verify.html"
ENROL = "registration/second_factor_enrol.html"
CODES = "registration/second_factor_codes.html"
ACCOUNT = "registration/second_factor.html"
# The account page has two code fields, one per form: each its own id.
REGENERATE_ID = "id_regenerate_%s"
REMOVE_ID = "id_remove_%s"


class CodeForm(forms.Form):
    code = forms.CharField(
        label="Code",
        max_length=32,
        help_text="The 6 digits your authenticator app shows, or one of your recovery codes.",
        widget=forms.TextInput(attrs={"autocomplete": "one-time-code", "autocapitalize": "off", "spellcheck": "false"}),
    )


class EnrolForm(CodeForm):
    code = forms.CharField(
        label="Code from the app",
        max_length=32,
        widget=forms.TextInput(attrs={"autocomplete": "one-time-code", "inputmode": "numeric", "autofocus": True}),
    )


def second_factor_owed(request: HttpRequest) -> bool:
    """True while this session's user must give a second factor and has not, in this session."""
    user = request.user
    # otp_device is OTPMiddleware's: the device that verified this session, or None.
    return bool(user.is_authenticated and getattr(user, "otp_device", None) is None and second_factor_required(user=user))


class SecondFactorMiddleware:
    """Send a session that owes its second factor to the code page, from anywhere but the few pages it may see."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponseBase]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        if not _open_while_owed(request) and second_factor_owed(request):
            url = f"{reverse('second-factor-verify')}?{urlencode({'next': request.get_full_path()})}"
            # An HTMX poll or swap would put the page into a row: the whole page goes.
            return HttpResponseClientRedirect(url) if getattr(request, "htmx", False) else redirect(url)
        return self.get_response(request)


@cache
def _open_paths() -> frozenset[str]:
    return frozenset(reverse(name) for name in ("login", "logout", "second-factor-verify", "second-factor-enrol"))


def _open_while_owed(request: HttpRequest) -> bool:
    path = request.path
    if path in _open_paths():
        return True
    # /v1 reads only its bearer token, never the session; so does /metrics when it is sent one.
    if path.startswith("/v1/") or path.startswith(f"/{settings.STATIC_URL.lstrip('/')}"):
        return True
    bearer = request.headers.get("Authorization", "").partition(" ")[0].lower() == "bearer"
    return path == reverse("metrics") and bearer


class SecondFactorAdminSite(admin.AdminSite):
    """The admin, refusing a session that owes its second factor: the same rule as the dashboard's, kept here too
    so the admin stays closed even if the middleware were left out."""

    def has_permission(self, request: HttpRequest) -> bool:
        return super().has_permission(request) and not second_factor_owed(request)


# --- after the password: the code -------------------------------------------------------


@require_http_methods(["GET", "POST"])
def second_factor_verify(request: HttpRequest) -> HttpResponseBase:
    user = request.user
    if not isinstance(user, User):
        return redirect_to_login(request.get_full_path())
    after = _next(request)
    if not second_factor_owed(request):
        return redirect(after)
    if totp_device_for(user=user) is None:
        return redirect(f"{reverse('second-factor-enrol')}?{urlencode({'next': after})}")
    form = CodeForm(request.POST if request.method == "POST" else None)
    status: int = HTTPStatus.OK
    if form.is_bound and form.is_valid():
        try:
            device = second_factor_check(user=user, code=form.cleaned_data["code"], address=client_address(request))
        except ServiceError as refused:
            status = _refusal(form, refused)
        else:
            _verified(request, device)
            return redirect(after)
    elif form.errors:
        status = HTTPStatus.UNPROCESSABLE_CONTENT
    return TemplateResponse(request, VERIFY, {"form": form, "next": after, "second_factor_owed": True}, status=status)


# --- enrolment -------------------------------------------------------------------------------


@require_http_methods(["GET", "POST"])
def second_factor_enrol(request: HttpRequest) -> HttpResponseBase:
    """Set up the authenticator: a new key as a QR code (and typed), confirmed with a code; then the recovery codes, once."""
    user = request.user
    if not isinstance(user, User):
        return redirect_to_login(request.get_full_path())
    after = _next(request)
    if totp_device_for(user=user) is not None:
        # Enrolled already: a second key is set up only by removing the first,
        # which asks for a code (and an unverified session is sent to give one).
        return redirect("second-factor")
    owed = second_factor_required(user=user)
    form = EnrolForm(request.POST if request.method == "POST" else None)
    status: int = HTTPStatus.OK
    device = totp_enrolment_pending(user=user) if form.is_bound else None
    if form.is_bound and device is None:
        messages.warning(request, "That set-up had ended. Scan this new code instead.")
        form = EnrolForm()
    elif device is not None and form.is_valid():
        try:
            codes = totp_enrolment_confirm(user=user, device=device, code=form.cleaned_data["code"], address=client_address(request))
        except ServiceError as refused:
            status = _refusal(form, refused)
        else:
            _verified(request, device)
            return TemplateResponse(request, CODES, {"codes": codes, "next": after, "enrolled": True})
    elif form.errors:
        status = HTTPStatus.UNPROCESSABLE_CONTENT
    if device is None:
        device = totp_enrolment_start(user=user)
    context = {
        "form": form,
        "next": after,
        "qr_svg": totp_qr_svg(device=device),
        "secret": totp_secret_text(device=device),
        "owed": owed,
        "second_factor_owed": owed,
    }
    return TemplateResponse(request, ENROL, context, status=status)


# --- the account's page ----------------------------------------------------------------------


@login_required
@require_http_methods(["GET"])
def second_factor(request: AuthedRequest) -> HttpResponse:
    return _account(request)


@login_required
@require_POST
def recovery_codes_new(request: AuthedRequest) -> HttpResponse:
    """New recovery codes for a current code (a session left open cannot take them away silently)."""
    form = CodeForm(request.POST, auto_id=REGENERATE_ID)
    if not form.is_valid():
        return _account(request, regenerate=form, status=HTTPStatus.UNPROCESSABLE_CONTENT)
    try:
        second_factor_check(user=request.user, code=form.cleaned_data["code"], address=client_address(request))
    except ServiceError as refused:
        status = _refusal(form, refused)
        return _account(request, regenerate=form, status=status)
    codes = recovery_codes_replace(user=request.user)
    return TemplateResponse(request, CODES, {"codes": codes, "next": reverse("second-factor"), "enrolled": False})


@login_required
@require_POST
def second_factor_delete(request: AuthedRequest) -> HttpResponse:
    """Remove the authenticator and the recovery codes, for a current code."""
    form = CodeForm(request.POST, auto_id=REMOVE_ID)
    if not form.is_valid():
        return _account(request, remove=form, status=HTTPStatus.UNPROCESSABLE_CONTENT)
    try:
        second_factor_check(user=request.user, code=form.cleaned_data["code"], address=client_address(request))
    except ServiceError as refused:
        status = _refusal(form, refused)
        return _account(request, remove=form, status=status)
    second_factor_remove(user=request.user)
    if second_factor_mandatory(user=request.user):
        messages.info(request, "Your authenticator was removed. Berth requires one for you: set up the new one now.")
        return redirect("second-factor-enrol")
    messages.success(request, "Your authenticator and recovery codes were removed. Sign-in asks for your password only.")
    return redirect("second-factor")


def _account(request: AuthedRequest, *, status: int = HTTPStatus.OK, **forms_: CodeForm) -> HttpResponse:
    user = request.user
    context: dict[str, Any] = {
        "device": totp_device_for(user=user),
        "recovery_left": recovery_codes_left(user=user),
        "mandatory": second_factor_mandatory(user=user),
        "regenerate": forms_.get("regenerate") or CodeForm(auto_id=REGENERATE_ID),
        "remove": forms_.get("remove") or CodeForm(auto_id=REMOVE_ID),
    }
    return TemplateResponse(request, ACCOUNT, context, status=status)


# --- shared ----------------------------------------------------------------------------------


def _verified(request: HttpRequest, device: Device) -> None:
    """The session now counts as signed in with both factors; a new session key, as at any change of privilege."""
    request.session.cycle_key()
    otp_login(request, device)


def _refusal(form: CodeForm, refused: ServiceError) -> int:
    """Show a refused code on its field; the status: 422 for a wrong code, 403 while locked out."""
    message = str(refused)
    if refused.field:
        message = message.removeprefix(f"{refused.field}: ")
    form.add_error("code", message[:1].upper() + message[1:])
    return HTTPStatus.UNPROCESSABLE_CONTENT if refused.status == HTTPStatus.BAD_REQUEST else refused.status


def _next(request: HttpRequest) -> str:
    """Where to go once the code is given: `next` when it is a page of this site, else the projects list."""
    after = request.POST.get("next") or request.GET.get("next") or ""
    if after and url_has_allowed_host_and_scheme(after, allowed_hosts={request.get_host()}, require_https=request.is_secure()):
        return after
    return reverse(settings.LOGIN_REDIRECT_URL)

