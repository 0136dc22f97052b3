"""The upgrade endpoints of the JSON API (api.py): upgrade, rollback-upgrade, kept-volume, with their refusals."""


from projects.models import Project
from tests.conftest import bearer
from tests.factories import post_json as post


def create(client, headers, **body) -> dict:
    response = post(client, "/v1/projects?wait=5", body, headers)
    assert response.status_code == 201, response.content
    return response.json()


def test_upgrade_then_rollback_through_the_api(client, user):
    headers = bearer(user)
    project = create(client, headers, name="shop", postgres_version="15")
    pid = project["project_id"]
    assert project["kept_volume"] is None
    response = post(client, f"/v1/projects/{pid}/upgrade?wait=5", {"postgres_version": "17"}, headers)
    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["status"], body["postgres_version"], body["operation"]["kind"]) == ("running", "17", "upgrade")
    assert (body["db_url"], body["api_url"]) == (project["db_url"], project["api_url"])
    assert body["kept_volume"]["name"] == f"project_{pid}_data" and body["kept_volume"]["postgres_version"] == "15"
    response = post(client, f"/v1/projects/{pid}/rollback-upgrade?wait=5", {}, headers)
    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["postgres_version"], body["kept_volume"], body["operation"]["kind"]) == ("15", None, "rollback_upgrade")


def test_dropping_the_kept_volume_through_the_api(client, user):
    headers = bearer(user)
    pid = create(client, headers, name="shop", postgres_version="15")["project_id"]
    post(client, f"/v1/projects/{pid}/upgrade?wait=5", {"postgres_version": 17}, headers)
    response = client.delete(f"/v1/projects/{pid}/kept-volume?wait=5", **headers)
    assert response.status_code == 200 and response.json()["kept_volume"] is None
    response = client.delete(f"/v1/projects/{pid}/kept-volume", **headers)
    assert response.status_code == 409 and response.json()["error"]["code"] == "wrong_state"


def test_upgrade_refusals_answer_with_their_status_code_and_reason(client, user):
    headers = bearer(user)
    pid = create(client, headers, name="shop", postgres_version="17")["project_id"]
    cases = [
        ({"postgres_version": "17"}, 400, "invalid", "already runs PostgreSQL 17"),
        ({"postgres_version": "15"}, 400, "invalid", "a downgrade cannot read its data"),
        ({"postgres_version": "99"}, 400, "invalid", "must be one of"),
        ({}, 400, "invalid", "required"),
        ({"postgres_version": "17", "force": True}, 400, "invalid", "force: is not a field of upgrade"),
    ]
    for body, status, code, message in cases:
        response = post(client, f"/v1/projects/{pid}/upgrade", body, headers)
        assert response.status_code == status, (body, response.content)
        assert response.json()["error"]["code"] == code and message in response.json()["error"]["message"]
    response = post(client, f"/v1/projects/{pid}/rollback-upgrade", {}, headers)
    assert response.status_code == 409 and "no volume is kept" in response.json()["error"]["message"]
    assert Project.objects.get(public_id=pid).operations.count() == 1


def test_upgrade_of_a_stopped_project_is_409_and_of_someone_elses_404(client, user, other_user):
    headers = bearer(user)
    pid = create(client, headers, name="shop", postgres_version="15")["project_id"]
    response = post(client, f"/v1/projects/{pid}/upgrade", {"postgres_version": "17"}, bearer(other_user))
    assert response.status_code == 404
    post(client, f"/v1/projects/{pid}/stop?wait=5", {}, headers)
    response = post(client, f"/v1/projects/{pid}/upgrade", {"postgres_version": "17"}, headers)
    assert response.status_code == 409 and "cannot upgrade a project that is stopped" in response.json()["error"]["message"]


def test_staff_without_the_change_permission_cannot_upgrade_anothers_project(client, user, staff):
    pid = create(client, bearer(user), name="shop", postgres_version="15")["project_id"]
    response = post(client, f"/v1/projects/{pid}/upgrade", {"postgres_version": "17"}, bearer(staff))
    assert response.status_code == 403
    assert Project.objects.get(public_id=pid).postgres_version == "15"
