"""The API tokens page: a token is shown once, listed by its prefix, revoked by its owner only."""

import pytest

from projects.models import ApiToken, token_hash
from projects.services.accounts.tokens import api_token_create

HTMX = {"HX-Request": "true"}


@pytest.fixture
def signed_in(client, user):
    client.force_login(user)
    return client


def test_tokens_page_full_and_partial(signed_in, user):
    api_token_create(user=user, name="laptop")
    page = signed_in.get("/tokens")
    assert page.status_code == 200 and b"</html>" in page.content and b"laptop" in page.content
    partial = signed_in.get("/tokens", headers=HTMX)
    assert partial.status_code == 200 and b"<html" not in partial.content
    assert partial.content.decode().lstrip().startswith('<section id="tokens"') and b"laptop" in partial.content


def test_a_new_token_is_shown_once_and_only_its_hash_is_kept(signed_in, user):
    response = signed_in.post("/tokens", {"name": "ci"})
    assert response.status_code == 200
    raw = response.context["created"][1]
    content = response.content.decode()
    assert raw.startswith("berth_") and f'value="{raw}"' in content and 'data-copy="#new-token"' in content
    assert response["Cache-Control"] == "no-store"
    token = ApiToken.objects.get(user=user)
    assert token.key_hash == token_hash(raw) and raw not in (token.prefix, token.key_hash)
    # Never again: not on the list page, not in its partial.
    assert raw not in signed_in.get("/tokens").content.decode()
    assert raw not in signed_in.get("/tokens", headers=HTMX).content.decode()


def test_creating_with_htmx_returns_the_partial_with_the_token(signed_in):
    response = signed_in.post("/tokens", {"name": "ci"}, headers=HTMX)
    assert response.status_code == 200 and b"<html" not in response.content
    assert response.context["created"][1] in response.content.decode()


def test_the_list_shows_name_prefix_created_and_last_used(signed_in, user):
    from django.utils import timezone

    token, _ = api_token_create(user=user, name="deploy")
    ApiToken.objects.filter(pk=token.pk).update(last_used_at=timezone.now())
    api_token_create(user=user, name="unused")
    content = signed_in.get("/tokens").content.decode()
    assert "deploy" in content and f"<code>{token.prefix}…</code>" in content
    assert token.created_at.strftime("%Y-%m-%d %H:%M") in content
    assert "just now</time>" in content and ">never<" in content


def test_a_blank_name_re_renders_the_form_with_the_error(signed_in):
    for headers in ({}, HTMX):
        response = signed_in.post("/tokens", {"name": ""}, headers=headers)
        assert response.status_code == 422 and b"This field is required." in response.content
        assert response.context["created"] is None
    assert not ApiToken.objects.exists()


def test_only_the_users_own_tokens_are_listed(signed_in, other_user):
    api_token_create(user=other_user, name="bobs-token")
    assert b"bobs-token" not in signed_in.get("/tokens").content


def test_revoking_deletes_the_token(signed_in, user):
    token, _ = api_token_create(user=user, name="old")
    response = signed_in.post(f"/tokens/{token.pk}/revoke")
    assert (response.status_code, response["Location"]) == (302, "/tokens")
    assert not ApiToken.objects.filter(pk=token.pk).exists()


def test_revoking_with_htmx_returns_the_refreshed_partial(signed_in, user):
    token, _ = api_token_create(user=user, name="old")
    api_token_create(user=user, name="kept")
    response = signed_in.post(f"/tokens/{token.pk}/revoke", headers=HTMX)
    assert response.status_code == 200 and b"<html" not in response.content
    assert b"kept" in response.content and b">old<" not in response.content


def test_another_users_token_cannot_be_revoked(signed_in, other_user):
    token, _ = api_token_create(user=other_user, name="bobs")
    assert signed_in.post(f"/tokens/{token.pk}/revoke").status_code == 404
    assert ApiToken.objects.filter(pk=token.pk).exists()


@pytest.mark.parametrize("method", ["get", "put", "delete"])
def test_revoke_accepts_only_post(signed_in, user, method):
    token, _ = api_token_create(user=user, name="t")
    assert getattr(signed_in, method)(f"/tokens/{token.pk}/revoke").status_code == 405
    assert ApiToken.objects.filter(pk=token.pk).exists()


@pytest.mark.parametrize("method", ["put", "delete"])
def test_the_tokens_page_accepts_only_get_and_post(signed_in, method):
    assert getattr(signed_in, method)("/tokens").status_code == 405
