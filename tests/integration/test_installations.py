"""Two Berths on one engine: each sees only its own objects (issue 15, item 10).

Both installations here share the engine and one test database; "becoming"
the other is changing the installation row and the projects it knows.
"""

import dataclasses

import pytest

from projects.models import Installation, Project, installation_id
from projects.runtime import get_runtime
from projects.runtime.base import INSTALL_LABEL
from projects.stack.spec import stack_spec
from projects.services.backups.schedule import backups_settle_orphans
from projects.services.fleet.drift import drift_report
from projects.services.ports import project_insert_with_ports
from projects.services.fleet.watcher import projects_sync

pytestmark = [pytest.mark.integration, pytest.mark.django_db]


def stopped_project(owner, *, labelled: bool = True) -> Project:
    """A project whose stack exists on the engine, created but never started (cheap).

    `labelled=False` makes it as a Berth from before installation labels did.
    """
    project = Project(owner=owner, name="twin", postgres_version="17", api_flavour="postgraphile", status=Project.Status.STOPPED)
    project.db_password, project.jwt_secret = "pw-twin-0123456789", "j" * 48
    project.admin_password, project.authenticator_password = "pw-admin-0123456789", "pw-auth-0123456789"  # what project_create sets
    project_insert_with_ports(project)
    spec = stack_spec(project)
    if not labelled:

        def unlabelled(labels: dict[str, str]) -> dict[str, str]:
            return {k: v for k, v in labels.items() if k != INSTALL_LABEL}

        spec = dataclasses.replace(
            spec,
            labels=unlabelled(spec.labels),
            db=dataclasses.replace(spec.db, labels=unlabelled(spec.db.labels)),
            api=dataclasses.replace(spec.api, labels=unlabelled(spec.api.labels)),
        )
    get_runtime().stack_up(spec, start=False)
    return project


def become(install_id: str) -> None:
    Installation.objects.update(install_id=install_id)


def test_two_installations_on_one_engine_never_see_each_others_objects(user, docker_engine):
    first = installation_id()
    theirs = stopped_project(user)
    labels = docker_engine.containers.get(f"project_{theirs.public_id}_db").labels
    assert labels[INSTALL_LABEL] == first
    assert docker_engine.networks.get(f"project_{theirs.public_id}_net").attrs["Labels"][INSTALL_LABEL] == first

    # Now the second Berth: it has never heard of the first one's project.
    Project.objects.filter(pk=theirs.pk).delete()
    become("5ec0nd0ne000")
    ours = stopped_project(user)

    report = drift_report()
    assert report.engine_error == ""
    assert not [e for e in report.entries if theirs.public_id in e.subject], report.entries
    assert report.entries == [], report.entries
    assert projects_sync().drift == []
    cleaned = backups_settle_orphans()
    assert cleaned.engine_error == "" and cleaned.cleaned == []
    # Nothing of the first Berth's was touched.
    assert docker_engine.containers.get(f"project_{theirs.public_id}_db").status == "created"
    assert Project.objects.get(pk=ours.pk).public_id == ours.public_id


def test_unlabelled_objects_of_this_installations_project_are_adopted_not_orphans(user, docker_engine):
    """Objects made before installations were labelled belong to the Berth that has their project."""
    project = stopped_project(user, labelled=False)
    assert INSTALL_LABEL not in docker_engine.containers.get(f"project_{project.public_id}_db").labels

    assert drift_report().entries == []
    assert projects_sync().drift == []
