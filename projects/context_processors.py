"""Template context for every dashboard page."""

from collections.abc import Callable

from django.http import HttpRequest

from projects.services.fleet.inspect import engine_error


def engine(request: HttpRequest) -> dict[str, Callable[[], str | None]]:
    # A callable, so only a template that shows the banner asks (the admin's
    # never do), and then through the cached check: one ping per ~10 s per process.
    return {"engine_error": engine_error}
