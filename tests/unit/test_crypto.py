"""Secrets at rest (crypto.py, models.py): stored encrypted, API tokens only as hashes."""

import json

from projects.models import Project
from projects.services.lifecycle import requests as lifecycle


def test_secrets_are_never_stored_in_clear_and_tokens_only_as_hashes(user, client):
    from projects.models import ApiToken
    from tests.conftest import bearer

    project = Project.objects.get(pk=lifecycle.project_create(owner=user, name="r").project_id)
    row = Project.objects.values().get(pk=project.pk)
    flat = json.dumps(row, default=str)
    assert project.db_password not in flat and project.jwt_secret not in flat
    raw = bearer(user)["HTTP_AUTHORIZATION"].removeprefix("Bearer ")
    stored = json.dumps(list(ApiToken.objects.values()), default=str)
    assert raw not in stored and raw[len("berth_") + 4 :] not in stored
