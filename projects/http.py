"""The requests the edges' views receive, as their wrappers guarantee them.

Django types `request.user` as maybe anonymous and knows nothing of
django-htmx's `request.htmx`. Behind `login_required` (the dashboard) or
`token_required` (the JSON API) the user is a signed-in User, and
HtmxMiddleware sets `htmx` on every request: views annotate their request
with these types instead of narrowing it in each body.
"""

from django.contrib.auth.models import User
from django.http import HttpRequest
from django_htmx.middleware import HtmxDetails

from .models import ApiToken


class AuthedRequest(HttpRequest):
    """A request whose user has signed in (a session or an API token)."""

    user: User


class ApiRequest(AuthedRequest):
    """A /v1 request behind `token_required`: its user is the token's, and the token says what it may see."""

    api_token: ApiToken


class DashboardRequest(AuthedRequest):
    """A dashboard request: signed in, with django-htmx's details."""

    htmx: HtmxDetails
