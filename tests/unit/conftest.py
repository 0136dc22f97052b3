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
def fake_runtime():
    runtime = FakeRuntime()
    use_runtime(runtime)
    yield runtime
    use_runtime(None)
