"""The API tokens page: create one (its secret shown once), revoke one."""

from typing import Any

from django.http import Http404, HttpResponse
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.utils import timezone
from django.views.decorators.http import require_http_methods, require_POST
from django.views.decorators.vary import vary_on_headers

from projects.forms import ApiTokenCreateForm
from projects.http import DashboardRequest
from projects.models import ApiToken
from projects.services.accounts.tokens import api_token_create, api_token_revoke, token_lifetime_parse
from projects.views.common import TOKENS, login_required, template_part

# --- API tokens ----------------------------------------------------------------------


def _tokens_context(request: DashboardRequest, form: ApiTokenCreateForm, created: tuple[ApiToken, str] | None = None) -> dict[str, Any]:
    return {"form": form, "tokens": request.user.api_tokens.all(), "created": created, "now": timezone.now()}


@login_required
@require_http_methods(["GET", "POST"])
@vary_on_headers("HX-Request")
def token_list(request: DashboardRequest) -> HttpResponse:
    form = ApiTokenCreateForm(request.POST if request.method == "POST" else None)
    created = None
    if form.is_bound and form.is_valid():
        expires = form.cleaned_data["expires"]
        token, raw = api_token_create(
            user=request.user, name=form.cleaned_data["name"], read_only=form.cleaned_data["read_only"],
            lifetime=token_lifetime_parse(expires) if expires else None,
        )  # fmt: skip
        # Shown in this response only: it is stored as a hash and never again readable.
        created = (token, raw)
        form = ApiTokenCreateForm()
    status = 422 if form.errors else 200
    response = TemplateResponse(
        request, template_part(request, TOKENS, "tokens"), _tokens_context(request, form, created), status=status
    )
    if created:
        response["Cache-Control"] = "no-store"
    return response


@login_required
@require_POST
def token_revoke(request: DashboardRequest, token_id: int) -> HttpResponse:
    if not api_token_revoke(user=request.user, token_id=token_id):
        raise Http404("No such token, or it is not yours.")
    if request.htmx:
        return TemplateResponse(request, f"{TOKENS}#tokens", _tokens_context(request, ApiTokenCreateForm()))
    return redirect("token-list")
