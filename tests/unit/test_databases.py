"""Every database on a project's server (issue 26): listed from the metrics pass on the project's answer and page, and
named on a backup's answer, its restore confirmation and its download."""

from projects.models import Backup, Project
from projects.runtime.base import DbStats
from projects.services.backups import requests as backups
from projects.services.fleet.metrics import metrics_sample
from tests.conftest import bearer
from tests.factories import project_made

TWO = (("app", 9_000_000), ("ledger", 8_000_000))


def test_the_metrics_pass_lists_each_database_with_its_size_on_the_answer_and_the_page(user, client, fake_runtime):
    project = project_made(user)
    assert client.get(f"/v1/projects/{project.public_id}", **bearer(user)).json()["databases"] == []  # not sampled yet
    fake_runtime.db_stats[project.public_id] = DbStats(17_000_000, 3, 40, 1, 0, 1, 1, TWO)
    metrics_sample()
    answer = client.get(f"/v1/projects/{project.public_id}", **bearer(user)).json()
    assert answer["databases"] == [{"name": "app", "size_bytes": 9_000_000}, {"name": "ledger", "size_bytes": 8_000_000}]
    client.force_login(user)
    page = client.get(f"/projects/{project.public_id}").content.decode()
    assert "<code>ledger</code>" in page and "every backup holds them all" in page


def test_a_backup_says_which_databases_it_holds_and_a_tar_downloads_as_one(user, client, fake_runtime):
    project = project_made(user)
    made = Backup.objects.get(pk=backups.project_backup(project=project, requested_by=user).backup_id)
    answer = client.get(f"/v1/backups/{made.public_id}", **bearer(user)).json()
    assert answer["databases"] == ["app"]  # one archive: the project's own database
    client.force_login(user)
    assert client.get(f"/backups/{made.public_id}/download")["Content-Disposition"].endswith('.dump"')

    Backup.objects.filter(pk=made.pk).update(databases=["app", "ledger"])  # as a dump of a server with two makes it
    assert client.get(f"/v1/backups/{made.public_id}", **bearer(user)).json()["databases"] == ["app", "ledger"]
    assert client.get(f"/backups/{made.public_id}/download")["Content-Disposition"].endswith('.tar"')
    section = client.get(f"/projects/{project.public_id}/backups").content.decode()
    assert "databases: app, ledger" in section and "is kept as it is" in section


def test_a_backup_without_a_file_holds_no_database(user):
    project: Project = project_made(user)
    assert Backup(project=project).held_databases == []
