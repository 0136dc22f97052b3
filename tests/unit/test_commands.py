"""The maintenance commands: create_api_token, purge_deleted, up's argument checks, rotate_secrets."""

import base64
import json
import re
import secrets
import subprocess
import sys
import time
from datetime import timedelta
from io import StringIO
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from django.core.management import CommandError, call_command
from django.utils import timezone

from projects.models import Project
from projects.services.lifecycle import requests as lifecycle

ROOT = Path(__file__).resolve().parents[2]


def test_create_api_token_prints_the_token_alone_and_it_authenticates(client, user):
    out = StringIO()
    call_command("create_api_token", user.username, stdout=out)
    token = out.getvalue().strip()
    assert "\n" not in token and token.startswith("berth_")
    assert client.get("/v1/projects", HTTP_AUTHORIZATION=f"Bearer {token}").status_code == 200


def test_create_api_token_for_an_unknown_user_is_a_clear_error(db):
    with pytest.raises(CommandError, match="no user 'nobody'"):
        call_command("create_api_token", "nobody")


def test_purge_deleted_purges_only_projects_past_their_retention(user):
    due, kept, live = (Project.objects.get(pk=lifecycle.project_create(owner=user).project_id) for _ in range(3))
    for project in (due, kept):
        lifecycle.project_delete(project=project)
    Project.objects.filter(pk=due.pk).update(purge_after=timezone.now() - timedelta(minutes=1))
    out = StringIO()
    call_command("purge_deleted", stdout=out)
    statuses = {p.pk: p.status for p in Project.objects.all()}
    assert (statuses[due.pk], statuses[kept.pk], statuses[live.pk]) == ("purged", "deleted", "running")
    assert "1 purge(s) queued" in out.getvalue()


@pytest.mark.parametrize("bind", ["8000", "localhost", "127.0.0.1:http"])
def test_up_refuses_a_bind_that_is_not_host_and_port(db, bind):
    with pytest.raises(CommandError, match="--bind must be HOST:PORT"):
        call_command("up", "--bind", bind)


def test_up_refuses_to_run_beside_another_up_with_the_same_data_directory(db):
    from projects.management.commands.up import Command

    held = Command()._lock("web")
    try:
        with pytest.raises(CommandError, match=r"another `manage.py up` \(pid \d+\) runs the web"):
            call_command("up", "--no-worker")
    finally:
        held.close()


def test_up_stops_what_a_killed_up_left_running_and_only_that(settings):
    import json
    import subprocess
    import sys

    from projects.management.commands.up import Command, _children_file, _process_started

    survivor = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], start_new_session=True)
    bystander = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], start_new_session=True)
    try:
        started = _process_started(survivor.pid)
        # The bystander's pid with another start time: a pid reused since, never ours to stop.
        children = [[survivor.pid, started], [bystander.pid, _process_started(bystander.pid) + 1]]
        _children_file("workers").write_text(json.dumps({"up": 1, "children": children}))
        err = StringIO()
        Command(stderr=err)._stop_survivors("workers")
        assert survivor.wait(timeout=5) is not None
        assert bystander.poll() is None
        assert "left 1 process(es) of the workers running: stopping them" in err.getvalue()
        assert not _children_file("workers").exists()
    finally:
        for process in (survivor, bystander):
            process.kill()
            process.wait()


def manage(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "manage.py"), *args], env=env, cwd=ROOT, capture_output=True, text=True, timeout=120)


# --- secrets at rest -----------------------------------------------------------------------------


def test_rotate_secrets_re_encrypts_every_row_with_the_new_key_and_keeps_the_values(user, settings, capsys):
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    settings.BERTH_SECRETS_KEYS = [old]
    projects = [Project.objects.get(pk=lifecycle.project_create(owner=user, name=f"r{n}").project_id) for n in range(3)]
    values = {p.pk: (p.db_password, p.jwt_secret) for p in projects}

    settings.BERTH_SECRETS_KEYS = [new, old]
    call_command("rotate_secrets")

    assert "3 project(s) checked, 3 re-encrypted" in capsys.readouterr().out
    settings.BERTH_SECRETS_KEYS = [new]  # the old key is gone: every row must still open
    for project in Project.objects.all():
        assert (project.db_password, project.jwt_secret) == values[project.pk]
        Fernet(new.encode()).decrypt(project.db_password_encrypted.encode())


def test_rotate_secrets_without_the_old_key_changes_nothing_and_says_what_to_add(user, settings):
    settings.BERTH_SECRETS_KEYS = [Fernet.generate_key().decode()]
    project = Project.objects.get(pk=lifecycle.project_create(owner=user, name="r").project_id)
    before = project.db_password_encrypted
    settings.BERTH_SECRETS_KEYS = [Fernet.generate_key().decode()]
    with pytest.raises(CommandError, match="cannot be decrypted with any key"):
        call_command("rotate_secrets")
    project.refresh_from_db()
    assert project.db_password_encrypted == before


def test_the_derived_key_printed_is_the_one_an_install_without_a_key_uses(user, settings, capsys):
    settings.BERTH_SECRETS_KEYS = []
    project = Project.objects.get(pk=lifecycle.project_create(owner=user, name="r").project_id)
    call_command("rotate_secrets", "--print-derived-key")
    derived = capsys.readouterr().out.strip()
    settings.BERTH_SECRETS_KEYS = [Fernet.generate_key().decode(), derived]
    call_command("rotate_secrets")
    settings.BERTH_SECRETS_KEYS = settings.BERTH_SECRETS_KEYS[:1]
    project.refresh_from_db()
    assert len(project.db_password) >= 24


def test_rotate_secrets_help_prints_the_steps_it_promises():
    from projects.management.commands.rotate_secrets import Command

    text = Command().create_parser("manage.py", "rotate_secrets").format_help()
    assert "(the steps are below)" in text
    # Numbered and on lines of their own, as in RELIABILITY.md, not folded into one paragraph.
    for step in ("\n1. `manage.py rotate_secrets --generate-key`", "\n2. Put it first", "\n3. `manage.py rotate_secrets`", "\n4. Drop OLD"):
        assert step in text


def test_generate_key_prints_a_usable_fernet_key(capsys):
    call_command("rotate_secrets", "--generate-key")
    key = capsys.readouterr().out.strip().encode()
    assert len(base64.urlsafe_b64decode(key)) == 32  # Fernet's 256-bit key, url-safe base64
    assert Fernet(key).decrypt(Fernet(key).encrypt(b"a secret")) == b"a secret"
