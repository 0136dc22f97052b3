"""The projects list scales: a constant number of queries and no engine call per project.

Issue 5 benchmarks it with 10,000 projects; these pin the shape that makes that
possible with 1 and with 50.
"""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from projects.models import Project
from projects.runtime import RuntimeUnavailable

S = Project.Status
# Every status, transitional ones included: their rows poll, but the page that
# renders them must not ask the engine anything about them.
STATUSES = [S.RUNNING, S.PROVISIONING, S.STOPPED, S.STOPPING, S.STARTING, S.FAILED]
# session, user, COUNT(*) for the paginator, one page of projects with their owners,
# the page's activity sparklines (one query for every row's samples).
LIST_QUERIES = 5


def make_projects(owner, count: int) -> list[Project]:
    """`count` projects straight into the database (no service, no engine), in mixed statuses."""
    template = Project(owner=owner, name="t", postgres_version="17", api_flavour="postgrest")
    template.db_password = "not-a-real-password"  # encrypted once: Fernet per row would be slow for nothing
    template.jwt_secret = "not-a-real-secret-" * 3
    start = Project.objects.count()
    projects = [
        Project(
            owner=owner,
            name=f"project-{start + n}",
            postgres_version="17",
            api_flavour="postgrest",
            db_port=20000 + start + n,
            api_port=30000 + start + n,
            status=STATUSES[n % len(STATUSES)],
            db_password_encrypted=template.db_password_encrypted,
            jwt_secret_encrypted=template.jwt_secret_encrypted,
        )
        for n in range(count)
    ]
    return Project.objects.bulk_create(projects)


@pytest.fixture
def signed_in(client, user):
    client.force_login(user)
    # Warm the engine check so the counts below are of queries, not of the first ping.
    client.get("/")
    return client


@pytest.mark.parametrize("count", [1, 50])
def test_the_list_uses_the_same_queries_for_1_and_50_projects(signed_in, user, count, django_assert_num_queries):
    make_projects(user, count)
    with django_assert_num_queries(LIST_QUERIES):
        response = signed_in.get("/")
    assert response.content.decode().count('<tr id="project-') == count


@pytest.mark.parametrize("count", [1, 50])
def test_staff_list_with_owners_uses_the_same_queries(client, staff, user, other_user, count, django_assert_num_queries):
    make_projects(user, count)
    make_projects(other_user, count)
    client.force_login(staff)
    client.get("/")
    # One more than a user's: the warm pool's state, one grouped read whatever its size.
    with django_assert_num_queries(LIST_QUERIES + 1):
        content = client.get("/").content.decode()
    # The newest page, with each row's owner (joined, not fetched per row).
    owners = content.count('<td data-label="Owner">bob</td>') + content.count('<td data-label="Owner">alice</td>')
    assert owners == min(2 * count, 50)


def test_query_count_does_not_grow_with_a_page_of_deleted_projects_either(signed_in, user):
    make_projects(user, 3)
    with CaptureQueriesContext(connection) as few:
        signed_in.get("/?deleted=1")
    make_projects(user, 47)
    with CaptureQueriesContext(connection) as many:
        signed_in.get("/?deleted=1")
    assert len(few) == len(many) == LIST_QUERIES


def test_rendering_the_list_never_asks_the_engine_about_projects(client, user, fake_runtime):
    make_projects(user, 50)
    client.force_login(user)
    for path in ("/", "/?deleted=1", "/?page=2", "/"):
        assert client.get(path).status_code == 200
    # One reachability ping for the banner, cached across the four pages; nothing per project.
    assert dict(fake_runtime.calls) == {"ping": 1}


def test_an_unreachable_engine_shows_the_banner_and_the_list_still_renders(client, user, fake_runtime):
    make_projects(user, 3)
    fake_runtime.fail_with("ping", RuntimeUnavailable("Docker Engine unreachable at unix:///var/run/docker.sock: refused"))
    client.force_login(user)
    response = client.get("/")
    content = response.content.decode()
    assert response.status_code == 200
    assert "The Docker Engine cannot be reached." in content and "refused" in content
    assert content.count('<tr id="project-') == 3


def test_the_banner_is_absent_while_the_engine_answers(client, user):
    client.force_login(user)
    assert "cannot be reached" not in client.get("/").content.decode()


def test_the_engine_is_pinged_at_most_once_per_period(client, user, fake_runtime, monkeypatch):
    from projects.services.fleet import inspect as engine

    clock = [1000.0]
    monkeypatch.setattr(engine.time, "monotonic", lambda: clock[0])
    client.force_login(user)
    client.get("/")
    client.get("/tokens")
    assert fake_runtime.calls["ping"] == 1
    clock[0] += engine.ENGINE_CHECK_S + 1
    client.get("/")
    assert fake_runtime.calls["ping"] == 2


def test_the_banner_shows_on_every_page_of_the_dashboard(client, user, fake_runtime):
    from tests.unit.test_views import make_project

    project = make_project(user)
    fake_runtime.fail_with("*", RuntimeUnavailable("Docker Engine unreachable: refused"))
    client.force_login(user)
    for path in ("/", "/projects/new", f"/projects/{project.public_id}", "/tokens"):
        response = client.get(path)
        assert response.status_code == 200, path
        assert "The Docker Engine cannot be reached." in response.content.decode(), path
    # The project page still renders from the database, and says why it shows no containers.
    page = client.get(f"/projects/{project.public_id}").content.decode()
    assert "status-running" in page and "Docker Engine unreachable: refused" in page


def test_an_engine_lost_while_reading_a_project_turns_the_banner_on_at_once(client, user, fake_runtime):
    from tests.unit.test_views import make_project

    project = make_project(user)
    client.force_login(user)
    assert "cannot be reached" not in client.get("/").content.decode()  # the ping is cached as fine
    fake_runtime.fail_with("stack_state", RuntimeUnavailable("Docker Engine unreachable: gone"))
    page = client.get(f"/projects/{project.public_id}").content.decode()
    assert "The Docker Engine cannot be reached." in page


def test_the_login_page_does_not_ask_the_engine(client, fake_runtime):
    assert client.get("/accounts/login/").status_code == 200
    assert fake_runtime.calls["ping"] == 0
