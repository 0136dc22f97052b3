"""The project page's upgrade, rollback and drop of the kept volume (views.py), against FakeRuntime with tasks run inline."""

import pytest

from projects.models import Project
from projects.services.lifecycle import requests as lifecycle

HTMX = {"HX-Request": "true"}


@pytest.fixture
def signed_in(client, user):
    client.force_login(user)
    return client


@pytest.fixture
def on15(user):
    return lifecycle.project_create(owner=user, name="shop", postgres_version="15").project


def test_the_page_offers_an_upgrade_to_a_higher_major_with_a_confirmation(signed_in, on15):
    page = signed_in.get(f"/projects/{on15.public_id}").content.decode()
    assert "Upgrade PostgreSQL…" in page and '<option value="17">PostgreSQL 17</option>' in page
    assert 'id="confirm-upgrade"' in page and "Roll back" not in page


def test_no_upgrade_is_offered_on_the_highest_major(signed_in, user):
    on17 = lifecycle.project_create(owner=user, name="new", postgres_version="17").project
    assert "Upgrade PostgreSQL…" not in signed_in.get(f"/projects/{on17.public_id}").content.decode()


def test_an_upgrade_needs_the_typed_name_and_then_lists_the_kept_volume_with_rollback_and_drop(signed_in, on15):
    url = f"/projects/{on15.public_id}/upgrade"
    response = signed_in.post(url, {"postgres_version": "17", "confirm": "nope"}, headers=HTMX)
    assert response.status_code == 422 and "not the project&#x27;s name" in response.content.decode()
    on15.refresh_from_db()
    assert on15.postgres_version == "15" and on15.operations.count() == 1

    response = signed_in.post(url, {"postgres_version": "17", "confirm": "shop"})
    assert response.status_code == 302
    on15.refresh_from_db()
    assert (on15.status, on15.postgres_version) == (Project.Status.RUNNING, "17")
    page = signed_in.get(f"/projects/{on15.public_id}").content.decode()
    assert f"Kept from the upgrade: volume <code>project_{on15.public_id}_data</code> (PostgreSQL 15" in page
    assert "Roll back to PostgreSQL 15…" in page and "Drop the kept volume…" in page
    assert "Upgrade PostgreSQL…" not in page  # one kept volume at a time

    response = signed_in.post(f"/projects/{on15.public_id}/rollback_upgrade", {"confirm": "shop"}, headers=HTMX)
    assert response.status_code == 200
    on15.refresh_from_db()
    assert on15.postgres_version == "15" and not on15.has_kept_volume


def test_a_refused_upgrade_shows_its_reason_in_place(signed_in, on15):
    response = signed_in.post(f"/projects/{on15.public_id}/upgrade", {"postgres_version": "15", "confirm": "shop"}, headers=HTMX)
    assert response.status_code == 422 and "already runs PostgreSQL 15" in response.content.decode()
    response = signed_in.post(f"/projects/{on15.public_id}/drop_kept_volume", {"confirm": "shop"}, headers=HTMX)
    assert response.status_code == 409 and "no volume is kept" in response.content.decode()


def test_another_users_project_cannot_be_upgraded(client, other_user, on15):
    client.force_login(other_user)
    assert client.post(f"/projects/{on15.public_id}/upgrade", {"postgres_version": "17", "confirm": "shop"}).status_code == 404
