"""API tokens (services/accounts/tokens.py): expiry, the read-only scope, and revocation when the password changes."""

import json
from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from projects.models import ApiToken, Operation, Project
from projects.services.lifecycle import requests as lifecycle
from projects.services.errors import InvalidInput
from projects.services.accounts.tokens import api_token_create, token_lifetime_parse


def auth(raw: str) -> dict[str, str]:
    return {"HTTP_AUTHORIZATION": f"Bearer {raw}"}


@pytest.mark.parametrize("text, lifetime", [("12h", timedelta(hours=12)), ("30d", timedelta(days=30)), ("2w", timedelta(weeks=2))])
def test_lifetimes_parse(text, lifetime):
    assert token_lifetime_parse(text) == lifetime


@pytest.mark.parametrize("text", ["", "30", "0d", "-1d", "30 days", "1y", "99999d", "³d"])
def test_bad_lifetimes_are_refused_with_the_field(text):
    with pytest.raises(InvalidInput) as refused:
        token_lifetime_parse(text)
    assert refused.value.field == "expires"


def test_an_expired_token_is_refused_with_401_and_says_so(client, user):
    token, raw = api_token_create(user=user, lifetime=timedelta(days=1))
    assert client.get("/v1/projects", **auth(raw)).status_code == 200
    ApiToken.objects.filter(pk=token.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    response = client.get("/v1/projects", **auth(raw))
    assert response.status_code == 401 and "expired" in response.json()["error"]["message"]


def test_a_read_only_token_reads_but_every_write_gets_403_and_changes_nothing(client, user):
    project = Project.objects.get(pk=lifecycle.project_create(owner=user, name="mine").project_id)
    _, raw = api_token_create(user=user, read_only=True)
    assert client.get("/v1/projects", **auth(raw)).status_code == 200
    assert client.get(f"/v1/projects/{project.public_id}", **auth(raw)).status_code == 200
    before = (list(Project.objects.values_list("pk", "status")), Operation.objects.count())
    for method, path in [
        ("post", "/v1/projects"),
        ("post", f"/v1/projects/{project.public_id}/stop"),
        ("delete", f"/v1/projects/{project.public_id}"),
        ("post", f"/v1/projects/{project.public_id}/backups"),
        ("put", f"/v1/projects/{project.public_id}/backup-schedule"),
    ]:
        response = getattr(client, method)(path, data=json.dumps({"hour": 1, "keep": 1}), content_type="application/json", **auth(raw))
        assert response.status_code == 403, (method, path)
        assert response.json()["error"]["code"] == "read_only_token"
    assert (list(Project.objects.values_list("pk", "status")), Operation.objects.count()) == before


def test_changing_the_password_revokes_every_token_of_that_user_only(client, user, other_user):
    _, mine = api_token_create(user=user)
    _, theirs = api_token_create(user=other_user)
    user.set_password("a-new-password-2")
    user.save()
    assert client.get("/v1/projects", **auth(mine)).status_code == 401
    assert client.get("/v1/projects", **auth(theirs)).status_code == 200


def test_the_password_change_page_revokes_the_tokens_and_the_tokens_page_says_it_will(client, user):
    _, raw = api_token_create(user=user)
    client.force_login(user)
    assert "Changing your password revokes all your tokens" in client.get("/tokens").content.decode()
    response = client.post(
        "/accounts/password_change/",
        {"old_password": "alice-password-1", "new_password1": "quite-new-pass-9", "new_password2": "quite-new-pass-9"},
    )
    assert response.status_code == 302
    assert not ApiToken.objects.filter(user=user).exists()
    assert client.get("/v1/projects", **auth(raw)).status_code == 401


def test_the_admin_password_form_revokes_them_too(client, user, django_user_model):
    api_token_create(user=user)
    client.force_login(django_user_model.objects.create_superuser("root", password="root-password-1"))
    response = client.post(f"/admin/auth/user/{user.pk}/password/", {"password1": "quite-new-pass-9", "password2": "quite-new-pass-9"})
    assert response.status_code == 302
    assert not ApiToken.objects.filter(user=user).exists()


def test_the_dashboard_creates_an_expiring_read_only_token(client, user):
    client.force_login(user)
    response = client.post("/tokens", {"name": "ci", "expires": "30d", "read_only": "on"})
    assert response.status_code == 200
    token = ApiToken.objects.get(user=user)
    assert token.read_only and timedelta(days=29) < token.expires_at - timezone.now() <= timedelta(days=30)
    page = response.content.decode()
    assert "Read-only token" in page and "valid until" in page


def test_the_dashboard_refuses_an_unknown_expiry_and_creates_nothing(client, user):
    client.force_login(user)
    response = client.post("/tokens", {"name": "ci", "expires": "forever"})
    assert response.status_code == 422 and not ApiToken.objects.exists()


def test_the_command_makes_an_expiring_read_only_token_and_prints_it_last(client, user):
    out, err = StringIO(), StringIO()
    call_command("create_api_token", user.username, "--expires", "30d", "--read-only", stdout=out, stderr=err)
    raw = out.getvalue().strip().splitlines()[-1]
    token = ApiToken.objects.get(user=user)
    assert token.read_only and token.expires_at is not None and "read-only" in err.getvalue()
    assert client.get("/v1/projects", **auth(raw)).status_code == 200
    assert client.post("/v1/projects", **auth(raw)).status_code == 403


def test_the_command_refuses_a_bad_expiry_and_makes_no_token(user):
    with pytest.raises(CommandError, match="expires"):
        call_command("create_api_token", user.username, "--expires", "soon")
    assert not ApiToken.objects.exists()
