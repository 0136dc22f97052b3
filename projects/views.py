"""The dashboard (HTML + HTMX)."""

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse

from .selectors import projects_for_user


@login_required
def project_list(request: HttpRequest) -> HttpResponse:
    projects = projects_for_user(request.user)
    return TemplateResponse(request, "projects/project_list.html", {"projects": projects})
