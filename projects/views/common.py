"""What every dashboard view shares: sign-in, the HTMX partial, queueing a service, a refusal shown, the project looked up, a name typed to confirm."""

from collections.abc import Callable
from functools import wraps
from http import HTTPStatus
from typing import Concatenate, cast

from django.contrib.auth.decorators import login_required as django_login_required
from django.contrib.auth.views import redirect_to_login
from django.http import Http404, HttpRequest
from django.http.response import HttpResponseBase
from django_htmx.http import HttpResponseClientRedirect

from projects.forms import ConfirmNameForm
from projects.http import DashboardRequest
from projects.models import Project
from projects.selectors import (
    project_for_user,
)
from projects.services.errors import EngineUnreachable, ServiceError
from projects.services.fleet.inspect import engine_error

PAGE_SIZE = 50
OPERATIONS_SHOWN = 20
LOG_LINES = 200

LIST = "projects/project_list.html"
CREATE = "projects/project_create.html"
DETAIL = "projects/project_detail.html"
TOKENS = "projects/token_list.html"
# The HTMX event a panel answer sends when it shows the project settled: the
# project page's other sections (head, backups, logs, connection) listen for it
# with hx-trigger="settled from:body" and ask for themselves again.
SETTLED_EVENT = "settled"
# The event a settings answer sends when a change took effect without an
# operation (a rename): the head, which shows the name, asks again. The
# settings section does not listen, so its notice stays.
CHANGED_EVENT = "changed"


def login_required[**P](
    view: Callable[Concatenate[DashboardRequest, P], HttpResponseBase],
) -> Callable[Concatenate[HttpRequest, P], HttpResponseBase]:
    """Django's login_required, except that an HTMX request (a poll after the session
    expired) sends the whole page to the login form instead of swapping it into a row."""
    guarded = django_login_required(view)

    @wraps(view)
    def wrapper(request: HttpRequest, /, *args: P.args, **kwargs: P.kwargs) -> HttpResponseBase:
        # The type only: HtmxMiddleware sets htmx on every request, and Django's
        # login_required (guarded) lets only a signed-in user through to the view.
        dashboard = cast(DashboardRequest, request)
        if dashboard.htmx and not request.user.is_authenticated:
            login = redirect_to_login(dashboard.htmx.current_url_abs_path or request.get_full_path())
            return HttpResponseClientRedirect(login["Location"])
        return guarded(dashboard, *args, **kwargs)

    return wrapper


def template_part(request: DashboardRequest, template: str, partial: str) -> str:
    return f"{template}#{partial}" if request.htmx else template


def queued[T](run: Callable[[], T]) -> T:
    """Run one service that queues engine work, once the engine answers; a refusal is raised (nothing changed)."""
    # Asked fresh (not the banner's cache): queueing work for an engine that
    # is gone would only turn the project to failed.
    if error := engine_error(max_age_s=0):
        raise EngineUnreachable(f"the Docker Engine cannot be reached. {error}")
    return run()


def refusal_shown(refusal: ServiceError) -> tuple[HTTPStatus, str]:
    """The status and the sentence the dashboard answers a refusal with.

    The status is the error class's, as in the API, except that input the
    server will not take is 422 on every form (the API says 400).
    """
    status = HTTPStatus.UNPROCESSABLE_CONTENT if refusal.status == HTTPStatus.BAD_REQUEST else refusal.status
    return status, f"Nothing was changed: {str(refusal).rstrip('.')}."


def attempted(run: Callable[[], object]) -> tuple[HTTPStatus, str]:
    """Run one service; (200, "") when it was queued, else the status and the sentence to show."""
    try:
        queued(run)
    except ServiceError as refused:
        return refusal_shown(refused)
    return HTTPStatus.OK, ""


def project_visible(request: DashboardRequest, project_id: str) -> Project:
    """The project if this user may see it: their own, or any for staff. Others get the same 404 as a typo."""
    project = project_for_user(request.user, project_id)
    if project is None:
        raise Http404("No such project, or it is not yours.")
    return project


def confirm_error(request: DashboardRequest, project: Project) -> str:
    """Why the typed name does not confirm a delete, purge or restore; "" when it does."""
    confirm = ConfirmNameForm(request.POST, project=project)
    return "" if confirm.is_valid() else " ".join(str(message) for message in confirm.errors["confirm"])
