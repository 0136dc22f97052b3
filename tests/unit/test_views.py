"""The dashboard's project views, against FakeRuntime with tasks run inline.

Each view is pinned for a full page and for its HTMX partial, for who may see
it, for the methods it refuses, and for the errors it shows in place.
"""

import json

import pytest
from django.utils import timezone

from projects.keys import project_keys
from projects.models import Operation, Project
from projects.runtime import RuntimeFailure, RuntimeUnavailable
from projects import views
from projects.services.lifecycle import requests as lifecycle
from projects.services.errors import InvalidInput

S = Project.Status
HTMX = {"HX-Request": "true"}


def make_project(owner, name: str = "shop", **fields) -> Project:
    """A project created through the service (so it settles running), then put in `fields`' state."""
    project = lifecycle.project_create(owner=owner, name=name).project
    if fields:
        Project.objects.filter(pk=project.pk).update(**fields)
        project.refresh_from_db()
    return project


def is_full_page(response) -> bool:
    return b"<html" in response.content and b"</html>" in response.content


@pytest.fixture
def signed_in(client, user):
    client.force_login(user)
    return client


@pytest.fixture
def project(user):
    return make_project(user)


# --- signing in -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "method, path",
    [
        ("get", "/"),
        ("get", "/projects/new"),
        ("post", "/projects/new"),
        ("get", "/projects/{id}"),
        ("get", "/projects/{id}/row"),
        ("get", "/projects/{id}/logs"),
        ("post", "/projects/{id}/reveal"),
        ("post", "/projects/{id}/stop"),
        ("get", "/tokens"),
        ("post", "/tokens"),
    ],
)
def test_every_page_sends_a_stranger_to_sign_in(client, project, method, path):
    url = path.format(id=project.public_id)
    response = getattr(client, method)(url)
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/?next=")
    project.refresh_from_db()
    assert project.status == S.RUNNING  # a stranger's POST changed nothing


def test_signing_in_with_the_login_form_lands_on_the_projects(client, user):
    page = client.get("/accounts/login/")
    assert page.status_code == 200 and b'name="username"' in page.content and b"csrfmiddlewaretoken" in page.content
    response = client.post("/accounts/login/", {"username": "alice", "password": "alice-password-1"})
    assert (response.status_code, response["Location"]) == (302, "/")
    assert client.get("/").status_code == 200


def test_a_wrong_password_re_renders_the_login_form_with_an_error(client, user):
    response = client.post("/accounts/login/", {"username": "alice", "password": "nope"})
    assert response.status_code == 200
    assert b"enter a correct username and password" in response.content


# --- the projects list ------------------------------------------------------------------------


def test_list_shows_only_the_users_own_projects(signed_in, user, other_user):
    make_project(user, "mine")
    make_project(other_user, "theirs")
    response = signed_in.get("/")
    assert response.status_code == 200 and is_full_page(response)
    assert b"mine" in response.content and b"theirs" not in response.content


def test_staff_see_every_project_with_its_owner(client, staff, user, other_user):
    make_project(user, "alices-db")
    make_project(other_user, "bobs-db")
    client.force_login(staff)
    content = client.get("/").content.decode()
    assert "alices-db" in content and "bobs-db" in content
    assert ">Owner</th>" in content and '<td data-label="Owner">bob</td>' in content


def test_list_row_shows_name_id_badges_version_flavour_and_created(signed_in, project):
    content = signed_in.get("/").content.decode()
    assert f"/projects/{project.public_id}" in content and project.public_id in content
    assert 'class="badge status status-running"' in content and 'class="badge health health-healthy"' in content
    assert f'<td data-label="PostgreSQL">{project.postgres_version}</td>' in content
    assert f'<td data-label="API">{project.get_api_flavour_display()}</td>' in content
    assert project.created_at.strftime("%Y-%m-%d") in content


def test_htmx_list_request_gets_only_the_projects_partial(signed_in, project):
    response = signed_in.get("/?deleted=1", headers=HTMX)
    assert response.status_code == 200 and not is_full_page(response)
    assert response.content.decode().lstrip().startswith('<section id="projects"')
    assert project.name.encode() in response.content
    assert "HX-Request" in response["Vary"]


def test_deleted_projects_show_only_with_the_filter(signed_in, user):
    make_project(user, "alive")
    make_project(user, "gone", status=S.DELETED, deleted_at=timezone.now())
    default = signed_in.get("/").content
    assert b"alive" in default and b"gone" not in default
    filtered = signed_in.get("/?deleted=1").content
    assert b"alive" in filtered and b"gone" in filtered


def test_only_rows_of_changing_projects_poll(signed_in, user):
    settled = make_project(user, "settled")
    changing = make_project(user, "changing", status=S.STOPPING)
    content = signed_in.get("/").content.decode()
    assert content.count('hx-trigger="every 2s"') == 1
    assert f'hx-get="/projects/{changing.public_id}/row"' in content
    assert f'hx-get="/projects/{settled.public_id}/row"' not in content


def test_the_list_is_paginated(signed_in, user):
    from tests.unit.test_views_queries import make_projects

    make_projects(user, 51)
    first = signed_in.get("/").content.decode()
    assert first.count('<tr id="project-') == 50 and "Page 1 of 2" in first and "?page=2" in first
    second = signed_in.get("/?page=2").content.decode()
    assert second.count('<tr id="project-') == 1


@pytest.mark.parametrize("method", ["post", "put", "delete"])
def test_the_list_accepts_only_get(signed_in, method):
    assert getattr(signed_in, method)("/").status_code == 405


# --- one row, polled ----------------------------------------------------------------------------


def test_a_changing_row_keeps_polling(signed_in, user):
    changing = make_project(user, "changing", status=S.STARTING)
    response = signed_in.get(f"/projects/{changing.public_id}/row", headers=HTMX)
    assert response.status_code == 200
    content = response.content.decode()
    assert content.lstrip().startswith(f'<tr id="project-{changing.public_id}"') and 'hx-trigger="every 2s"' in content


def test_a_settled_row_is_sent_once_more_and_stops_the_polling(signed_in, project):
    response = signed_in.get(f"/projects/{project.public_id}/row", headers=HTMX)
    assert response.status_code == 286  # HttpResponseStopPolling
    assert b"status-running" in response.content and b"every 2s" not in response.content


def test_the_row_without_htmx_goes_to_the_project_page(signed_in, project):
    response = signed_in.get(f"/projects/{project.public_id}/row")
    assert (response.status_code, response["Location"]) == (302, f"/projects/{project.public_id}")


def test_another_users_row_is_not_found(signed_in, other_user):
    theirs = make_project(other_user, "theirs")
    assert signed_in.get(f"/projects/{theirs.public_id}/row", headers=HTMX).status_code == 404


# --- create -------------------------------------------------------------------------------------


def test_create_form_full_page_and_partial(signed_in):
    page = signed_in.get("/projects/new")
    assert page.status_code == 200 and is_full_page(page)
    partial = signed_in.get("/projects/new", headers=HTMX)
    assert partial.status_code == 200 and not is_full_page(partial)
    assert partial.content.decode().lstrip().startswith('<form id="create-form"')


def test_create_offers_the_configured_postgres_versions_and_flavours(signed_in, settings):
    settings.BERTH_POSTGRES_IMAGES = {"14": "postgres:14", "16": "postgres:16"}
    settings.BERTH_DEFAULT_POSTGRES_VERSION = "16"
    content = signed_in.get("/projects/new").content.decode()
    assert '<option value="16" selected>PostgreSQL 16</option>' in content
    assert '<option value="14">PostgreSQL 14</option>' in content and 'value="17"' not in content
    assert 'value="postgrest"' in content and 'value="postgraphile"' in content


def test_creating_a_project_lands_on_its_page(signed_in, user):
    response = signed_in.post("/projects/new", {"name": "shop", "postgres_version": "15", "api": "postgraphile"})
    project = Project.objects.get(owner=user)
    assert (response.status_code, response["Location"]) == (302, f"/projects/{project.public_id}")
    assert (project.name, project.postgres_version, project.api_flavour) == ("shop", "15", "postgraphile")
    assert project.operations.get().requested_by == user


def test_creating_with_htmx_redirects_the_browser_to_the_project(signed_in, user):
    response = signed_in.post("/projects/new", {"name": "shop", "postgres_version": "17", "api": "postgrest"}, headers=HTMX)
    project = Project.objects.get(owner=user)
    assert response.status_code == 200 and response["HX-Redirect"] == f"/projects/{project.public_id}"


@pytest.mark.parametrize(
    "data, field, message",
    [
        ({"name": "", "postgres_version": "17", "api": "postgrest"}, "name", "This field is required."),
        ({"name": "   ", "postgres_version": "17", "api": "postgrest"}, "name", "This field is required."),
        ({"name": "x" * 64, "postgres_version": "17", "api": "postgrest"}, "name", "at most 63 characters"),
        ({"name": "\x1b[31mred", "postgres_version": "17", "api": "postgrest"}, "name", "(found U+001B)"),
        ({"name": "gpj\u202eexe", "postgres_version": "17", "api": "postgrest"}, "name", "(found U+202E)"),
        ({"name": "shop", "postgres_version": "9", "api": "postgrest"}, "postgres_version", "Select a valid choice"),
        ({"name": "shop", "postgres_version": "17", "api": "mysql"}, "api", "Select a valid choice"),
    ],
)
def test_invalid_input_re_renders_the_form_with_the_field_error(signed_in, data, field, message):
    for headers, full in (({}, True), (HTMX, False)):
        response = signed_in.post("/projects/new", data, headers=headers)
        assert response.status_code == 422 and is_full_page(response) is full
        assert message in response.content.decode()
        assert field in response.context["form"].errors
    assert not Project.objects.exists()


def test_a_name_the_owner_already_uses_is_a_form_error_and_creates_nothing(signed_in, user):
    make_project(user, "shop")
    for headers in ({}, HTMX):
        response = signed_in.post("/projects/new", {"name": " shop ", "postgres_version": "17", "api": "postgrest"}, headers=headers)
        assert response.status_code == 422 and "already have a project called" in response.content.decode()
        assert "name" in response.context["form"].errors
    assert Project.objects.count() == 1


def test_running_out_of_ports_is_a_form_error_not_a_crash(signed_in, user, settings):
    port = make_project(user, "first").db_port
    settings.BERTH_DB_PORTS = (port, port)
    response = signed_in.post("/projects/new", {"name": "second", "postgres_version": "17", "api": "postgrest"})
    # PortsExhausted's own status, as the API and the dashboard's actions answer it.
    assert response.status_code == 503
    assert "no free port left in BERTH_DB_PORTS" in response.content.decode()
    assert Project.objects.count() == 1


@pytest.mark.parametrize("headers", [{}, HTMX])
def test_an_unreachable_engine_refuses_the_create_and_reserves_nothing(signed_in, fake_runtime, headers):
    fake_runtime.fail_with("ping", RuntimeUnavailable("Docker Engine unreachable at unix:///var/run/docker.sock: gone"))
    response = signed_in.post("/projects/new", {"name": "shop", "postgres_version": "17", "api": "postgrest"}, headers=headers)
    assert response.status_code == 503
    assert "Nothing was changed: the Docker Engine cannot be reached" in response.content.decode()
    assert not Project.objects.exists() and not Operation.objects.exists()


@pytest.mark.parametrize("method", ["put", "delete", "patch"])
def test_create_refuses_other_methods(signed_in, method):
    assert getattr(signed_in, method)("/projects/new").status_code == 405


# --- the project page ---------------------------------------------------------------------------


def test_project_page_shows_status_urls_commands_containers_and_logs(signed_in, project):
    response = signed_in.get(f"/projects/{project.public_id}")
    assert response.status_code == 200 and is_full_page(response)
    content = response.content.decode()
    assert "status-running" in content and "health-healthy" in content
    assert f'value="{project.api_url}"' in content
    assert f'value="{project.db_url(reveal=False)}"' in content
    # psql asks for the password itself; curl is ready for the flavour.
    assert f"psql &#x27;postgresql://app@localhost:{project.db_port}/app?sslmode=verify-full&amp;sslrootcert=berth-ca.pem&#x27;" in content
    assert 'href="/v1/ca.pem" download="berth-ca.pem"' in content
    # curl sends the anon key, a variable until the keys are revealed.
    assert f"curl -s -H &quot;Authorization: Bearer $ANON_KEY&quot; {project.api_url}/" in content
    assert f"project_{project.public_id}_db" in content and f"project_{project.public_id}_api" in content
    assert f"project_{project.public_id}_db log line" in content  # the FakeRuntime's logs
    assert 'data-copy="#db-url"' in content and 'data-copy="#api-url"' in content


def test_the_password_is_absent_from_the_page_until_revealed(signed_in, project):
    password = project.db_password
    page = signed_in.get(f"/projects/{project.public_id}").content.decode()
    assert password not in page and project.db_password_encrypted not in page
    assert project_keys(project)["service_key"] not in page
    assert "Reveal password and keys" in page


def test_revealing_shows_the_password_to_the_owner(signed_in, project):
    response = signed_in.post(f"/projects/{project.public_id}/reveal")
    assert response.status_code == 200 and is_full_page(response)
    content = response.content.decode()
    assert project.db_password in content and f'value="{project.db_url()}"' in content
    keys = project_keys(project)
    assert f'value="{keys["anon_key"]}"' in content and f'value="{keys["service_key"]}"' in content
    assert 'data-copy="#anon-key"' in content and 'data-copy="#service-key"' in content
    assert f"curl -s -H &#x27;Authorization: Bearer {keys['anon_key']}&#x27; {project.api_url}/" in content
    assert response["Cache-Control"] == "no-store"


def test_revealing_with_htmx_returns_the_connection_partial(signed_in, project):
    response = signed_in.post(f"/projects/{project.public_id}/reveal", headers=HTMX)
    assert response.status_code == 200 and not is_full_page(response)
    content = response.content.decode()
    assert content.lstrip().startswith('<section id="connection"') and project.db_password in content


def test_reveal_is_a_post_only(signed_in, project):
    response = signed_in.get(f"/projects/{project.public_id}/reveal")
    assert response.status_code == 405
    assert project.db_password not in response.content.decode()


def test_staff_see_another_users_project_but_never_its_password(client, staff, project):
    client.force_login(staff)
    page = client.get(f"/projects/{project.public_id}")
    assert page.status_code == 200
    content = page.content.decode()
    keys = project_keys(project)
    assert project.db_password not in content and "Reveal password" not in content
    assert keys["anon_key"] not in content and keys["service_key"] not in content
    assert "Only the project's owner can see the password and the keys." in content
    reveal = client.post(f"/projects/{project.public_id}/reveal")
    assert reveal.status_code == 403 and project.db_password not in reveal.content.decode()
    assert keys["service_key"] not in reveal.content.decode()


@pytest.mark.parametrize("suffix", ["", "/logs"])
def test_another_users_project_is_not_found(signed_in, other_user, suffix):
    theirs = make_project(other_user, "theirs")
    assert signed_in.get(f"/projects/{theirs.public_id}{suffix}").status_code == 404
    assert signed_in.post(f"/projects/{theirs.public_id}/reveal").status_code == 404


def test_an_unknown_project_is_not_found(signed_in):
    assert signed_in.get("/projects/000000000000").status_code == 404


@pytest.mark.parametrize("method", ["post", "put", "delete"])
def test_the_project_page_accepts_only_get(signed_in, project, method):
    assert getattr(signed_in, method)(f"/projects/{project.public_id}").status_code == 405


def test_htmx_poll_of_a_changing_project_returns_the_panel_and_keeps_polling(signed_in, user):
    changing = make_project(user, "changing", status=S.PROVISIONING)
    response = signed_in.get(f"/projects/{changing.public_id}", headers=HTMX)
    assert response.status_code == 200 and not is_full_page(response)
    content = response.content.decode()
    assert content.lstrip().startswith('<section id="panel"') and 'hx-trigger="every 2s"' in content
    assert "status-provisioning" in content


def test_htmx_poll_of_a_settled_project_stops_polling(signed_in, project):
    response = signed_in.get(f"/projects/{project.public_id}", headers=HTMX)
    assert response.status_code == 286
    assert b"status-running" in response.content and b"every 2s" not in response.content


def test_the_settled_answer_to_a_poll_tells_the_other_sections(signed_in, project):
    # Backups, logs and connection listen for it (hx-trigger="settled from:body").
    response = signed_in.get(f"/projects/{project.public_id}", headers=HTMX)
    assert response.status_code == 286 and json.loads(response["HX-Trigger"]) == {"settled": {}}


def test_a_poll_of_a_changing_project_tells_nothing_yet(signed_in, user):
    changing = make_project(user, "changing", status=S.STARTING)
    assert "HX-Trigger" not in signed_in.get(f"/projects/{changing.public_id}", headers=HTMX)


def test_an_action_that_settled_before_the_answer_tells_the_other_sections(signed_in, project):
    # Tasks run inline here, as on a fast engine: no poll would follow to say it.
    response = signed_in.post(f"/projects/{project.public_id}/stop", headers=HTMX)
    assert response.status_code == 200 and json.loads(response["HX-Trigger"]) == {"settled": {}}


def test_a_refused_action_tells_nothing(signed_in, project):
    response = signed_in.post(f"/projects/{project.public_id}/restore", headers=HTMX)
    assert response.status_code == 409 and "HX-Trigger" not in response


def test_the_sections_that_depend_on_the_state_listen_for_the_settled_event(signed_in, user):
    changing = make_project(user, "changing", status=S.PROVISIONING)
    content = signed_in.get(f"/projects/{changing.public_id}").content.decode()
    logs = f'<section id="logs" class="card" aria-labelledby="logs-title" hx-get="/projects/{changing.public_id}/logs" hx-trigger="settled from:body"'
    connection = f'<section id="connection" class="card" aria-labelledby="connection-title" hx-get="/projects/{changing.public_id}" hx-trigger="settled from:body"'
    assert logs in content and connection in content
    backups = signed_in.get(f"/projects/{changing.public_id}/backups", headers=HTMX).content.decode()
    assert 'hx-trigger="settled from:body"' in backups


def test_the_connection_section_asks_for_itself_and_gets_itself(signed_in, project):
    response = signed_in.get(f"/projects/{project.public_id}", headers={**HTMX, "HX-Target": "connection"})
    content = response.content.decode()
    assert response.status_code == 200 and content.lstrip().startswith('<section id="connection"')
    assert f'value="{project.api_url}"' in content and "HX-Trigger" not in response


def test_the_head_asks_for_itself_when_the_project_settles_or_changes_and_gets_what_it_is_now(signed_in, project):
    page = signed_in.get(f"/projects/{project.public_id}").content.decode()
    assert f'<div id="head" class="page-head" hx-get="/projects/{project.public_id}" hx-trigger="settled from:body, changed from:body"' in page
    # A retry with the other version, an upgrade or a move changes what the head says.
    other = "15" if project.postgres_version != "15" else "17"
    Project.objects.filter(pk=project.pk).update(postgres_version=other)
    response = signed_in.get(f"/projects/{project.public_id}", headers={**HTMX, "HX-Target": "head"})
    content = response.content.decode()
    assert response.status_code == 200 and content.lstrip().startswith('<div id="head"')
    assert f"PostgreSQL {other}" in content and 'id="panel"' not in content and "HX-Trigger" not in response


def test_a_revealed_password_is_not_replaced_when_the_project_settles(signed_in, project):
    content = signed_in.post(f"/projects/{project.public_id}/reveal", headers=HTMX).content.decode()
    assert project.db_password in content and "settled from:body" not in content


def test_containers_not_made_yet_are_pending_while_the_project_comes_up(signed_in, user, fake_runtime):
    coming = make_project(user, "coming", status=S.PROVISIONING, health=Project.Health.MISSING, observed_at=timezone.now())
    del fake_runtime.containers_by_name[f"project_{coming.public_id}_api"]
    content = signed_in.get(f"/projects/{coming.public_id}").content.decode()
    assert 'class="badge engine-pending">pending' in content and "engine-missing" not in content
    assert "health-missing" not in content and ">Starting</span>" in content


@pytest.mark.parametrize("health", ["unhealthy", "down", "missing"])
@pytest.mark.parametrize("status", [S.PROVISIONING, S.STARTING])
def test_the_health_badge_says_starting_on_the_way_up(signed_in, user, status, health):
    coming = make_project(user, "coming", status=status, health=health, observed_at=timezone.now())
    for page in (f"/projects/{coming.public_id}", "/"):
        content = signed_in.get(page).content.decode()
        assert 'class="badge health health-pending"' in content and ">Starting</span>" in content
        assert f"health-{health}" not in content


def test_a_never_observed_project_coming_up_is_starting_not_unknown(signed_in, user):
    coming = make_project(user, "coming", status=S.PROVISIONING, health=Project.Health.UNKNOWN, observed_at=None)
    assert ">Starting</span>" in signed_in.get(f"/projects/{coming.public_id}").content.decode()


def test_a_settled_project_shows_its_alarming_health_as_it_is(signed_in, user):
    failing = make_project(user, "failing", health=Project.Health.UNHEALTHY)
    content = signed_in.get(f"/projects/{failing.public_id}").content.decode()
    assert 'class="badge health health-unhealthy"' in content and ">Unhealthy</span>" in content


def test_a_deleted_projects_stack_is_removed_keeping_its_volume(signed_in, project):
    signed_in.post(f"/projects/{project.public_id}/delete", {"confirm": "shop"})
    project.refresh_from_db()
    assert project.status == S.DELETED
    content = signed_in.get(f"/projects/{project.public_id}").content.decode()
    assert '<span class="badge engine-removed">removed</span>' in content and "(kept: data volume)" in content
    assert 'class="badge health health-removed"' in content
    assert "engine-missing" not in content and "health-missing" not in content and ">Missing<" not in content
    assert "The containers were removed with the project, and their logs with them." in content


def test_logs_of_containers_not_made_yet_say_they_come_when_it_settles(signed_in, user, fake_runtime):
    coming = make_project(user, "coming", status=S.PROVISIONING)
    for service in ("db", "api"):
        del fake_runtime.containers_by_name[f"project_{coming.public_id}_{service}"]
    content = signed_in.get(f"/projects/{coming.public_id}/logs", headers=HTMX).content.decode()
    assert "Nothing yet: this section is read again when the project settles." in content
    assert "(no output)" not in content


def test_a_settled_project_page_does_not_poll(signed_in, project):
    assert b"every 2s" not in signed_in.get(f"/projects/{project.public_id}").content


def test_operations_timeline_shows_kind_state_who_duration_and_error(signed_in, user, project, fake_runtime):
    fake_runtime.fail_with("stack_stop", RuntimeFailure("stopping project_x_db: the engine refused: boom"))
    lifecycle.project_stop(project=project, requested_by=user)
    content = signed_in.get(f"/projects/{project.public_id}").content.decode()
    assert '<th scope="row">Create</th>' in content and '<th scope="row">Stop</th>' in content
    assert "op-succeeded" in content and "op-failed" in content
    assert '<td data-label="By">alice</td>' in content
    assert " s</td>" in content  # durations
    assert "the engine refused: boom" in content


def test_an_engine_error_reading_containers_is_shown_inline(signed_in, project, fake_runtime):
    fake_runtime.fail_with("stack_state", RuntimeFailure("reading project x: the engine refused: no"))
    fake_runtime.fail_with("container_logs", RuntimeFailure("reading logs: the engine refused: no"))
    response = signed_in.get(f"/projects/{project.public_id}")
    assert response.status_code == 200
    content = response.content.decode()
    assert "Could not ask the engine about the containers: reading project x: the engine refused: no" in content
    assert "Could not read the logs: reading logs: the engine refused: no" in content


def test_a_missing_container_is_shown_as_missing(signed_in, project, fake_runtime):
    del fake_runtime.containers_by_name[f"project_{project.public_id}_api"]
    content = signed_in.get(f"/projects/{project.public_id}").content.decode()
    assert 'class="badge engine-missing">missing' in content


def test_the_page_warns_when_the_database_is_published_to_the_network(signed_in, project, settings):
    warning = "The database is reachable from the network."
    settings.BERTH_PUBLISH_HOST = "127.0.0.1"
    assert warning not in signed_in.get(f"/projects/{project.public_id}").content.decode()
    settings.BERTH_PUBLISH_HOST = "0.0.0.0"
    assert warning in signed_in.get(f"/projects/{project.public_id}").content.decode()


def test_postgraphile_gets_a_graphql_curl_line(signed_in, user):
    project = lifecycle.project_create(owner=user, name="gql", api="postgraphile").project
    content = signed_in.get(f"/projects/{project.public_id}").content.decode()
    assert f"{project.api_url}/graphql" in content and "__typename" in content


# --- logs -----------------------------------------------------------------------------------------


def test_logs_refresh_returns_the_logs_partial(signed_in, project, fake_runtime):
    before = fake_runtime.calls["container_logs"]
    response = signed_in.get(f"/projects/{project.public_id}/logs", headers=HTMX)
    assert response.status_code == 200 and not is_full_page(response)
    content = response.content.decode()
    assert content.lstrip().startswith('<section id="logs"')
    assert f"project_{project.public_id}_api log line" in content
    assert fake_runtime.calls["container_logs"] == before + 2  # db and api


def test_logs_without_htmx_render_the_whole_page(signed_in, project):
    response = signed_in.get(f"/projects/{project.public_id}/logs")
    assert response.status_code == 200 and is_full_page(response)


def test_logs_accept_only_get(signed_in, project):
    assert signed_in.post(f"/projects/{project.public_id}/logs").status_code == 405


# --- actions ------------------------------------------------------------------------------------


def test_stop_without_javascript_redirects_back_to_the_project(signed_in, project):
    response = signed_in.post(f"/projects/{project.public_id}/stop")
    assert (response.status_code, response["Location"]) == (302, f"/projects/{project.public_id}")
    project.refresh_from_db()
    assert project.status == S.STOPPED


def test_actions_with_htmx_return_the_refreshed_panel(signed_in, project):
    response = signed_in.post(f"/projects/{project.public_id}/stop", headers=HTMX)
    assert response.status_code == 200 and not is_full_page(response)
    content = response.content.decode()
    assert content.lstrip().startswith('<section id="panel"') and "status-stopped" in content
    # The buttons now match the new state.
    assert '/start"' in content and '/stop"' not in content and '/restore"' not in content


def test_the_whole_life_through_the_dashboard(signed_in, project, fake_runtime):
    base = f"/projects/{project.public_id}"
    steps = [("stop", {}, S.STOPPED), ("start", {}, S.RUNNING), ("delete", {"confirm": "shop"}, S.DELETED),
             ("restore", {}, S.STOPPED), ("delete", {"confirm": "shop"}, S.DELETED), ("purge", {"confirm": "shop"}, S.PURGED)]  # fmt: skip
    for action, data, status in steps:
        response = signed_in.post(f"{base}/{action}", data, headers=HTMX)
        assert response.status_code == 200, (action, response.content.decode())
        project.refresh_from_db()
        assert project.status == status, action
    assert fake_runtime.calls["stack_purge"] == 1
    assert [op.requested_by.username for op in project.operations.all()] == ["alice"] * 7


def buttons(client, project: Project) -> set[str]:
    content = client.get(f"/projects/{project.public_id}").content.decode()
    return {a for a in ("stop", "start", "delete", "restore", "purge") if f'/{project.public_id}/{a}"' in content}


@pytest.mark.parametrize(
    "fields, expected",
    [
        ({"status": S.RUNNING, "health": "healthy"}, {"stop", "delete"}),
        # Start repairs a running project whose containers went missing or broke.
        ({"status": S.RUNNING, "health": "missing"}, {"stop", "start", "delete"}),
        ({"status": S.STOPPED, "health": "down"}, {"start", "delete"}),
        ({"status": S.STOPPED, "health": "unhealthy"}, {"start", "stop", "delete"}),
        ({"status": S.FAILED}, {"start", "stop", "delete"}),
        ({"status": S.DELETED, "deleted_at": timezone.now()}, {"restore", "purge"}),
        ({"status": S.FAILED, "deleted_at": timezone.now()}, {"delete", "restore", "purge"}),
        ({"status": S.STOPPING}, set()),
        ({"status": S.PROVISIONING}, set()),
        ({"status": S.PURGED, "deleted_at": timezone.now()}, set()),
    ],
)
def test_buttons_match_the_state(signed_in, user, fields, expected):
    assert buttons(signed_in, make_project(user, "p", **fields)) == expected


def test_the_start_button_of_a_running_project_says_repair(signed_in, user):
    project = make_project(user, "p", health="missing")
    content = signed_in.get(f"/projects/{project.public_id}").content.decode()
    assert ">Repair</button>" in content and ">Start</button>" not in content


@pytest.mark.parametrize("action", ["delete", "purge"])
@pytest.mark.parametrize("typed", [None, "", "Shop", "something else"])
def test_delete_and_purge_need_the_projects_name_typed(signed_in, user, action, typed):
    status = S.RUNNING if action == "delete" else S.DELETED
    project = make_project(user, "shop", status=status, deleted_at=timezone.now() if action == "purge" else None)
    data = {} if typed is None else {"confirm": typed}
    response = signed_in.post(f"/projects/{project.public_id}/{action}", data, headers=HTMX)
    assert response.status_code == 422
    assert "type &#x27;shop&#x27; exactly" in response.content.decode() or "This field is required." in response.content.decode()
    project.refresh_from_db()
    assert project.status == status and project.operations.count() == 1  # only the create


def test_a_wrong_state_is_a_409_shown_in_the_panel(signed_in, project):
    response = signed_in.post(f"/projects/{project.public_id}/restore", headers=HTMX)
    assert response.status_code == 409
    content = response.content.decode()
    assert content.lstrip().startswith('<section id="panel"')
    assert 'role="alert"' in content and "cannot restore a project that is running" in content


def test_an_operation_in_flight_is_a_409_shown_in_the_panel(signed_in, project):
    running = Operation.objects.create(project=project, kind="start", state=Operation.State.RUNNING)
    response = signed_in.post(f"/projects/{project.public_id}/stop", headers=HTMX)
    assert response.status_code == 409
    assert f"operation {running.public_id} (start, running) is already in flight" in response.content.decode()


def test_an_error_without_javascript_renders_the_page_with_the_error(signed_in, project):
    response = signed_in.post(f"/projects/{project.public_id}/restore")
    assert response.status_code == 409 and is_full_page(response)
    assert "cannot restore a project that is running" in response.content.decode()


def test_an_input_refusal_from_a_service_is_422_like_any_form_error(signed_in, user, monkeypatch):
    project = make_project(user, "shop", status=S.DELETED, deleted_at=timezone.now())

    def refuse(**kwargs):
        raise InvalidInput("confirm", "must be the project's id")

    monkeypatch.setitem(views.ACTIONS, "purge", refuse)
    response = signed_in.post(f"/projects/{project.public_id}/purge", {"confirm": "shop"}, headers=HTMX)
    assert response.status_code == 422 and "confirm: must be the project&#x27;s id" in response.content.decode()


def test_an_unreachable_engine_refuses_the_action_inline_and_queues_nothing(signed_in, project, fake_runtime):
    fake_runtime.fail_with("ping", RuntimeUnavailable("Docker Engine unreachable at unix:///var/run/docker.sock: gone"))
    response = signed_in.post(f"/projects/{project.public_id}/stop", headers=HTMX)
    assert response.status_code == 503
    assert "the Docker Engine cannot be reached" in response.content.decode()
    project.refresh_from_db()
    assert project.status == S.RUNNING and project.operations.count() == 1


def test_staff_with_the_change_permission_can_act_on_another_users_project(client, staff, project):
    # is_staff alone is not enough (test_tenancy.py): an operator grants the permission.
    from django.contrib.auth.models import Permission

    staff.user_permissions.add(Permission.objects.get(codename="change_project", content_type__app_label="projects"))
    client.force_login(staff)
    client.post(f"/projects/{project.public_id}/stop")
    project.refresh_from_db()
    assert project.status == S.STOPPED and project.operations.first().requested_by == staff


def test_acting_on_another_users_project_is_not_found(signed_in, other_user):
    theirs = make_project(other_user, "theirs")
    assert signed_in.post(f"/projects/{theirs.public_id}/stop").status_code == 404
    theirs.refresh_from_db()
    assert theirs.status == S.RUNNING


@pytest.mark.parametrize("method", ["get", "put", "delete"])
def test_actions_accept_only_post(signed_in, project, method):
    assert getattr(signed_in, method)(f"/projects/{project.public_id}/stop").status_code == 405


def test_an_unknown_action_is_not_found(signed_in, project):
    assert signed_in.post(f"/projects/{project.public_id}/explode").status_code == 404


def test_htmx_posts_carry_the_csrf_token_in_a_header(client, user, project):
    from django.test import Client

    csrf_client = Client(enforce_csrf_checks=True)
    csrf_client.force_login(user)
    page = csrf_client.get(f"/projects/{project.public_id}").content.decode()
    # base.html puts the token on <body hx-headers>, so every HTMX request sends it.
    token = page.split('hx-headers=\'{"X-CSRFToken": "', 1)[1].split('"', 1)[0]
    refused = csrf_client.post(f"/projects/{project.public_id}/stop", headers=HTMX)
    assert refused.status_code == 403
    accepted = csrf_client.post(f"/projects/{project.public_id}/stop", headers={**HTMX, "X-CSRFToken": token})
    assert accepted.status_code == 200


def test_times_read_as_a_person_would_say_them(signed_in, project):
    from datetime import timedelta

    Operation.objects.filter(project=project).update(created_at=timezone.now() - timedelta(hours=3, minutes=5))
    make_project(project.owner, "fresh")
    old_page = signed_in.get(f"/projects/{project.public_id}").content.decode()
    assert "3\xa0hours ago</time>" in old_page
    fresh = Project.objects.get(name="fresh")
    assert "just now</time>" in signed_in.get(f"/projects/{fresh.public_id}").content.decode()


def test_a_poll_after_the_session_ended_sends_the_page_to_sign_in(client, project):
    response = client.get(
        f"/projects/{project.public_id}/row",
        headers={**HTMX, "HX-Current-URL": "http://testserver/?deleted=1"},
    )
    assert response.status_code == 200
    assert response["HX-Redirect"] == "/accounts/login/?next=/%3Fdeleted%3D1"


def test_styles_and_scripts_are_served_from_berth_itself(signed_in):
    import re

    page = signed_in.get("/").content.decode()
    assets = re.findall(r'(?:src|href)="(/static/[^"]+)"', page)
    assert {"/static/css/berth.css", "/static/js/berth.js", "/static/django_htmx/htmx-2.min.js"} <= set(assets)
    assert not re.search(r'(?:src|href)="(?:https?:)?//', page)  # nothing from a CDN
    for asset in assets:
        response = signed_in.get(asset)  # whitenoise, from the finders
        assert response.status_code == 200, asset
        response.close()


def test_htmx_is_configured_to_need_no_inline_style_and_to_log_no_refusal(signed_in):
    import html
    import re

    page = signed_in.get("/").content.decode()
    config = json.loads(html.unescape(re.search(r"<meta name=\"htmx-config\" content='([^']*)'>", page).group(1)))
    # The CSP allows no inline style: no indicator <style>, no style attribute copied while settling.
    assert config["includeIndicatorStyles"] is False and "style" not in config["attributesToSettle"]
    refusals = next(rule for rule in config["responseHandling"] if "422" in rule["code"])
    assert refusals["swap"] is True and refusals["error"] is False  # shown in place, not logged as a failure


def test_the_dashboard_and_the_admin_name_an_icon_berth_serves(signed_in):
    from django.test import Client

    # Without a <link rel="icon"> the browser asks for /favicon.ico, which is a 404.
    icon = '<link rel="icon" href="/static/favicon.svg" type="image/svg+xml">'
    assert icon in signed_in.get("/").content.decode()
    assert icon in Client().get("/admin/login/").content.decode()
    response = signed_in.get("/static/favicon.svg")
    assert response.status_code == 200
    response.close()
