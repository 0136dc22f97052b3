"""The project's API keys: HS256 JWTs for anon and service, the owner's alone."""

import base64
import hashlib
import hmac
import json

from projects.keys import jwt_sign, project_keys
from projects.models import Project
from tests.conftest import bearer


def decode(token: str, secret: str) -> dict:
    """An independent HS256 check: the signature over header.payload with the secret, then the claims."""
    header, payload, signature = token.split(".")
    expected = hmac.new(secret.encode(), f"{header}.{payload}".encode(), hashlib.sha256).digest()
    assert base64.urlsafe_b64decode(signature + "=" * (-len(signature) % 4)) == expected
    assert json.loads(base64.urlsafe_b64decode(header + "==")) == {"alg": "HS256", "typ": "JWT"}
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


def create(client, user) -> dict:
    response = client.post("/v1/projects?wait=5", data={}, content_type="application/json", **bearer(user))
    assert response.status_code == 201, response.content
    return response.json()


def test_jwt_sign_matches_a_known_hs256_token():
    # jwt.io's example token, signed with "your-256-bit-secret" (claims re-ordered: sorted keys).
    token = jwt_sign({"sub": "1234567890", "name": "John Doe", "iat": 1516239022}, "your-256-bit-secret")
    assert decode(token, "your-256-bit-secret") == {"sub": "1234567890", "name": "John Doe", "iat": 1516239022}


def test_the_owner_gets_anon_and_service_keys_signed_with_the_project_secret(client, user):
    body = create(client, user)
    project = Project.objects.get(public_id=body["project_id"])
    iat = int(project.created_at.timestamp())
    assert decode(body["anon_key"], project.jwt_secret) == {"role": "anon", "iss": "berth", "aud": "berth", "iat": iat}
    assert decode(body["service_key"], project.jwt_secret) == {"role": "service", "iss": "berth", "aud": "berth", "iat": iat}
    # The same keys every time the project is read: they are derived, not random.
    again = client.get(f"/v1/projects/{body['project_id']}", **bearer(user)).json()
    assert (again["anon_key"], again["service_key"]) == (body["anon_key"], body["service_key"]) == tuple(project_keys(project).values())
    assert again["owner_superuser"] is False


def test_staff_and_lists_never_see_someone_elses_keys(client, user, staff):
    body = create(client, user)
    seen = client.get(f"/v1/projects/{body['project_id']}", **bearer(staff)).json()
    assert (seen["anon_key"], seen["service_key"]) == (None, None)
    listed = client.get("/v1/projects", **bearer(staff)).json()["projects"]
    assert [(p["anon_key"], p["service_key"]) for p in listed] == [(None, None)]


def test_a_new_project_has_its_own_superuser_and_authenticator_passwords(client, user):
    project = Project.objects.get(public_id=create(client, user)["project_id"])
    assert not project.owner_is_superuser and project.admin_user == "berth_admin"
    secrets = {project.db_password, project.jwt_secret, project.admin_password, project.authenticator_password}
    assert len(secrets) == 4 and all(len(s) >= 24 for s in secrets)
    # Stored encrypted, like the other secrets.
    assert project.admin_password not in project.admin_password_encrypted
    assert project.authenticator_password not in project.authenticator_password_encrypted


def test_a_project_of_the_old_kind_bootstraps_and_backs_up_as_its_owner(client, user):
    project = Project.objects.get(public_id=create(client, user)["project_id"])
    Project.objects.filter(pk=project.pk).update(admin_password_encrypted="")
    project.refresh_from_db()
    assert project.owner_is_superuser
    assert (project.admin_user, project.admin_password) == ("app", project.db_password)
    assert client.get(f"/v1/projects/{project.public_id}", **bearer(user)).json()["owner_superuser"] is True
