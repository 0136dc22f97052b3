"""No token in a log line: query parameters that carry one are redacted wherever a request is logged.

Berth reads tokens only from the Authorization header, but a client may still
send one in the URL (`?access_token=…`, a copied link), and an access log is
kept for ever and read by people who may not hold it. gunicorn's access log
is produced by its logger class (`up` runs gunicorn with `--logger-class
controlplane.access_log.RedactingLogger`): an `access_log_format` only picks
fields, it cannot change them. Django's own request logging (runserver's
`django.server` lines, `django.request`) goes through `RedactQueryFilter`
(settings.LOGGING).
"""

import logging
import re
from collections.abc import Mapping
from datetime import timedelta
from typing import Any
from urllib.parse import unquote_plus

from gunicorn.glogging import Logger  # type: ignore[import-untyped]  # gunicorn ships no types

# Compared case-insensitively, after percent-decoding the name (`%74oken` is `token` to a parser).
SECRET_PARAMS = frozenset({"access_token", "token", "key"})
REDACTED = "[redacted]"
# A query parameter inside a request line or URL: after ?, & or ;, up to the next separator, space or quote.
_PARAM = re.compile(r"(?P<sep>[?&;])(?P<name>[^=&;#?\s\"]+)=(?P<value>[^&;#\s\"]*)")


def redact_query(text: str) -> str:
    """`text` (a request line, a URL, a log message) with the value of every secret query parameter replaced."""

    def replace(match: re.Match[str]) -> str:
        if unquote_plus(match["name"]).lower() in SECRET_PARAMS:
            return f"{match['sep']}{match['name']}={REDACTED}"
        return match[0]

    return _PARAM.sub(replace, text) if "=" in text else text


def redact_query_string(query: str) -> str:
    """A bare query string (`a=1&token=…`, no leading ?)."""
    return redact_query("?" + query)[1:] if query else query


class RedactingLogger(Logger):  # type: ignore[misc]  # gunicorn's Logger is untyped
    """gunicorn's logger, with every access-log field that can hold a query string redacted."""

    def atoms(self, resp: Any, req: Any, environ: Mapping[str, Any], request_time: timedelta) -> dict[str, Any]:
        atoms: dict[str, Any] = super().atoms(resp, req, environ, request_time)
        for name, value in atoms.items():
            if isinstance(value, str):
                # q is the bare query string; r the request line, f and {referer}i a URL, {location}o a redirect.
                atoms[name] = redact_query_string(value) if name == "q" else redact_query(value)
        return atoms


class RedactQueryFilter(logging.Filter):
    """A logging filter that redacts secret query parameters in the message and its arguments."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = redact_query(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(redact_query(a) if isinstance(a, str) else a for a in record.args)
        elif isinstance(record.args, Mapping):
            record.args = {k: redact_query(v) if isinstance(v, str) else v for k, v in record.args.items()}
        return True
