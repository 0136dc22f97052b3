"""The JSON API v1 contract: every status code the README promises, with FakeRuntime."""

import json

import pytest

from projects.models import ApiToken, Operation, Project
from tests.conftest import bearer


@pytest.fixture
def queued_only(settings):
    """Tasks are recorded but not run, so answers show the transitional state."""
    settings.TASKS = {"default": {"BACKEND": "django.tasks.backends.dummy.DummyBackend"}}


def post(client, path, body=None, headers=None, raw=None):
    data = raw if raw is not None else json.dumps(body or {})
    return client.post(path, data=data, content_type="application/json", **(headers or {}))


def create(client, headers, **body) -> dict:
    response = post(client, "/v1/projects?wait=5", body, headers)
    assert response.status_code == 201, response.content
    return response.json()


def test_create_answers_202_provisioning_with_urls_and_the_operation(client, user, queued_only, settings):
    settings.BERTH_PUBLIC_HOST = "db.example.test"
    response = post(client, "/v1/projects", {"name": "shop", "postgres_version": "15", "api": "postgraphile"}, bearer(user))
    assert response.status_code == 202
    body = response.json()
    assert body["status"] == "provisioning" and body["name"] == "shop"
    assert (body["postgres_version"], body["api"]) == ("15", "postgraphile")
    project = Project.objects.get(public_id=body["project_id"])
    assert body["api_url"] == f"http://db.example.test:{project.api_port}"
    assert body["db_url"] == f"postgresql://app:{project.db_password}@db.example.test:{project.db_port}/app"
    assert body["operation"]["kind"] == "create" and body["operation"]["state"] == "queued"


def test_create_with_wait_answers_201_with_the_settled_project(client, user):
    body = create(client, bearer(user), name="waited")
    assert body["status"] == "running" and body["operation"]["state"] == "succeeded"


def test_create_accepts_an_empty_body(client, user, settings):
    response = client.post("/v1/projects", data="", content_type="application/json", **bearer(user))
    assert response.status_code == 202
    assert response.json()["postgres_version"] == settings.BERTH_DEFAULT_POSTGRES_VERSION


@pytest.mark.parametrize(
    "raw, field",
    [
        ("{not json", "body"),
        ("[1, 2]", "body"),
        (json.dumps({"postgres_version": "8"}), "postgres_version"),
        (json.dumps({"api": "grpc"}), "api"),
        (json.dumps({"name": 42}), "name"),
        (json.dumps({"colour": "blue"}), "colour"),
    ],
)
def test_bad_input_is_400_naming_the_field_and_creates_nothing(client, user, raw, field):
    response = post(client, "/v1/projects", headers=bearer(user), raw=raw)
    assert response.status_code == 400
    assert response.json()["error"]["field"] == field
    assert field in response.json()["error"]["message"]
    assert Project.objects.count() == 0


@pytest.mark.parametrize(
    "name, why",
    [
        ("", "must not be empty"),
        ("   ", "must not be empty"),
        ("x" * 64, "at most 63 characters"),
        ("bell\x07", "(found U+0007)"),
        ("\x1b[31mred", "(found U+001B)"),
        ("two\nlines", "(found U+000A)"),
        ("gpj\u202eexe", "(found U+202E)"),
        ("\u2066isolated", "(found U+2066)"),
    ],
)
def test_a_name_berth_will_not_store_is_400_invalid_and_creates_nothing(client, user, name, why):
    response = post(client, "/v1/projects", {"name": name}, bearer(user))
    error = response.json()["error"]
    assert response.status_code == 400 and (error["code"], error["field"]) == ("invalid", "name")
    assert why in error["message"]
    assert not Project.objects.exists() and not Operation.objects.exists()


def test_a_name_is_stored_trimmed(client, user):
    assert create(client, bearer(user), name="  shop \t")["name"] == "shop"
    assert create(client, bearer(user), name=f" {'x' * 63} ")["name"] == "x" * 63  # the limit counts the trimmed name


def test_a_name_the_owner_already_uses_is_400_name_taken_and_creates_nothing(client, user):
    headers = bearer(user)
    create(client, headers, name="shop")
    for name in ("shop", " shop "):
        response = post(client, "/v1/projects", {"name": name}, headers)
        error = response.json()["error"]
        assert response.status_code == 400 and (error["code"], error["field"]) == ("name_taken", "name")
        assert "already have a project called 'shop'" in error["message"]
    assert Project.objects.count() == Operation.objects.count() == 1


def test_a_deleted_project_keeps_its_name_until_it_is_purged(client, user):
    headers = bearer(user)
    pid = create(client, headers, name="shop")["project_id"]
    client.delete(f"/v1/projects/{pid}?wait=5", **headers)
    assert post(client, "/v1/projects", {"name": "shop"}, headers).json()["error"]["code"] == "name_taken"
    post(client, f"/v1/projects/{pid}/purge?wait=5", {"confirm": pid}, headers)
    assert create(client, headers, name="shop")["name"] == "shop"


def test_another_owner_may_use_the_same_name(client, user, other_user):
    create(client, bearer(user), name="shop")
    assert create(client, bearer(other_user), name="shop")["name"] == "shop"


def test_a_project_without_a_name_gets_a_generated_one_each_time(client, user):
    headers = bearer(user)
    first, second = create(client, headers), create(client, headers, name=None)
    assert first["name"] == f"project-{first['project_id']}" and second["name"] == f"project-{second['project_id']}"


@pytest.mark.parametrize("wait", ["-1", "121", "soon", "²", "１", "٣"])
def test_a_bad_wait_is_400_and_creates_nothing(client, user, wait):
    response = post(client, f"/v1/projects?wait={wait}", headers=bearer(user))
    assert response.status_code == 400 and response.json()["error"]["field"] == "wait"
    assert Project.objects.count() == 0


@pytest.mark.parametrize(
    "raw, field",
    [
        ('{"name": "\\ud800"}', "name"),
        ('{"name": "shop", "\\udfff": 1}', "body"),
        ('{"name": ' + "[" * 1_000 + "]" * 1_000 + "}", "body"),
        ('{"name": ' + "[" * 100_000 + "]" * 100_000 + "}", "body"),
    ],
)
def test_a_body_the_database_cannot_store_is_400_naming_the_problem_and_creates_nothing(client, user, raw, field):
    response = post(client, "/v1/projects", headers=bearer(user), raw=raw)
    assert response.status_code == 400 and response["Content-Type"] == "application/json"
    assert response.json()["error"]["field"] == field
    assert Project.objects.count() == 0


def test_a_body_over_the_size_limit_is_a_json_413_and_creates_nothing(client, user, settings):
    raw = json.dumps({"name": "x" * (10 * 1024 * 1024)})
    response = post(client, "/v1/projects", headers=bearer(user), raw=raw)
    assert response.status_code == 413 and response["Content-Type"] == "application/json"
    error = response.json()["error"]
    assert (error["code"], error["field"]) == ("too_large", "body")
    assert f"larger than {settings.DATA_UPLOAD_MAX_MEMORY_SIZE} bytes" in error["message"]
    assert Project.objects.count() == 0


@pytest.mark.parametrize("name", ["limit", "offset"])
@pytest.mark.parametrize("raw", ["²", "１", "٣", "9" * 5000])
def test_a_list_page_takes_only_ascii_digits(client, user, name, raw):
    response = client.get("/v1/projects", {name: raw}, **bearer(user))
    assert response.status_code == 400 and response.json()["error"]["field"] == name


def test_a_query_with_more_parameters_than_django_parses_is_a_json_400(client, user, settings):
    query = "&".join(f"p{i}=1" for i in range(settings.DATA_UPLOAD_MAX_NUMBER_FIELDS + 1))
    response = client.get(f"/v1/projects?{query}", **bearer(user))
    assert response.status_code == 400 and response.json()["error"]["field"] == "query"


@pytest.mark.parametrize("header", [None, "Bearer", "Bearer not-a-token", "Token abc", "Basic YTpi"])
def test_no_or_bad_token_is_401_everywhere(client, db, header):
    headers = {"HTTP_AUTHORIZATION": header} if header else {}
    for method, path in [("get", "/v1/projects"), ("post", "/v1/projects"), ("get", "/v1/projects/abc"), ("get", "/v1/nope")]:
        response = getattr(client, method)(path, **headers)
        assert response.status_code == 401, path
        assert response.json()["error"]["code"] == "unauthenticated"


def test_a_session_login_is_not_a_token(client, user):
    client.force_login(user)
    assert client.get("/v1/projects").status_code == 401


def test_a_token_of_a_deactivated_user_is_401(client, user):
    headers = bearer(user)
    user.is_active = False
    user.save()
    assert client.get("/v1/projects", **headers).status_code == 401


def test_using_a_token_records_last_used(client, user):
    headers = bearer(user)
    client.get("/v1/projects", **headers)
    assert ApiToken.objects.get(user=user).last_used_at is not None


def test_list_shows_own_projects_and_staff_all(client, user, other_user, staff):
    mine = create(client, bearer(user), name="mine")
    theirs = create(client, bearer(other_user), name="theirs")
    listed = client.get("/v1/projects", **bearer(user)).json()["projects"]
    assert [p["project_id"] for p in listed] == [mine["project_id"]]
    everything = client.get("/v1/projects", **bearer(staff)).json()["projects"]
    assert {p["project_id"] for p in everything} == {mine["project_id"], theirs["project_id"]}


def test_staff_see_other_owners_db_url_with_the_password_masked(client, user, staff):
    mine = create(client, bearer(user))
    seen = client.get(f"/v1/projects/{mine['project_id']}", **bearer(staff)).json()
    assert ":********@" in seen["db_url"] and Project.objects.get(public_id=mine["project_id"]).db_password not in seen["db_url"]


def test_deleted_projects_are_listed_only_on_request(client, user):
    headers = bearer(user)
    project = create(client, headers)
    assert client.delete(f"/v1/projects/{project['project_id']}?wait=5", **headers).json()["status"] == "deleted"
    assert client.get("/v1/projects", **headers).json()["projects"] == []
    listed = client.get("/v1/projects?include_deleted=1", **headers).json()["projects"]
    assert [p["status"] for p in listed] == ["deleted"]


def test_get_shows_status_health_and_the_deletion_clock(client, user):
    headers = bearer(user)
    project = create(client, headers)
    body = client.get(f"/v1/projects/{project['project_id']}", **headers).json()
    assert {"status", "health", "observed_at", "deleted_at", "purge_after"} <= set(body)
    assert body["health"] == "healthy"


def test_unknown_or_someone_elses_project_is_404(client, user, other_user):
    theirs = create(client, bearer(other_user))
    headers = bearer(user)
    for path in ["/v1/projects/000000000000", f"/v1/projects/{theirs['project_id']}"]:
        assert client.get(path, **headers).status_code == 404
        assert post(client, f"{path}/stop", headers=headers).status_code == 404
        assert client.delete(path, **headers).status_code == 404
        assert client.get(f"{path}/operations", **headers).status_code == 404
    operation = theirs["operation"]["operation_id"]
    assert client.get(f"/v1/operations/{operation}", **headers).status_code == 404
    assert client.get("/v1/nothing/here", **headers).status_code == 404


@pytest.mark.parametrize(
    "method, path",
    [("put", "/v1/projects"), ("delete", "/v1/projects"), ("post", "/v1/projects/{id}"), ("get", "/v1/projects/{id}/stop"),
     ("post", "/v1/projects/{id}/operations"), ("delete", "/v1/operations/{op}")],
)  # fmt: skip
def test_wrong_methods_are_405_with_allow(client, user, method, path):
    headers = bearer(user)
    project = create(client, headers)
    url = path.format(id=project["project_id"], op=project["operation"]["operation_id"])
    response = getattr(client, method)(url, **headers)
    assert response.status_code == 405 and response.json()["error"]["code"] == "method_not_allowed"
    assert response["Allow"]


def test_actions_answer_202_with_the_transitional_status(client, user, queued_only):
    headers = bearer(user)
    project = post(client, "/v1/projects", {}, headers).json()
    Project.objects.filter(public_id=project["project_id"]).update(status="running")
    Operation.objects.filter(state="queued").update(state="succeeded")
    response = post(client, f"/v1/projects/{project['project_id']}/stop", headers=headers)
    assert response.status_code == 202
    assert response.json()["status"] == "stopping" and response.json()["operation"]["kind"] == "stop"


def test_an_action_while_one_is_in_flight_is_409_naming_it(client, user, queued_only):
    headers = bearer(user)
    project = post(client, "/v1/projects", {}, headers).json()
    Project.objects.filter(public_id=project["project_id"]).update(status="running")
    response = client.delete(f"/v1/projects/{project['project_id']}", **headers)
    assert response.status_code == 409
    error = response.json()["error"]
    assert error["code"] == "operation_in_flight"
    assert error["operation"]["operation_id"] == project["operation"]["operation_id"]


def test_an_action_the_status_refuses_is_409(client, user):
    headers = bearer(user)
    project = create(client, headers)
    response = post(client, f"/v1/projects/{project['project_id']}/restore", headers=headers)
    assert response.status_code == 409 and response.json()["error"]["code"] == "wrong_state"
    assert "cannot restore a project that is running" in response.json()["error"]["message"]


def test_the_full_lifecycle_with_wait_answers_200_with_settled_states(client, user):
    headers = bearer(user)
    pid = create(client, headers)["project_id"]
    steps = [
        ("post", f"/v1/projects/{pid}/stop", None, "stopped"),
        ("post", f"/v1/projects/{pid}/start", None, "running"),
        ("delete", f"/v1/projects/{pid}", None, "deleted"),
        ("post", f"/v1/projects/{pid}/restore", None, "stopped"),
        ("delete", f"/v1/projects/{pid}", None, "deleted"),
        ("post", f"/v1/projects/{pid}/purge", {"confirm": pid}, "purged"),
    ]
    for method, path, body, status in steps:
        if method == "delete":
            response = client.delete(f"{path}?wait=5", **headers)
        else:
            response = post(client, f"{path}?wait=5", body, headers)
        assert (response.status_code, response.json()["status"]) == (200, status), path
    operations = client.get(f"/v1/projects/{pid}/operations", **headers).json()["operations"]
    assert [op["kind"] for op in operations] == ["purge", "delete", "restore", "delete", "start", "stop", "create"]
    one = client.get(f"/v1/operations/{operations[0]['operation_id']}", **headers)
    assert one.status_code == 200 and one.json()["state"] == "succeeded"


def test_purge_without_the_confirmation_is_400_and_keeps_the_project(client, user):
    headers = bearer(user)
    pid = create(client, headers)["project_id"]
    client.delete(f"/v1/projects/{pid}?wait=5", **headers)
    for body in [{}, {"confirm": "yes"}, {"confirm": 1}]:
        response = post(client, f"/v1/projects/{pid}/purge", body, headers)
        assert response.status_code == 400 and response.json()["error"]["field"] == "confirm"
    assert Project.objects.get(public_id=pid).status == "deleted"


def test_purge_of_a_live_project_is_409_and_queues_nothing(client, user, fake_runtime):
    headers = bearer(user)
    pid = create(client, headers)["project_id"]
    operations, calls = list(Operation.objects.values_list("pk", "state")), dict(fake_runtime.calls)
    response = post(client, f"/v1/projects/{pid}/purge", {"confirm": pid}, headers)
    assert response.status_code == 409 and response.json()["error"]["code"] == "wrong_state"
    assert list(Operation.objects.values_list("pk", "state")) == operations
    assert dict(fake_runtime.calls) == calls
    assert Project.objects.get(public_id=pid).status == "running"


def test_an_exhausted_port_range_is_a_clear_error(client, user, settings):
    settings.BERTH_DB_PORTS, settings.BERTH_API_PORTS = (16950, 16950), (17950, 17950)
    headers = bearer(user)
    create(client, headers)
    response = post(client, "/v1/projects", {}, headers)
    assert response.status_code == 503 and response.json()["error"]["code"] == "ports_exhausted"


def test_a_project_being_restored_is_listed_with_the_live_ones(client, user, queued_only):
    headers = bearer(user)
    pid = post(client, "/v1/projects", {}, headers).json()["project_id"]
    Operation.objects.filter(state="queued").update(state="succeeded")
    Project.objects.filter(public_id=pid).update(status="deleted", deleted_at="2026-01-01T00:00:00Z")
    assert client.get("/v1/projects", **headers).json()["projects"] == []
    post(client, f"/v1/projects/{pid}/restore", headers=headers)
    assert [p["status"] for p in client.get("/v1/projects", **headers).json()["projects"]] == ["restoring"]


def test_the_list_is_paginated_newest_first_with_a_next_link(client, user):
    headers = bearer(user)
    ids = [create(client, headers)["project_id"] for _ in range(5)]
    first = client.get("/v1/projects?limit=2", **headers).json()
    assert [p["project_id"] for p in first["projects"]] == ids[::-1][:2]
    assert first["next"] == "http://testserver/v1/projects?limit=2&offset=2"
    second = client.get(first["next"], **headers).json()
    assert [p["project_id"] for p in second["projects"]] == ids[::-1][2:4]
    last = client.get(second["next"], **headers).json()
    assert [p["project_id"] for p in last["projects"]] == ids[:1] and last["next"] is None


def test_the_next_link_is_https_when_berth_is_served_over_https(client, user, settings):
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")  # what BERTH_HTTPS=1 sets
    headers = bearer(user)
    for _ in range(2):
        create(client, headers)
    page = client.get("/v1/projects?limit=1", HTTP_HOST="testserver", HTTP_X_FORWARDED_PROTO="https", **headers).json()
    assert page["next"] == "https://testserver/v1/projects?limit=1&offset=1"


def test_the_list_keeps_its_filter_across_pages(client, user):
    headers = bearer(user)
    for _ in range(3):
        client.delete(f"/v1/projects/{create(client, headers)['project_id']}?wait=5", **headers)
    first = client.get("/v1/projects?include_deleted=1&limit=2", **headers).json()
    assert "include_deleted=1" in first["next"]
    assert len(client.get(first["next"], **headers).json()["projects"]) == 1


@pytest.mark.parametrize("query", ["limit=0", "limit=1001", "limit=x", "offset=-1"])
def test_a_bad_page_is_400_naming_the_parameter(client, user, query):
    response = client.get(f"/v1/projects?{query}", **bearer(user))
    assert response.status_code == 400 and response.json()["error"]["field"] == query.split("=")[0]


@pytest.mark.parametrize("body, field", [({"name": "a\x00b"}, "name"), ({"from_backup": "\x00"}, "from_backup"), ({"name": ["\x00"]}, "name")])
def test_a_nul_character_anywhere_in_a_body_is_400_naming_the_field(client, user, body, field):
    # PostgreSQL cannot store NUL: refused before any query, on every database.
    response = post(client, "/v1/projects", body, bearer(user))
    assert response.status_code == 400 and response.json()["error"]["field"] == field
    assert Project.objects.count() == 0


@pytest.mark.parametrize("path", ["/v1/projects/%00", "/v1/projects/%00/stop", "/v1/operations/%00", "/v1/backups/%00/verify",
                                  "/v1/projects/ABCDEF012345", "/v1/projects/0123456789abc"])  # fmt: skip
def test_an_id_that_is_not_twelve_hex_characters_is_404_without_a_query(client, user, path, django_assert_max_num_queries):
    headers = bearer(user)
    method = client.post if path.endswith(("stop", "verify")) else client.get
    with django_assert_max_num_queries(2):  # the token's lookup and its last-used stamp, nothing about the id
        response = method(path, **headers)
    assert response.status_code == 404


class TestProjectMetrics:
    def test_it_answers_every_series_over_the_range_with_the_step(self, client, user):
        from projects.services.fleet.metrics import SERIES, metrics_sample

        project = create(client, bearer(user), name="m")
        metrics_sample()
        response = client.get(f"/v1/projects/{project['project_id']}/metrics?range=1h", **bearer(user))
        assert response.status_code == 200
        body = response.json()
        assert body["range"] == "1h" and body["step_seconds"] == 30 and set(body["series"]) == set(SERIES)
        [[at, memory]] = body["series"]["memory_bytes"]
        assert isinstance(at, int) and memory > 0

    @pytest.mark.parametrize("range_name", ["24h", "7d"])
    def test_it_takes_the_longer_ranges(self, client, user, range_name):
        project = create(client, bearer(user), name="m")
        response = client.get(f"/v1/projects/{project['project_id']}/metrics?range={range_name}", **bearer(user))
        assert response.status_code == 200 and response.json()["range"] == range_name

    def test_a_bad_range_is_400_naming_the_field(self, client, user):
        project = create(client, bearer(user), name="m")
        response = client.get(f"/v1/projects/{project['project_id']}/metrics?range=2d", **bearer(user))
        assert response.status_code == 400 and response.json()["error"]["field"] == "range"

    def test_another_users_project_is_404_and_staff_see_it(self, client, user, other_user, staff):
        project = create(client, bearer(user), name="m")
        assert client.get(f"/v1/projects/{project['project_id']}/metrics", **bearer(other_user)).status_code == 404
        assert client.get(f"/v1/projects/{project['project_id']}/metrics", **bearer(staff)).status_code == 200

    def test_without_a_token_it_is_401(self, client, user):
        project = create(client, bearer(user), name="m")
        assert client.get(f"/v1/projects/{project['project_id']}/metrics").status_code == 401


# --- PATCH /v1/projects/{id} and POST …/rotate (services/settings/requests.py) ------------------


def patch(client, path, body, headers):
    return client.patch(path, data=json.dumps(body), content_type="application/json", **headers)


def test_patch_changes_settings_and_answers_the_project_with_its_reconfigure(client, user):
    headers = bearer(user)
    project = create(client, headers)
    response = patch(client, f"/v1/projects/{project['project_id']}?wait=5", {"postgres_settings": {"work_mem": "8MB"}, "name": "n2"}, headers)
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["postgres_settings"] == {"work_mem": "8MB"} and body["name"] == "n2" and not body["pending_restart"]
    assert body["operation"]["kind"] == "reconfigure" and body["operation"]["state"] == "succeeded"


def test_patch_of_a_restart_setting_says_pending_restart_and_queues_nothing(client, user):
    headers = bearer(user)
    project = create(client, headers)
    response = patch(client, f"/v1/projects/{project['project_id']}", {"postgres_settings": {"max_connections": "60"}, "db_memory": "1g"}, headers)
    assert response.status_code == 200
    body = response.json()
    assert body["pending_restart"] and body["db_memory"] == "1g" and "operation" not in body
    again = patch(client, f"/v1/projects/{project['project_id']}?wait=5", {"restart": True}, headers).json()
    assert again["operation"]["kind"] == "restart" and not again["pending_restart"] and again["status"] == "running"


@pytest.mark.parametrize(
    "body, field",
    [({"colour": "red"}, "colour"), ({"postgres_settings": {"fsync": "off"}}, "postgres_settings"), ({"restart": 1}, "restart"),
     ({"db_memory": "huge"}, "db_memory"), ({"postgres_settings": {"timezone": "Mars/Olympus"}}, "postgres_settings")],
)  # fmt: skip
def test_patch_with_a_bad_field_is_400_naming_it_and_changes_nothing(client, user, body, field):
    headers = bearer(user)
    project = create(client, headers)
    before = client.get(f"/v1/projects/{project['project_id']}", **headers).json()
    response = patch(client, f"/v1/projects/{project['project_id']}", body, headers)
    assert response.status_code == 400 and response.json()["error"]["field"] == field
    assert client.get(f"/v1/projects/{project['project_id']}", **headers).json() == before


def test_patch_and_rotate_with_a_read_only_token_are_403(client, user):
    from projects.services.accounts.tokens import api_token_create

    project = create(client, bearer(user))
    _, raw = api_token_create(user=user, name="ro", read_only=True)
    headers = {"HTTP_AUTHORIZATION": f"Bearer {raw}"}
    assert patch(client, f"/v1/projects/{project['project_id']}", {"name": "x"}, headers).json()["error"]["code"] == "read_only_token"
    assert post(client, f"/v1/projects/{project['project_id']}/rotate", {"what": "keys"}, headers).status_code == 403
    assert Project.objects.get(public_id=project["project_id"]).name == project["name"]


def test_patch_and_rotate_of_another_users_project_are_404_and_403_for_staff_without_the_permission(client, user, other_user, staff):
    project = create(client, bearer(user))
    path = f"/v1/projects/{project['project_id']}"
    assert patch(client, path, {"name": "x"}, bearer(other_user)).status_code == 404
    assert post(client, f"{path}/rotate", {"what": "keys"}, bearer(other_user)).status_code == 404
    response = patch(client, path, {"db_memory": "1g"}, bearer(staff))
    assert response.status_code == 403 and response.json()["error"]["code"] == "forbidden"
    assert post(client, f"{path}/rotate", {"what": "password"}, bearer(staff)).status_code == 403
    assert Project.objects.get(public_id=project["project_id"]).db_memory == project["db_memory"]


def test_rotate_answers_the_owner_with_the_new_db_url_and_keys(client, user):
    headers = bearer(user)
    project = create(client, headers)
    password = post(client, f"/v1/projects/{project['project_id']}/rotate?wait=5", {"what": "password"}, headers).json()
    assert password["operation"]["kind"] == "rotate_password" and password["operation"]["state"] == "succeeded"
    assert password["db_url"] != project["db_url"] and password["anon_key"] == project["anon_key"]
    keys = post(client, f"/v1/projects/{project['project_id']}/rotate?wait=5", {"what": "keys"}, headers).json()
    assert keys["anon_key"] != project["anon_key"] and keys["service_key"] != project["service_key"]
    assert keys["db_url"] == password["db_url"]


@pytest.mark.parametrize("body", [{}, {"what": "everything"}, {"what": "keys", "now": True}])
def test_rotate_with_a_bad_body_is_400(client, user, body):
    headers = bearer(user)
    project = create(client, headers)
    response = post(client, f"/v1/projects/{project['project_id']}/rotate", body, headers)
    assert response.status_code == 400
    assert client.get(f"/v1/projects/{project['project_id']}", **headers).json()["anon_key"] == project["anon_key"]


def test_patch_while_an_operation_is_in_flight_is_409_naming_it(client, user, queued_only):
    headers = bearer(user)
    project = post(client, "/v1/projects", {}, headers).json()
    Project.objects.filter(public_id=project["project_id"]).update(status="running")
    response = patch(client, f"/v1/projects/{project['project_id']}", {"postgres_settings": {"work_mem": "8MB"}}, headers)
    assert response.status_code == 409 and response.json()["error"]["code"] == "operation_in_flight"
    assert Project.objects.get(public_id=project["project_id"]).postgres_settings == {}
