"""GET /metrics: Berth's metrics for a Prometheus server (staff only).

An edge of its own: a scraper sends a staff user's API token as
`Authorization: Bearer`; a staff member in a browser has the session. Anyone
else is refused without a word about the projects: 401 without credentials,
403 with a user who is not staff.
"""

from django.http import HttpRequest, HttpResponse
from django.views.decorators.http import require_GET

from .prometheus import exposition
from projects.services.accounts.tokens import api_token_user


@require_GET
def metrics(request: HttpRequest) -> HttpResponse:
    scheme, _, raw = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() == "bearer":
        user = api_token_user(raw)
        if user is None:
            return _refused(401, "the API token is not valid (revoked, expired or mistyped)")
    elif request.user.is_authenticated:
        user = request.user
    else:
        return _refused(401, "send a staff user's API token as 'Authorization: Bearer <token>'")
    if not user.is_staff:
        return _refused(403, "only staff may read Berth's metrics")
    body, content_type = exposition()
    return HttpResponse(body, content_type=content_type)


def _refused(status: int, message: str) -> HttpResponse:
    response = HttpResponse(message + "\n", status=status, content_type="text/plain; charset=utf-8")
    if status == 401:
        response["WWW-Authenticate"] = 'Bearer realm="berth"'
    return response
