import dataclasses
import secrets

import pytest

from projects.models import Project
from projects.runtime.fake import FakeRuntime
from projects.stack.spec import stack_spec
from tests.runtime_contract import RuntimeContract

# The spec reads the installation id (berth.install) from Berth's database.
pytestmark = pytest.mark.django_db


def spec_for_new_project(db_port: int, api_port: int, api_image: str | None = None):
    project = Project(public_id=secrets.token_hex(6), name="contract", postgres_version="17", api_flavour="postgraphile",
                      db_port=db_port, api_port=api_port)  # fmt: skip
    project.db_password = secrets.token_urlsafe(16)
    project.jwt_secret = secrets.token_urlsafe(48)
    project.admin_password = secrets.token_urlsafe(16)
    project.authenticator_password = secrets.token_urlsafe(16)
    spec = stack_spec(project)
    if api_image:
        spec = dataclasses.replace(spec, api=dataclasses.replace(spec.api, image=api_image))
    return spec


class TestFakeRuntime(RuntimeContract):
    @pytest.fixture
    def runtime(self):
        return FakeRuntime(images={"postgres:17", "postgres:15", "graphile/postgraphile:4", "postgrest/postgrest:v12.2.8"})

    @pytest.fixture
    def make_spec(self):
        ports = iter(range(100))
        return lambda api_image=None: spec_for_new_project(6200 + next(ports), 7200 + next(ports), api_image)

    @pytest.fixture
    def hold_port(self, runtime):
        return runtime.taken_ports.add
