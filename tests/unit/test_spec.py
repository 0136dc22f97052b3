from urllib.parse import unquote, urlsplit

import pytest

from projects.models import Project
from projects.runtime.base import MANAGED_LABEL, PROJECT_LABEL, SERVICE_LABEL
from projects.runtime.spec import stack_spec

# The spec reads the installation id (berth.install) from Berth's database.
pytestmark = pytest.mark.django_db


def make_project(api="postgrest", version="17", password="s3cret/with:odd@chars%") -> Project:
    project = Project(public_id="0123456789ab", name="demo", postgres_version=version, api_flavour=api, db_port=6201, api_port=7201)
    project.db_password = password
    project.jwt_secret = "j" * 48
    return project


def test_stack_objects_are_named_and_labelled_by_project_id():
    spec = stack_spec(make_project())
    assert spec.network == "project_0123456789ab_net"
    assert spec.volume == "project_0123456789ab_data"
    assert spec.db.name == "project_0123456789ab_db"
    assert spec.api.name == "project_0123456789ab_api"
    assert spec.labels[MANAGED_LABEL] == "true" and spec.labels[PROJECT_LABEL] == "0123456789ab"
    assert spec.db.labels[SERVICE_LABEL] == "db" and spec.api.labels[SERVICE_LABEL] == "api"


def test_db_container_follows_the_postgres_image_contract(settings):
    settings.BERTH_POSTGRES_IMAGES = {"15": "offline/postgres:15", "17": "offline/postgres:17"}
    spec = stack_spec(make_project(version="15"))
    assert spec.db.image == "offline/postgres:15"
    assert spec.db.environment["POSTGRES_USER"] == "app"
    assert spec.db.environment["POSTGRES_DB"] == "app"
    assert spec.db.environment["POSTGRES_PASSWORD"] == "s3cret/with:odd@chars%"
    # The data volume is mounted exactly at PGDATA, or the image's VOLUME leaves an anonymous one.
    assert spec.db.volume_mount == spec.db.environment["PGDATA"] == "/var/lib/postgresql/data"
    assert spec.db.container_port == 5432 and spec.db.host_port == 6201
    assert spec.db.healthcheck.test[:2] == ["CMD", "pg_isready"]
    assert spec.db.command[0] == "postgres" and "shared_buffers=16MB" in spec.db.command


def test_postgres_settings_are_overridable(settings):
    settings.BERTH_POSTGRES_SETTINGS = {"shared_buffers": "128MB"}
    command = stack_spec(make_project()).db.command
    assert "shared_buffers=128MB" in command and "shared_buffers=16MB" not in command


def test_containers_publish_on_the_publish_host_with_memory_limits(settings):
    settings.BERTH_PUBLISH_HOST = "127.0.0.1"
    settings.BERTH_DB_MEMORY, settings.BERTH_API_MEMORY = "300m", "100m"
    spec = stack_spec(make_project())
    assert spec.db.publish_host == spec.api.publish_host == "127.0.0.1"
    assert (spec.db.mem_limit, spec.api.mem_limit) == ("300m", "100m")


def test_postgrest_flavour_is_configured_through_its_environment(settings):
    settings.BERTH_POSTGREST_IMAGE = "postgrest/postgrest:v12.2.8"
    spec = stack_spec(make_project(api="postgrest"))
    env = spec.api.environment
    assert spec.api.image == "postgrest/postgrest:v12.2.8"
    assert spec.api.command is None
    assert env["PGRST_DB_SCHEMAS"] == "public"
    assert env["PGRST_DB_ANON_ROLE"] == "anon"
    assert env["PGRST_JWT_SECRET"] == "j" * 48
    assert spec.api.container_port == 3000 and spec.api.host_port == 7201
    # The anon role is created in the new database, and DDL tells PostgREST to reload.
    assert "CREATE ROLE anon" in spec.db_probe.bootstrap_sql
    assert "NOTIFY pgrst, 'reload schema'" in spec.db_probe.bootstrap_sql


def test_postgrest_reaches_the_db_by_name_with_a_percent_encoded_password():
    uri = urlsplit(stack_spec(make_project()).api.environment["PGRST_DB_URI"])
    assert uri.hostname == "project_0123456789ab_db" and uri.port == 5432
    assert "/" not in uri.password and "@" not in uri.password and ":" not in uri.password
    assert unquote(uri.password) == "s3cret/with:odd@chars%"
    assert uri.path == "/app"


def test_postgraphile_flavour_passes_cli_options_as_the_command(settings):
    settings.BERTH_POSTGRAPHILE_IMAGE = "offline/postgraphile:4"
    spec = stack_spec(make_project(api="postgraphile"))
    command = spec.api.command
    assert spec.api.image == "offline/postgraphile:4"
    assert spec.api.environment == {}
    assert command[command.index("--host") + 1] == "0.0.0.0"
    assert command[command.index("--port") + 1] == "5000" and spec.api.container_port == 5000
    assert command[command.index("--schema") + 1] == "public"
    assert "--watch" in command and "--retry-on-init-fail" in command
    uri = urlsplit(command[command.index("--connection") + 1])
    assert uri.hostname == "project_0123456789ab_db"
    assert unquote(uri.password) == "s3cret/with:odd@chars%"
    assert spec.api_probe.path == "/graphql" and spec.api_probe.method == "POST"
    assert "pgrst" not in spec.db_probe.bootstrap_sql


@pytest.mark.parametrize("publish, probe", [("127.0.0.1", "127.0.0.1"), ("0.0.0.0", "127.0.0.1")])
def test_readiness_probes_go_to_loopback_when_published_on_all_interfaces(settings, publish, probe):
    settings.BERTH_PUBLISH_HOST = publish
    assert stack_spec(make_project()).db_probe.host == probe
