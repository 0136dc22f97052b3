"""The OpenAPI document: served, valid, complete, and enforced on every API answer of the unit tests."""

import json
import re

import pytest
from django.urls import URLPattern, URLResolver, get_resolver
from jsonschema import Draft202012Validator

from projects.api import projects as api
from projects.api.openapi import openapi_document
from tests.conftest import bearer
from tests.openapi_check import conformance_errors, route


def test_it_is_served_without_a_token_as_json(client):
    response = client.get("/v1/openapi.json")
    assert response.status_code == 200 and response["Content-Type"] == "application/json"
    assert response.json() == json.loads(json.dumps(openapi_document()))


def test_only_get_reads_it(client):
    response = client.post("/v1/openapi.json")
    assert response.status_code == 405 and response.json()["error"]["code"] == "method_not_allowed"


def test_it_is_openapi_3_1_with_valid_json_schemas_and_resolvable_references():
    doc = openapi_document()
    assert doc["openapi"] == "3.1.0"
    for name, schema in doc["components"]["schemas"].items():
        Draft202012Validator.check_schema(schema)
    text = json.dumps(doc)
    for target in set(part.split('"')[0] for part in text.split('"$ref": "#/components/schemas/')[1:]):
        assert target in doc["components"]["schemas"], f"dangling $ref to {target}"
    operation_ids = [op["operationId"] for item in doc["paths"].values() for m, op in item.items() if m != "parameters"]
    assert len(operation_ids) == len(set(operation_ids))
    for item in doc["paths"].values():
        for method, op in item.items():
            if method == "parameters":
                continue
            for link in (link for r in op["responses"].values() for link in r.get("links", {}).values()):
                assert link["operationId"] in operation_ids


def test_the_postgres_versions_on_offer_are_this_installations(settings):
    settings.BERTH_POSTGRES_IMAGES = {"16": "postgres:16"}
    body = openapi_document()["paths"]["/v1/projects"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert body["properties"]["postgres_version"]["oneOf"][0]["enum"] == ["16"]


def _v1_routes() -> list[str]:
    """Every /v1 URL pattern Django serves, as a regex-ish string (the catch-all excluded)."""
    found = []

    def walk(patterns, prefix: str) -> None:
        for p in patterns:
            if isinstance(p, URLResolver):
                walk(p.url_patterns, prefix + str(p.pattern))
            elif isinstance(p, URLPattern):
                found.append(prefix + str(p.pattern))

    walk(get_resolver().url_patterns, "")
    return [r for r in found if r.startswith("v1/") and r != "v1/^(?P<path>.*)$"]


def _example_paths(pattern: str) -> list[str]:
    """Concrete paths a pattern serves, with placeholder ids."""
    path = "/" + re.sub(r"(^|/)\^", r"\1", pattern).removesuffix("$")
    path = path.replace("<str:project_id>", "abcdefabcdef").replace("<str:operation_id>", "abcdefabcdef").replace("<str:backup_id>", "abcdefabcdef")
    path = path.replace("(?P<project_id>[^/]+)", "abcdefabcdef").replace("(?P<backup_id>[^/]+)", "abcdefabcdef")
    if "(?P<action>" in path:
        start = path.index("(?P<action>")
        choices = path[start + len("(?P<action>") : path.index(")", start)].split("|")
        return [path[:start] + choice for choice in choices]
    return [path]


def test_every_api_route_is_in_the_document_and_the_document_has_no_other():
    served = {example for pattern in _v1_routes() for example in _example_paths(pattern)}
    documented = set(openapi_document()["paths"])
    routed = {route(path) for path in served}
    assert None not in routed, [p for p in served if route(p) is None]
    assert routed == documented


def test_a_field_outside_the_document_fails_the_test_that_meets_it(client, user, monkeypatch):
    client.post("/v1/projects?wait=5", data="{}", content_type="application/json", **bearer(user))
    original = api.project_json
    monkeypatch.setattr(api, "project_json", lambda *a, **k: {**original(*a, **k), "secret_sauce": 1})
    with pytest.raises(AssertionError, match="departs from the OpenAPI document"):
        client.get("/v1/projects", **bearer(user))


def test_an_undocumented_status_is_reported():
    errors = conformance_errors("GET", "/v1/projects", 418, "application/json", b'{"error": {"code": "x", "message": "y"}}')
    assert errors == ["GET /v1/projects: status 418 is not documented (documented: 200, 401, 400)"]


def test_an_unknown_path_must_answer_an_error_in_the_documented_shape():
    assert conformance_errors("GET", "/v1/nope", 404, "application/json", b'{"error": {"code": "not_found", "message": "no"}}') == []
    assert conformance_errors("GET", "/v1/nope", 404, "application/json", b'{"detail": "no"}') != []
