"""Does an API answer match the OpenAPI document? Used on every /v1 response the unit tests make."""

import json
import re
from functools import cache

from django.conf import settings
from jsonschema import Draft202012Validator, FormatChecker

from projects.api.openapi import openapi_document


@cache
def _document(versions: tuple[str, ...]) -> dict:
    return openapi_document()


def document() -> dict:
    return _document(tuple(sorted(settings.BERTH_POSTGRES_IMAGES)))


@cache
def _routes(versions: tuple[str, ...]) -> list[tuple[re.Pattern, str]]:
    paths = _document(versions)["paths"]
    # Literal paths first: /v1/openapi.json is not a value of a {parameter}.
    ordered = sorted(paths, key=lambda p: ("{" in p, p))
    return [(re.compile("^" + re.sub(r"\{[^}]+\}", "[^/]+", re.escape(p).replace(r"\{", "{").replace(r"\}", "}")) + "$"), p) for p in ordered]


def route(path: str) -> str | None:
    """The document's path template that `path` falls under, if any."""
    versions = tuple(sorted(settings.BERTH_POSTGRES_IMAGES))
    return next((template for pattern, template in _routes(versions) if pattern.match(path)), None)


def _validate(schema: dict, instance) -> list[str]:
    doc = document()
    # The document's "#/components/..." references resolve against this root.
    rooted = {**schema, "components": doc["components"]}
    validator = Draft202012Validator(rooted, format_checker=FormatChecker())
    return [f"{'/'.join(map(str, e.absolute_path)) or '(body)'}: {e.message}" for e in validator.iter_errors(instance)]


def conformance_errors(method: str, path: str, status: int, content_type: str, body: bytes) -> list[str]:
    """Every way this answer departs from the document; empty when it conforms."""
    doc = document()
    error_schema = {"$ref": "#/components/schemas/Error"}
    template = route(path)
    operation = doc["paths"][template].get(method.lower()) if template else None
    if operation is None:
        # No such path (the catch-all's 404) or method (405): still an error in the documented shape.
        allowed = {401, 404} if template is None else {401, 405}
        if status not in allowed:
            return [f"{method} {path}: {status} for an undocumented {'path' if template is None else 'method'} (expected {sorted(allowed)})"]
        return _validate(error_schema, _json(body))
    responses = operation["responses"]
    spec = responses.get(str(status))
    if spec is None:
        return [f"{method} {template}: status {status} is not documented (documented: {', '.join(responses)})"]
    content = spec.get("content", {})
    media = content_type.split(";")[0].strip()
    if content and media not in content:
        return [f"{method} {template} {status}: content type {media!r}, documented {sorted(content)}"]
    if media == "application/json":
        try:
            instance = _json(body)
        except ValueError:
            return [f"{method} {template} {status}: the body is not JSON"]
        return [f"{method} {template} {status}: {e}" for e in _validate(content[media]["schema"], instance)]
    return []


def _json(body: bytes):
    return json.loads(body or b"null")
