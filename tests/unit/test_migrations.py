"""Migrations that change what existing rows mean."""

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from projects.crypto import secret_decrypt, secret_encrypt


@pytest.mark.django_db(transaction=True)
def test_existing_projects_stay_the_old_kind_and_get_an_authenticator_password(django_user_model):
    executor = MigrationExecutor(connection)
    executor.migrate([("projects", "0005_project_network_subnet")])
    apps = executor.loader.project_state([("projects", "0005_project_network_subnet")]).apps
    User = apps.get_model("auth", "User")
    Project = apps.get_model("projects", "Project")
    owner = User.objects.create(username="old")
    Project.objects.create(
        public_id="0123456789ab", name="old", owner=owner, postgres_version="17", api_flavour="postgrest",
        db_port=6201, api_port=7201, db_password_encrypted=secret_encrypt("pw"), jwt_secret_encrypted=secret_encrypt("j" * 48),
    )  # fmt: skip

    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(executor.loader.graph.leaf_nodes())

    from projects.models import Project as Current

    project = Current.objects.get(public_id="0123456789ab")
    assert project.owner_is_superuser and project.admin_user == "app" and project.admin_password == "pw"
    assert len(secret_decrypt(project.authenticator_password_encrypted)) >= 24
