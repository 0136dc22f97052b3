"""Unit tests: no engine. The FakeRuntime stands in for Docker and tasks run inline."""

import pytest

from projects.runtime import use_runtime
from projects.runtime.fake import FakeRuntime


@pytest.fixture(autouse=True)
def _inline_tasks(settings):
    settings.TASKS = {"default": {"BACKEND": "django.tasks.backends.immediate.ImmediateBackend"}}


@pytest.fixture(autouse=True)
def _backup_dir(settings, tmp_path):
    # Purges take a final backup, even on the FakeRuntime: its files go to the test's own directory.
    settings.BERTH_BACKUP_DIR = tmp_path / "backups"


@pytest.fixture(autouse=True)
def _data_dir(settings, tmp_path):
    # The images `up` recorded on this machine (var/images.json) are no unit test's business.
    settings.DATA_DIR = tmp_path / "data"
    settings.DATA_DIR.mkdir()


@pytest.fixture(autouse=True)
def fake_runtime():
    runtime = FakeRuntime()
    use_runtime(runtime)
    yield runtime
    use_runtime(None)


@pytest.fixture(autouse=True)
def _api_answers_match_the_openapi_document(monkeypatch):
    """Every /v1 answer any unit test gets is checked against projects/openapi.py.

    So the document cannot fall behind the API: a new field, status or endpoint
    without its line in the document fails the test that first meets it.
    """
    from django.test import Client

    from tests.openapi_check import conformance_errors

    original = Client.request

    def request(self, **environ):
        response = original(self, **environ)
        path = environ.get("PATH_INFO", "")
        if path.startswith("/v1/"):
            body = b"" if response.streaming else response.content
            errors = conformance_errors(environ["REQUEST_METHOD"], path, response.status_code, response.get("Content-Type", ""), body)
            assert not errors, "the answer departs from the OpenAPI document (projects/openapi.py):\n" + "\n".join(errors)
        return response

    monkeypatch.setattr(Client, "request", request)


@pytest.fixture
def signed_in(client, user):
    """The test client, signed in to the dashboard as `user`."""
    client.force_login(user)
    return client
