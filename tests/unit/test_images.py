"""Images: the offer `up` records, what it does for each offering, and what the offer changes for a create.

projects/stack/images.py (the offer), projects/services/fleet/images.py (the check
and the build's preconditions), and the create/retry paths that read the offer.
"""

import io
import json

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from projects.management.commands import images as images_command
from projects.models import Operation, Project
from projects.runtime import NotReady
from projects.recipes import own_recipe
from projects.stack.images import offer
from projects.services.fleet import images as image_services
from projects.services.lifecycle import requests as lifecycle
from projects.services.errors import InvalidInput, InvalidTransition
from tests.conftest import bearer

S = Project.Status
ALL_CONFIGURED = {"postgres:15", "postgres:17", "postgrest/postgrest:v12.2.8", "graphile/postgraphile:4"}


@pytest.fixture
def configured(settings):
    settings.BERTH_POSTGRES_IMAGES = {"15": "postgres:15", "17": "postgres:17"}
    settings.BERTH_DEFAULT_POSTGRES_VERSION = "17"
    settings.BERTH_POSTGREST_IMAGE = "postgrest/postgrest:v12.2.8"
    settings.BERTH_POSTGRAPHILE_IMAGE = "graphile/postgraphile:4"
    settings.BERTH_DEFAULT_API = "postgrest"
    settings.BERTH_PULL_IMAGES = True
    settings.BERTH_IMAGES = "auto"


@pytest.fixture
def builds(monkeypatch, fake_runtime):
    """The build of Berth's own images without debootstrap: straight to the runtime's image_build."""
    built = []

    def image_build(*, image, say):
        built.append(image)
        fake_runtime.image_build(image_services.RECIPES, image, buildargs={}, progress=say)
        return 1.0

    monkeypatch.setattr(image_services, "image_build", image_build)
    monkeypatch.setattr(images_command, "image_build", image_build)  # `images build` imported it by name
    return built


def ensure(**kwargs) -> tuple[list[str], object]:
    lines: list[str] = []
    return lines, image_services.images_ensure(say=lines.append, **kwargs)


def test_without_a_record_everything_configured_is_offered_as_configured(configured):
    current = offer()
    assert current.postgres == {"15": "postgres:15", "17": "postgres:17"}
    assert current.api == {"postgrest": "postgrest/postgrest:v12.2.8", "postgraphile": "graphile/postgraphile:4"}
    assert (current.default_postgres_version, current.default_api) == ("17", "postgrest")


def test_present_images_are_used_and_nothing_is_pulled_or_built(configured, fake_runtime, builds):
    fake_runtime.images = set(ALL_CONFIGURED)
    lines, current = ensure()
    assert current.postgres["17"] == "postgres:17" and current.missing == {}
    assert fake_runtime.calls["image_pull"] == 0 and builds == []


def test_a_pullable_image_is_pulled_with_progress(configured, fake_runtime, builds):
    fake_runtime.images = ALL_CONFIGURED - {"postgres:15"}
    fake_runtime.pullable = {"postgres:15"}
    lines, current = ensure()
    assert current.postgres["15"] == "postgres:15"
    assert any("pulled postgres:15" in line for line in lines) and builds == []


def test_what_cannot_be_pulled_is_built_under_berths_own_name_and_offered(configured, fake_runtime, builds):
    fake_runtime.images = set()
    lines, current = ensure()
    assert sorted(builds) == ["berth/postgraphile:4", "berth/postgres:15", "berth/postgres:17"]
    assert current.postgres == {"15": "berth/postgres:15", "17": "berth/postgres:17"}
    assert current.api == {"postgraphile": "berth/postgraphile:4"}
    assert any("building berth/postgres:17 here instead" in line for line in lines)


def test_postgrest_that_cannot_be_had_is_not_offered_and_postgraphile_becomes_the_default(configured, fake_runtime, builds):
    fake_runtime.images = {"postgres:15", "postgres:17", "graphile/postgraphile:4"}
    lines, current = ensure()
    assert "postgrest" not in current.api and "no recipe" in current.missing["api:postgrest"]
    assert current.default_api == "postgraphile"
    assert any(line.startswith("warning: PostgREST is not offered") for line in lines)


def test_with_berth_images_pull_nothing_is_built_and_the_warning_names_the_command(configured, fake_runtime, builds):
    fake_runtime.images = {"postgres:17", "graphile/postgraphile:4"}
    lines, current = ensure(mode="pull")
    assert builds == [] and "15" not in current.postgres
    assert "images build berth/postgres:15" in current.missing["postgres:15"]


def test_a_build_that_is_impossible_here_leaves_the_offering_out_with_the_reason(configured, fake_runtime, monkeypatch):
    fake_runtime.images = {"postgres:17", "graphile/postgraphile:4"}
    monkeypatch.setattr(image_services.os, "geteuid", lambda: 1000)
    lines, current = ensure()
    assert "15" not in current.postgres
    assert "needs root" in current.missing["postgres:15"] and "sudo" in current.missing["postgres:15"]


def test_build_requirements_name_what_to_install(monkeypatch):
    monkeypatch.setattr(image_services.os, "geteuid", lambda: 0)
    monkeypatch.setattr(image_services.shutil, "which", lambda tool: None if tool in {"debootstrap", "npm"} else f"/usr/bin/{tool}")
    assert image_services.build_requirements("berth/postgres:17") == ["debootstrap is missing: apt-get install debootstrap"]
    assert "apt-get install npm" in image_services.build_requirements("berth/postgraphile:4")[-1]
    assert "no recipe" in image_services.build_requirements("postgrest/postgrest:v12.2.8")[0]


def test_only_berths_own_names_have_recipes():
    assert own_recipe("berth/postgres:17").kind == "postgres"
    assert own_recipe("berth/postgres:16") is None  # no Debian release ships 16
    assert own_recipe("postgres:17") is None


def test_the_spec_runs_the_offered_image(configured, fake_runtime, builds, user):
    fake_runtime.images = set()
    ensure()
    project = Project.objects.get(pk=lifecycle.project_create(owner=user, postgres_version="15").project_id)
    assert project.status == S.RUNNING
    assert fake_runtime.containers_by_name[f"project_{project.public_id}_db"].image == "berth/postgres:15"


def test_a_record_that_cannot_be_read_counts_as_no_record(configured, settings):
    (settings.DATA_DIR / "images.json").write_text("{half")
    assert offer().postgres == {"15": "postgres:15", "17": "postgres:17"}


def test_a_version_that_is_not_offered_is_refused_naming_the_field_and_why(configured, fake_runtime, builds, user, client):
    fake_runtime.images = {"postgres:17", "graphile/postgraphile:4"}
    ensure(mode="pull")
    with pytest.raises(InvalidInput) as refused:
        lifecycle.project_create(owner=user, postgres_version="15")
    assert refused.value.field == "postgres_version" and "must be one of 17" in str(refused.value)
    response = client.post("/v1/projects", data=json.dumps({"api": "postgrest"}), content_type="application/json", **bearer(user))
    assert response.status_code == 400 and response.json()["error"]["field"] == "api"
    assert "PostgREST cannot run here" in response.json()["error"]["message"]
    assert not Project.objects.exists()


def test_a_create_without_choices_takes_the_offered_defaults(configured, fake_runtime, builds, user):
    fake_runtime.images = {"postgres:17", "graphile/postgraphile:4"}
    ensure()
    project = Project.objects.get(pk=lifecycle.project_create(owner=user).project_id)
    assert (project.postgres_version, project.api_flavour) == ("17", "postgraphile")


def test_the_create_form_offers_only_what_can_run_and_says_what_cannot(configured, fake_runtime, builds, client, user):
    fake_runtime.images = {"postgres:17", "graphile/postgraphile:4"}
    ensure(mode="pull")
    client.force_login(user)
    html = client.get("/projects/new").content.decode()
    assert 'value="17"' in html and 'value="15"' not in html
    assert 'value="postgraphile"' in html and 'value="postgrest"' not in html
    assert "Not offered on this installation: PostgreSQL 15, PostgREST" in html


def test_the_openapi_document_lists_the_offered_choices(configured, fake_runtime, builds, client):
    fake_runtime.images = {"postgres:17", "graphile/postgraphile:4"}
    ensure(mode="pull")
    body = client.get("/v1/openapi.json").json()
    start = body["paths"]["/v1/projects/{project_id}/start"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert start["properties"]["api"]["enum"] == ["postgraphile", None]
    assert start["properties"]["postgres_version"]["oneOf"][0]["enum"] == ["17"]


# --- retrying a failed create with other choices --------------------------------------


def failed_create(user, fake_runtime, **kwargs) -> Project:
    fake_runtime.fail_with("stack_wait_ready", NotReady("the api container exited: no such image feature"))
    project = Project.objects.get(pk=lifecycle.project_create(owner=user, **kwargs).project_id)
    fake_runtime.heal()
    assert project.status == S.FAILED
    return project


def test_a_failed_creates_error_says_it_can_be_retried_with_other_choices_or_purged(user, fake_runtime):
    project = failed_create(user, fake_runtime)
    error = project.operations.get().error
    assert "another postgres_version or api" in error and f"/v1/projects/{project.public_id}/start" in error
    assert "delete and purge" in error


def test_start_with_another_api_retries_a_failed_create_afresh(client, user, fake_runtime, settings):
    project = failed_create(user, fake_runtime, postgres_version="17", api="postgrest")
    response = client.post(
        f"/v1/projects/{project.public_id}/start?wait=5", data=json.dumps({"api": "postgraphile", "postgres_version": 15}),
        content_type="application/json", **bearer(user),
    )  # fmt: skip
    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["status"], body["api"], body["postgres_version"]) == ("running", "postgraphile", "15")
    # What the failed attempt made (a PostgREST container, a PostgreSQL 17 initdb) went first.
    assert fake_runtime.calls["stack_purge"] == 1
    assert fake_runtime.containers_by_name[f"project_{project.public_id}_api"].image == settings.BERTH_POSTGRAPHILE_IMAGE


def test_a_plain_start_of_a_project_that_ran_purges_nothing(user, fake_runtime):
    project = Project.objects.get(pk=lifecycle.project_create(owner=user).project_id)
    lifecycle.project_start(project=project)
    assert fake_runtime.calls["stack_purge"] == 0


def test_other_choices_are_refused_for_a_project_that_ran(client, user, fake_runtime):
    project = Project.objects.get(pk=lifecycle.project_create(owner=user, api="postgrest").project_id)
    lifecycle.project_stop(project=project)
    response = client.post(
        f"/v1/projects/{project.public_id}/start", data=json.dumps({"api": "postgraphile"}), content_type="application/json", **bearer(user)
    )
    assert response.status_code == 409 and "only a project whose create failed" in response.json()["error"]["message"]
    project.refresh_from_db()
    assert (project.api_flavour, project.status) == ("postgrest", S.STOPPED)
    assert project.operations.count() == 2  # create and stop: nothing queued


@pytest.mark.parametrize(
    "body, field", [({"colour": "blue"}, "colour"), ({"api": 5}, "api"), ({"postgres_version": "9"}, "postgres_version")]
)
def test_a_bad_start_body_is_refused_naming_the_field_and_changes_nothing(client, user, fake_runtime, body, field):
    project = failed_create(user, fake_runtime)
    response = client.post(
        f"/v1/projects/{project.public_id}/start", data=json.dumps(body), content_type="application/json", **bearer(user)
    )
    assert response.status_code == 400 and response.json()["error"]["field"] == field
    project.refresh_from_db()
    assert project.status == S.FAILED and project.operations.count() == 1


def test_the_service_refuses_a_retry_of_a_deleted_project(user, fake_runtime):
    project = failed_create(user, fake_runtime)
    lifecycle.project_delete(project=project)
    project.refresh_from_db()
    with pytest.raises(InvalidTransition):
        lifecycle.project_start(project=project, api="postgraphile")


def test_the_project_page_offers_retry_with_for_a_failed_create_and_it_works(client, user, fake_runtime):
    project = failed_create(user, fake_runtime, api="postgrest")
    client.force_login(user)
    page = client.get(f"/projects/{project.public_id}").content.decode()
    assert ">Retry with…</summary>" in page and 'name="api"' in page
    response = client.post(f"/projects/{project.public_id}/start", {"postgres_version": "15", "api": "postgraphile"})
    assert response.status_code == 302
    project.refresh_from_db()
    assert (project.status, project.api_flavour, project.postgres_version) == (S.RUNNING, "postgraphile", "15")
    assert ">Retry with…</summary>" not in client.get(f"/projects/{project.public_id}").content.decode()


def test_a_retry_form_with_a_choice_not_offered_is_refused_with_422(client, user, fake_runtime):
    project = failed_create(user, fake_runtime)
    client.force_login(user)
    response = client.post(f"/projects/{project.public_id}/start", {"postgres_version": "9", "api": "postgraphile"})
    assert response.status_code == 422
    assert Operation.objects.filter(project=project).count() == 1


# --- the commands ------------------------------------------------------------------------


def test_images_lists_each_image_whether_present_and_where_it_comes_from(configured, fake_runtime):
    fake_runtime.images = {"postgres:17"}
    out = io.StringIO()
    call_command("images", stdout=out)
    text = out.getvalue()
    assert "postgres:17" in text and "present" in text
    assert "berth/postgres:15" in text and "built here from images/postgres" in text
    assert "`manage.py images build` builds" in text


def test_images_build_refuses_a_name_without_a_recipe(configured):
    with pytest.raises(CommandError, match="no recipe for postgrest/postgrest"):
        call_command("images", "build", "postgrest/postgrest:v12.2.8")


def test_images_build_without_root_says_what_to_run_and_fails(configured, fake_runtime, monkeypatch):
    fake_runtime.images = set()
    monkeypatch.setattr(image_services.os, "geteuid", lambda: 1000)
    err = io.StringIO()
    with pytest.raises(CommandError, match="not built: berth/postgres:17"):
        call_command("images", "build", "berth/postgres:17", stderr=err)
    assert "sudo uv run manage.py images build" in err.getvalue()


def test_up_says_in_one_line_when_postgrest_cannot_be_had(configured, fake_runtime, builds, db):
    from projects.management.commands.up import Command

    fake_runtime.images = {"postgres:15", "postgres:17", "graphile/postgraphile:4"}
    out = io.StringIO()
    command = Command(stdout=out)
    command._check_images()
    assert "PostgREST cannot be had here: new projects default to PostGraphile." in out.getvalue()
    assert "Offering PostgreSQL 15, 17 with PostGraphile." in out.getvalue()


def test_images_build_by_hand_grows_the_offer_that_up_recorded_without_a_restart(configured, fake_runtime, builds):
    fake_runtime.images = {"postgres:17", "graphile/postgraphile:4"}
    ensure(mode="pull")
    assert "15" not in offer().postgres
    fake_runtime.images.add("berth/postgres:15")  # what `images build berth/postgres:15` leaves
    out = io.StringIO()
    call_command("images", "build", "berth/postgres:15", stdout=out)
    assert offer().postgres["15"] == "berth/postgres:15"
    assert "Offered now: PostgreSQL 15, 17" in out.getvalue()


def test_berths_own_names_are_built_never_pulled(configured, settings, fake_runtime, builds):
    # A registry's "berth/postgres" would be someone else's image under Berth's name.
    settings.BERTH_POSTGRES_IMAGES = {"17": "berth/postgres:17"}
    fake_runtime.images = {"graphile/postgraphile:4"}
    fake_runtime.pullable = {"berth/postgres:17"}
    ensure()
    assert builds == ["berth/postgres:17"]  # pulled, it would not have been built


# --- Berth's own images: variants, and a present image an older recipe made -------------


def current_labels(image: str) -> dict[str, str]:
    recipe = own_recipe(image)
    assert recipe is not None
    return {"berth.recipe": image_services.recipe_digest(recipe)}


def test_the_postgis_variant_is_one_of_berths_own_recipes_for_its_major():
    recipe = own_recipe("berth/postgres:17-postgis")
    assert recipe is not None and (recipe.kind, recipe.version, recipe.variant, recipe.tag) == ("postgres", "17", "postgis", "17-postgis")
    assert own_recipe("berth/postgres:17-") is None and own_recipe("berth/postgres:17-gdal") is None
    assert own_recipe("berth/postgres:16-postgis") is None


def test_a_present_variant_runs_its_major_and_nothing_builds_it_unasked(configured, fake_runtime, builds):
    fake_runtime.images = {"postgres:15", "berth/postgres:15-postgis", "postgres:17", "graphile/postgraphile:4"}
    _, current = ensure(mode="pull")
    assert current.postgres == {"15": "berth/postgres:15-postgis", "17": "postgres:17"}  # a superset of 15's
    fake_runtime.images = set()
    ensure()
    assert "berth/postgres:15-postgis" not in builds and "berth/postgres:15" in builds


def test_the_recipe_digest_changes_with_the_script_the_directory_and_the_variant(settings, tmp_path, monkeypatch):
    import shutil

    recipes = tmp_path / "images"
    shutil.copytree(image_services.RECIPES, recipes)
    monkeypatch.setattr(image_services, "RECIPES", recipes)
    plain, variant = own_recipe("berth/postgres:15"), own_recipe("berth/postgres:15-postgis")
    assert plain is not None and variant is not None
    before = image_services.recipe_digest(plain)
    assert before != image_services.recipe_digest(variant)
    (recipes / "postgres" / "docker-entrypoint.sh").write_text("changed")
    after_entrypoint = image_services.recipe_digest(plain)
    (recipes / "build-rootfs").write_text("changed")
    assert len({before, after_entrypoint, image_services.recipe_digest(plain)}) == 3


def test_a_present_image_is_stale_when_its_label_is_another_recipes_or_missing():
    image = "berth/postgres:17"
    assert image_services.image_staleness(image, current_labels(image)) is None
    assert "another recipe" in (image_services.image_staleness(image, {"berth.recipe": "0" * 32}) or "")
    assert "unlabelled" in (image_services.image_staleness(image, {}) or "")
    assert image_services.image_staleness(image, None) is None  # missing: built anyway, not stale
    assert image_services.image_staleness("postgres:17", {}) is None  # not Berth's: no recipe to compare


def test_images_build_rebuilds_a_present_image_an_older_recipe_made_and_says_so(configured, fake_runtime, builds):
    fake_runtime.images = {"berth/postgres:15", "berth/postgres:17"}
    fake_runtime.image_labels = {"berth/postgres:15": {"berth.recipe": "yesterday"}, "berth/postgres:17": current_labels("berth/postgres:17")}
    out = io.StringIO()
    call_command("images", "build", "berth/postgres:15", "berth/postgres:17", stdout=out)
    assert builds == ["berth/postgres:15"]
    assert "berth/postgres:15: present but built from another recipe than images/ holds now: building it again" in out.getvalue()
    assert "berth/postgres:17: present (--force rebuilds it)" in out.getvalue()


def test_images_build_without_names_rebuilds_the_stale_and_leaves_the_current(configured, settings, fake_runtime, builds):
    settings.BERTH_POSTGRES_IMAGES = {"15": "berth/postgres:15", "17": "berth/postgres:17"}
    settings.BERTH_POSTGRAPHILE_IMAGE = "berth/postgraphile:4"
    fake_runtime.images = {"berth/postgres:15", "berth/postgres:17", "berth/postgraphile:4", "postgrest/postgrest:v12.2.8"}
    fake_runtime.image_labels = {image: current_labels(image) for image in fake_runtime.images if own_recipe(image)}
    fake_runtime.image_labels["berth/postgraphile:4"] = {}  # built before images carried the label
    call_command("images", "build", stdout=io.StringIO())
    assert builds == ["berth/postgraphile:4"]


def test_a_build_labels_the_image_with_its_recipes_digest_and_builds_a_variant_for_its_major(configured, fake_runtime, monkeypatch, tmp_path):
    monkeypatch.setattr(image_services, "build_requirements", lambda image: [])
    monkeypatch.setenv("BERTH_IMAGES_WORK", str(tmp_path))
    argv = []

    class Rootfs:
        def __init__(self, args, **kwargs):
            argv.append(args)
            self.stdout, self.stderr = io.StringIO("packing\n"), io.StringIO()

        def wait(self):
            return 0

    monkeypatch.setattr(image_services.subprocess, "Popen", Rootfs)
    image_services.image_build(image="berth/postgres:15-postgis", say=lambda line: None)
    assert argv[0][1:3] == ["postgres", "15-postgis"] and argv[0][3].endswith("ctx-postgres-15-postgis")
    tag, buildargs = fake_runtime.built[0]
    assert tag == "berth/postgres:15-postgis" and buildargs["PG_MAJOR"] == "15"
    assert {"berth.recipe": buildargs["BERTH_RECIPE"]} == current_labels(tag)


def test_up_runs_a_stale_image_of_berths_and_says_how_to_build_it_again(configured, settings, fake_runtime, builds):
    settings.BERTH_POSTGRES_IMAGES = {"15": "berth/postgres:15", "17": "berth/postgres:17"}
    fake_runtime.images = {"berth/postgres:15", "berth/postgres:17", "graphile/postgraphile:4", "postgrest/postgrest:v12.2.8"}
    fake_runtime.image_labels = {"berth/postgres:17": current_labels("berth/postgres:17")}
    lines, current = ensure()
    assert current.postgres == {"15": "berth/postgres:15", "17": "berth/postgres:17"} and builds == []
    assert [line for line in lines if "images build" in line] == [
        "PostgreSQL 15: berth/postgres:15 is built from an older, unlabelled recipe than images/ holds now: "
        "`manage.py images build berth/postgres:15` makes it again"
    ]
