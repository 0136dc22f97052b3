"""The maintenance commands: create_api_token, purge_deleted, up's argument checks."""

from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from projects.models import Project
from projects.services import lifecycle


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
