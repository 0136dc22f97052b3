"""HEAD is GET without the body (RFC 9110), for every page and /v1 endpoint that answers GET.

Views answer HEAD as they answer GET (the dashboard's `require_safe`, the
API's `methods`); this middleware, outermost, drops the body and keeps the
headers GET would send, Content-Length included. Servers would drop the body
too, but gunicorn logs a warning for every body it drops.
"""

from collections.abc import Callable

from django.http import HttpRequest
from django.http.response import HttpResponseBase


def head_without_body(get_response: Callable[[HttpRequest], HttpResponseBase]) -> Callable[[HttpRequest], HttpResponseBase]:
    def middleware(request: HttpRequest) -> HttpResponseBase:
        response = get_response(request)
        if request.method != "HEAD":
            return response
        if response.streaming:
            # A file's length is set already; its file is still closed with the response.
            response.streaming_content = ()  # type: ignore[attr-defined]  # HttpResponseBase has no body; a streaming one does
        else:
            content: bytes = response.content  # type: ignore[attr-defined]  # likewise
            if not response.has_header("Content-Length"):
                response["Content-Length"] = str(len(content))
            response.content = b""  # type: ignore[attr-defined]
        return response

    return middleware
