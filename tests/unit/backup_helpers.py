"""What the backup tests share: a project with rows in FakeRuntime, a backup taken, a command that answers as told.

FakeRuntime's `fake_postgres` plays the commands Berth runs in a db
container over `fake_runtime.databases[<volume>]` (table -> rows); tests
replace single commands with `play(...)` to inject failures.
"""

import pytest

from projects.models import Backup, Operation, Project
from projects.runtime.fake import fake_postgres
from projects.services.backups import requests as backups
from projects.services.lifecycle import requests as lifecycle


def create(user, **kwargs) -> Project:
    op = lifecycle.project_create(owner=user, **kwargs)
    return Project.objects.get(pk=op.project_id)


def volume(project: Project) -> str:
    return f"project_{project.public_id}_data"


def backup(project: Project, **kwargs) -> tuple[Operation, Backup]:
    operation = backups.project_backup(project=project, **kwargs)
    operation.refresh_from_db()
    return operation, Backup.objects.get(pk=operation.backup_id)


def play(fake_runtime, program: str, answer, *, only_in: str | None = None) -> None:
    """Make `program` (pg_isready, berth-dump, berth-restore, psql) answer `answer` (or call it), optionally in one container only."""

    def handler(runtime, container, argv, env):
        name = argv[3] if argv[:2] == ["sh", "-c"] else argv[0]
        if name == program and (only_in is None or container == only_in):
            return answer(runtime, container, argv, env) if callable(answer) else answer
        return fake_postgres(runtime, container, argv, env)

    fake_runtime.exec_handler = handler


def backup_files(settings) -> list[str]:
    root = settings.BERTH_BACKUP_DIR
    return sorted(p.name for p in root.rglob("*") if p.is_file()) if root.exists() else []


def scratch_left(fake_runtime) -> list[str]:
    return [c.name for c in fake_runtime.containers_by_name.values() if c.service.startswith("backup-")]


@pytest.fixture
def project(user, fake_runtime):
    project = create(user, name="shop")
    fake_runtime.databases[volume(project)] = {"public.items": 3, "public.orders": 5}
    return project
