"""What tests of every kind make and send: a project through the services, the dashboard's HTMX header, a JSON POST."""

import json

from projects.models import Project
from projects.services.lifecycle import requests as lifecycle

HTMX = {"HX-Request": "true"}


def project_made(owner, name: str = "shop", **kwargs) -> Project:
    """A project created through the services: running at once where tasks run inline (unit tests, FakeRuntime)."""
    return Project.objects.get(pk=lifecycle.project_create(owner=owner, name=name, **kwargs).project_id)


def post_json(client, path: str, body=None, headers=None, *, raw: str | None = None):
    """POST `body` (or `raw` text) as JSON with `headers` (a token's, say)."""
    data = raw if raw is not None else json.dumps(body or {})
    return client.post(path, data=data, content_type="application/json", **(headers or {}))
